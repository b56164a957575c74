package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"log/slog"
	"net/http"
	"strings"

	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
	"github.com/stowage/stowage/slotqueue"
)

// maxBody is the largest request body read; a larger one is a 413.
const maxBody = 1 << 20

//go:embed openapi.json
var openAPI []byte

type options struct {
	queue *slotqueue.Queue
	token *[sha256.Size]byte
	log   *slog.Logger
}

// Option configures New.
type Option func(*options)

// WithQueue adds GET /sales/queue, which lists the slots waiting in q,
// best first, with its counters. Without it that path is a 404.
func WithQueue(q *slotqueue.Queue) Option {
	return func(o *options) { o.queue = q }
}

// WithToken requires "Authorization: Bearer <token>" on every request; a
// missing or wrong one is a 401 with WWW-Authenticate. The comparison takes
// the same time whatever the token given. An empty token is ignored.
func WithToken(token string) Option {
	return func(o *options) {
		if token == "" {
			o.token = nil
			return
		}
		d := sha256.Sum256([]byte(token))
		o.token = &d
	}
}

// WithLogger sets the logger that gets the errors behind 500 answers in
// full. The default discards them.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// handler serves the API. Its fields are set once by New.
type handler struct {
	store *reservations.Store
	repo  *repo.Repo
	options
	mux *http.ServeMux
}

// New returns the operator's API over store and r (the repo the store was
// made with; neither may be nil). The handler is safe for concurrent use.
func New(store *reservations.Store, r *repo.Repo, opts ...Option) http.Handler {
	o := options{log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	h := &handler{store: store, repo: r, options: o, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /space", h.space)
	h.mux.HandleFunc("GET /sales/availability", h.listAvailabilities)
	h.mux.HandleFunc("POST /sales/availability", h.addAvailability)
	h.mux.HandleFunc("GET /sales/availability/{id}", h.getAvailability)
	h.mux.HandleFunc("PATCH /sales/availability/{id}", h.modifyAvailability)
	h.mux.HandleFunc("DELETE /sales/availability/{id}", h.deleteAvailability)
	h.mux.HandleFunc("GET /sales/availability/{id}/reservations", h.reservationsOf)
	h.mux.HandleFunc("GET /sales/reservations/{id}", h.getReservation)
	if o.queue != nil {
		h.mux.HandleFunc("GET /sales/queue", h.queueState)
	}
	h.mux.HandleFunc("GET /openapi.json", h.openAPI)
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.token != nil && !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="stowage"`)
		writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
		return
	}
	if _, pattern := h.mux.Handler(r); pattern == "" {
		h.unrouted(w, r)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// authorized compares the request's bearer token with the configured one
// in constant time (digests, so the length leaks nothing either).
func (h *handler) authorized(r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	d := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return subtle.ConstantTimeCompare(d[:], h.token[:]) == 1
}

// unrouted answers a request no pattern takes in JSON: 405 with the mux's
// Allow header when the path takes other methods, else 404.
func (h *handler) unrouted(w http.ResponseWriter, r *http.Request) {
	// The mux's own answer is plain text; run it on a recorder for its
	// status and Allow header.
	var rec recorder
	h.mux.ServeHTTP(&rec, r)
	if rec.code == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", rec.header.Get("Allow"))
		writeError(w, http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path+"; allowed: "+rec.header.Get("Allow"))
		return
	}
	writeError(w, http.StatusNotFound, "no such path: "+r.URL.Path)
}

// recorder keeps a status and headers, and drops the body.
type recorder struct {
	header http.Header
	code   int
}

func (c *recorder) Header() http.Header {
	if c.header == nil {
		c.header = http.Header{}
	}
	return c.header
}
func (c *recorder) Write(b []byte) (int, error) { return len(b), nil }
func (c *recorder) WriteHeader(code int)        { c.code = code }

func (h *handler) openAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPI)
}
