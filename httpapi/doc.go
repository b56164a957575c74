// Package httpapi is the operator's HTTP API of a storage host: what it
// offers (availabilities), what it holds (reservations), its disk quota and,
// optionally, the slots waiting in its queue. Mount the handler New returns
// under a prefix of your choice:
//
//	api := httpapi.New(store, repo, httpapi.WithToken(token))
//	mux.Handle("/api/stowage/v1/", http.StripPrefix("/api/stowage/v1", api))
//
// # Calls
//
// Paths are relative to where the handler is mounted; GET /openapi.json
// returns the OpenAPI 3 document of every call.
//
//	GET    /space                                   quota and blocks
//	GET    /sales/availability                      every availability
//	POST   /sales/availability                      add one (201)
//	GET    /sales/availability/{id}                 one availability
//	PATCH  /sales/availability/{id}                 change the fields given
//	DELETE /sales/availability/{id}                 delete it (204); 409 while it holds reservations
//	GET    /sales/availability/{id}/reservations    the reservations drawing on it
//	GET    /sales/reservations/{id}                 one reservation
//	GET    /sales/queue                             the slot queue (WithQueue only)
//	GET    /openapi.json                            the OpenAPI document
//
// Resources and field names follow Codex's REST API where the meaning is
// the same. Bodies are JSON; amounts are decimal strings ("1000"); sizes,
// durations and indices are numbers; times are Unix seconds, 0 meaning none.
// A POST creates through reservations.Store.AddAvailability (enabled
// defaults to true); a PATCH changes only the fields present, through
// ModifyAvailability; neither accepts freeSize, which follows from
// totalSize and what reservations hold.
//
// # Errors
//
// Every error is {"error": "<message>"} with Content-Type application/json.
// A caller's mistake is never a 500: 400 for a body that does not parse, an
// unknown field or a bad id (the message names the field); 401 without the
// token; 404; 405 for a method the path does not take (with Allow); 409 for
// a DELETE while reservations remain; 413 for a body over 1 MiB; 422 for a
// rule the SDK refuses (its message, with the figures: "not enough quota"
// says how much there is). 503 means the repo cannot write now (a failed
// commit, a closed repo): try again later. Anything else is a 500 that the
// logger (WithLogger) gets in full and the caller sees as "internal error".
//
// # Security
//
// Without WithToken anyone who reaches the handler can change what the host
// sells: bind the server to localhost (127.0.0.1:8080), as Codex does, or
// put it behind your own authentication. With WithToken every request,
// /openapi.json included, needs "Authorization: Bearer <token>"; a missing
// or wrong token is a 401 with WWW-Authenticate. No GET changes anything.
//
// The handler is safe for concurrent use; every call is one call of the
// Store, so concurrent requests are exactly as safe as concurrent Store
// calls.
package httpapi
