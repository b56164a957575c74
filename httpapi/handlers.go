package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

func (h *handler) space(w http.ResponseWriter, r *http.Request) {
	q := h.repo.Quota()
	n, err := h.repo.CountBlocks(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, spaceJSON{
		QuotaMaxBytes:       q.Max,
		QuotaUsedBytes:      q.Used,
		QuotaReservedBytes:  q.Reserved,
		QuotaAvailableBytes: q.Available(),
		TotalBlocks:         n,
	})
}

func (h *handler) listAvailabilities(w http.ResponseWriter, r *http.Request) {
	as, err := h.store.Availabilities(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]availabilityJSON, len(as))
	for i := range as {
		out[i] = toAvailabilityJSON(&as[i])
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *handler) addAvailability(w http.ResponseWriter, r *http.Request) {
	b, err := decodeBody(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var a reservations.Availability
	if b.Duration == nil {
		h.fail(w, r, unprocessable("duration: must be greater than zero"))
		return
	}
	if err := b.apply(&a); err != nil {
		h.fail(w, r, err)
		return
	}
	a, err = h.store.AddAvailability(r.Context(), a)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, toAvailabilityJSON(&a))
}

func (h *handler) getAvailability(w http.ResponseWriter, r *http.Request) {
	id, err := availabilityID(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	a, err := h.store.Availability(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toAvailabilityJSON(&a))
}

func (h *handler) modifyAvailability(w http.ResponseWriter, r *http.Request) {
	id, err := availabilityID(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	b, err := decodeBody(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	// Check what needs no record first, so a bad body changes nothing and
	// the function given to the store cannot fail but for the store's rules.
	if err := b.apply(&reservations.Availability{}); err != nil {
		h.fail(w, r, err)
		return
	}
	a, err := h.store.ModifyAvailability(r.Context(), id, func(a *reservations.Availability) error {
		return b.apply(a)
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toAvailabilityJSON(&a))
}

func (h *handler) deleteAvailability(w http.ResponseWriter, r *http.Request) {
	id, err := availabilityID(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.store.DeleteAvailability(r.Context(), id); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler) reservationsOf(w http.ResponseWriter, r *http.Request) {
	id, err := availabilityID(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	// An unknown availability is a 404, not an empty list.
	if _, err := h.store.Availability(r.Context(), id); err != nil {
		h.fail(w, r, err)
		return
	}
	rs, err := h.store.ReservationsOf(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]reservationJSON, len(rs))
	for i := range rs {
		out[i] = toReservationJSON(&rs[i])
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *handler) getReservation(w http.ResponseWriter, r *http.Request) {
	id, err := reservations.ParseReservationID(r.PathValue("id"))
	if err != nil {
		h.fail(w, r, badRequest("id: not a reservation id: %q", r.PathValue("id")))
		return
	}
	res, err := h.store.Reservation(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toReservationJSON(&res))
}

func availabilityID(r *http.Request) (reservations.AvailabilityID, error) {
	id, err := reservations.ParseAvailabilityID(r.PathValue("id"))
	if err != nil {
		return id, badRequest("id: not an availability id: %q", r.PathValue("id"))
	}
	return id, nil
}

// fail answers err: the status the caller can act on, or a 500 whose cause
// only the log gets.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	code, msg := status(err)
	if code == http.StatusInternalServerError {
		h.log.Error("httpapi: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	} else if code >= 500 {
		h.log.Warn("httpapi: unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, code, msg)
}

// status maps an error to an answer. The SDK's messages carry the IDs and
// figures, so a 4xx passes them on.
func status(err error) (int, string) {
	if e, ok := errors.AsType[*apiError](err); ok {
		return e.code, e.msg
	}
	switch {
	case errors.Is(err, reservations.ErrNotFound):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, reservations.ErrHasReservations):
		return http.StatusConflict, err.Error()
	case errors.Is(err, reservations.ErrInvalidSize),
		errors.Is(err, reservations.ErrBytesOutOfBounds),
		errors.Is(err, repo.ErrQuotaNotEnough),
		errors.Is(err, reservations.ErrInvalidTime),
		errors.Is(err, reservations.ErrUntilTooEarly):
		return http.StatusUnprocessableEntity, err.Error()
	case errors.Is(err, reservations.ErrInvalidID):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, repo.ErrWriteFailed),
		errors.Is(err, repo.ErrClosed),
		errors.Is(err, repo.ErrConflict),
		errors.Is(err, context.Canceled),
		errors.Is(err, context.DeadlineExceeded):
		// Nothing the caller did: try again later.
		return http.StatusServiceUnavailable, err.Error()
	}
	return http.StatusInternalServerError, "internal error"
}
