package reservations

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/holiman/uint256"

	"github.com/stowage/stowage"
)

// Term names a term of an availability that can rule out a slot.
type Term string

// The terms every call that creates a reservation checks (ReserveSlot,
// CreateReservation, and FindAvailability for them), in the order they are
// reported.
const (
	TermNone       Term = "none"       // there is no availability at all
	TermDisabled   Term = "disabled"   // the availability takes no new slots
	TermUntil      Term = "until"      // the slot's contract runs past the availability's Until (slot.Ends() is later, or zero)
	TermSize       Term = "size"       // not enough free bytes
	TermDuration   Term = "duration"   // the slot lasts longer than the availability takes
	TermPrice      Term = "price"      // the slot pays less than MinPrice
	TermCollateral Term = "collateral" // the slot asks more than MaxCollateral
	TermBudget     Term = "budget"     // the collateral budget has too little left
)

// NoAvailabilityError is the error ReserveSlot and FindAvailability return
// when no availability can take a slot, and CreateReservation when the one
// it is given cannot. It matches ErrNoAvailability. Term is what ruled out
// the closest candidate (the one failing the fewest terms), and the message
// gives the figures, so an operator knows which setting to change.
type NoAvailabilityError struct {
	Term   Term
	Detail string // e.g. "the slot needs 4 MiB, the largest free is 1 MiB"
}

// Error names ErrNoAvailability, the ruling term and its figures.
func (e *NoAvailabilityError) Error() string {
	return fmt.Sprintf("%v: %s: %s", ErrNoAvailability, e.Term, e.Detail)
}

// Unwrap makes the error match ErrNoAvailability.
func (e *NoAvailabilityError) Unwrap() error { return ErrNoAvailability }

// need is what a slot asks of an availability.
type need struct {
	size, duration uint64
	price, coll    uint256.Int
	until          time.Time
}

// failures lists the terms a fails for n, in report order.
func (n *need) failures(a *Availability) []Term {
	var terms []Term
	if a.Disabled {
		terms = append(terms, TermDisabled)
	}
	if !a.Until.IsZero() && (n.until.IsZero() || n.until.After(a.Until)) {
		terms = append(terms, TermUntil)
	}
	if n.size > a.Size {
		terms = append(terms, TermSize)
	}
	if n.duration > a.Duration {
		terms = append(terms, TermDuration)
	}
	if n.price.Lt(&a.MinPrice) {
		terms = append(terms, TermPrice)
	}
	if n.coll.Gt(&a.MaxCollateral) {
		terms = append(terms, TermCollateral)
	}
	if a.hasBudget() && n.coll.Gt(&a.FreeCollateral) {
		terms = append(terms, TermBudget)
	}
	return terms
}

// fits reports whether a takes the slot: failures(a) is empty.
func (n *need) fits(a *Availability) bool {
	return !a.Disabled &&
		(a.Until.IsZero() || !n.until.IsZero() && !n.until.After(a.Until)) &&
		n.size <= a.Size && n.duration <= a.Duration &&
		!n.price.Lt(&a.MinPrice) && !n.coll.Gt(&a.MaxCollateral) &&
		(!a.hasBudget() || !n.coll.Gt(&a.FreeCollateral))
}

// best returns the hinted availability that fits n and comes first in
// bestFit order.
func (s *state) best(n *need) (Availability, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best Availability
	found := false
	for _, a := range s.hints {
		if n.fits(&a) && (!found || bestFit(a, best) < 0) {
			best, found = a, true
		}
	}
	return best, found
}

// bestFit orders availabilities as FindAvailability chooses among them:
// least free bytes first, so large availabilities stay whole for large
// slots; the oldest on a tie.
func bestFit(x, y Availability) int {
	if c := cmp.Compare(x.Size, y.Size); c != 0 {
		return c
	}
	return bytes.Compare(x.ID[:], y.ID[:])
}

// candidates returns the hinted availabilities in bestFit order.
func (s *state) candidates() []Availability {
	s.mu.Lock()
	as := make([]Availability, 0, len(s.hints))
	for _, a := range s.hints {
		as = append(as, a)
	}
	s.mu.Unlock()
	slices.SortFunc(as, bestFit)
	return as
}

// needOf is what slot asks of an availability, or ErrInvalidSize for a
// slot of no bytes.
func needOf(slot stowage.Slot) (need, error) {
	if slot.Ask.SlotSize == 0 {
		return need{}, fmt.Errorf("%w: slot of 0 bytes", ErrInvalidSize)
	}
	return need{
		size: slot.Ask.SlotSize, duration: slot.Ask.Duration, price: slot.Ask.PricePerSlot(),
		coll: slot.Ask.Collateral, until: slot.Ends(),
	}, nil
}

// pick returns the availability ReserveSlot takes for n, as this change
// sees it, or a *NoAvailabilityError.
func (t txn) pick(s *state, n *need) (Availability, error) {
	if err := s.loadHints(t); err != nil {
		return Availability{}, err
	}
	for {
		h, ok := s.best(n)
		if !ok {
			return Availability{}, closest(n, s.candidates())
		}
		// The hint says it fits; the record decides.
		a, err := t.availability(h.ID)
		if errors.Is(err, ErrNotFound) {
			s.dropHint(h.ID)
			continue
		}
		if err != nil {
			return Availability{}, err
		}
		if !n.fits(&a) {
			s.setHint(a) // it differs from the hint, which fit: not picked again
			continue
		}
		return a, nil
	}
}

// FindAvailability returns the availability ReserveSlot would take for slot
// now, without reserving anything: one that is not Disabled, whose Until is
// zero or not before slot.Ends() (a slot without Expiry never ends, so it
// fits only availabilities without Until), with at least Ask.SlotSize free
// bytes, Duration >= Ask.Duration, MinPrice <= Ask.PricePerSlot(),
// MaxCollateral >= Ask.Collateral and, with a collateral budget,
// FreeCollateral >= Ask.Collateral. Among several it picks the best fit,
// the one with the least free bytes, so large availabilities stay whole for
// large slots; ties go to the oldest.
//
// When none fits the error is a *NoAvailabilityError (ErrNoAvailability)
// naming the term that ruled out the closest candidate; a slot that already
// holds a reservation fails with ErrSlotReserved, and a slot of no bytes
// with ErrInvalidSize, as ReserveSlot would.
//
// The answer is a hint: by the time it is used another call may have taken
// the bytes. ReserveSlot finds and reserves in one atomic step.
func (s *Store) FindAvailability(ctx context.Context, slot stowage.Slot) (Availability, error) {
	n, err := needOf(slot)
	var a Availability
	if err == nil {
		err = s.update(ctx, func(t txn) error {
			if err := t.slotFree(slot.RequestID, slot.Index); err != nil {
				return err
			}
			a, err = t.pick(s.st, &n)
			return err
		})
	}
	if err != nil {
		return Availability{}, fmt.Errorf("find availability for slot %d of %s: %w", slot.Index, slot.RequestID, err)
	}
	return a, nil
}

// ReserveSlot finds an availability for the slot, as FindAvailability
// does, and carves a reservation of Ask.SlotSize bytes out of it, in one
// atomic step: nothing can take the bytes in between, so there is no race
// to retry. The reservation's ValidUntil is slot.Ends() (zero, never
// expiring, when the slot has no Expiry) and, with a collateral budget, it
// takes Ask.Collateral from FreeCollateral.
//
// A slot that already holds a reservation fails with ErrSlotReserved; when
// nothing fits the error is a *NoAvailabilityError (ErrNoAvailability)
// naming the term that ruled out the closest candidate.
func (s *Store) ReserveSlot(ctx context.Context, slot stowage.Slot) (Reservation, error) {
	n, err := needOf(slot)
	var r Reservation
	if err == nil {
		err = s.reserve(ctx, slot, &n, func(t txn) (Availability, error) { return t.pick(s.st, &n) }, &r)
	}
	if err != nil {
		return Reservation{}, fmt.Errorf("reserve slot %d of %s: %w", slot.Index, slot.RequestID, err)
	}
	return r, nil
}

// CreateReservation carves a reservation for slot out of the availability
// with id, checking every term exactly as ReserveSlot does: the
// availability must exist (ErrNotFound), the slot must be free
// (ErrSlotReserved), and a term it fails (size, duration, price,
// collateral, budget, disabled, until) gives a *NoAvailabilityError naming
// it. Use it when the host, not the best fit, chooses the availability.
func (s *Store) CreateReservation(ctx context.Context, id AvailabilityID, slot stowage.Slot) (Reservation, error) {
	n, err := needOf(slot)
	var r Reservation
	if err == nil {
		err = s.reserve(ctx, slot, &n, func(t txn) (Availability, error) {
			a, err := t.availability(id)
			if err != nil {
				return Availability{}, err
			}
			if !n.fits(&a) {
				return Availability{}, closest(&n, []Availability{a})
			}
			return a, nil
		}, &r)
	}
	if err != nil {
		return Reservation{}, fmt.Errorf("create reservation on %s for slot %d of %s: %w", id, slot.Index, slot.RequestID, err)
	}
	return r, nil
}

// reserve stages a reservation for slot on the availability choose
// returns, with its indexes, and stores it in *out.
func (s *Store) reserve(ctx context.Context, slot stowage.Slot, n *need, choose func(txn) (Availability, error), out *Reservation) error {
	rid, err := newID()
	if err != nil {
		return err
	}
	return s.update(ctx, func(t txn) error {
		if err := t.slotFree(slot.RequestID, slot.Index); err != nil {
			return err
		}
		a, err := choose(t)
		if err != nil {
			return err
		}
		r := Reservation{
			ID: ReservationID(rid), AvailabilityID: a.ID, Size: n.size, SlotSize: n.size,
			RequestID: slot.RequestID, SlotIndex: slot.Index, ValidUntil: n.until,
		}
		if a.hasBudget() {
			r.Collateral = n.coll
			a.FreeCollateral.Sub(&a.FreeCollateral, &n.coll)
		}
		a.Size -= n.size
		if err := t.createReservation(s.st, a, r); err != nil {
			return err
		}
		*out = r
		return nil
	})
}

// closest explains why none of as takes the slot.
func closest(n *need, as []Availability) error {
	if len(as) == 0 {
		return &NoAvailabilityError{Term: TermNone, Detail: "there is no availability"}
	}
	best, bestTerms := as[0], n.failures(&as[0])
	var largest uint64
	for _, a := range as {
		if !a.Disabled {
			largest = max(largest, a.Size)
		}
		if terms := n.failures(&a); len(terms) < len(bestTerms) {
			best, bestTerms = a, terms
		}
	}
	e := &NoAvailabilityError{Term: bestTerms[0]}
	switch e.Term {
	case TermDisabled:
		e.Detail = fmt.Sprintf("availability %s would take it but is disabled", best.ID)
	case TermUntil:
		e.Detail = fmt.Sprintf("the slot's contract runs to %s, availability %s takes slots only until %s",
			untilText(n.until), best.ID, best.Until.UTC().Format(time.RFC3339))
	case TermSize:
		e.Detail = fmt.Sprintf("the slot needs %s, the largest free is %s", formatBytes(n.size), formatBytes(largest))
	case TermDuration:
		e.Detail = fmt.Sprintf("the slot lasts %s, availability %s takes at most %s",
			seconds(n.duration), best.ID, seconds(best.Duration))
	case TermPrice:
		e.Detail = fmt.Sprintf("the slot pays %s, availability %s asks at least %s", n.price.Dec(), best.ID, best.MinPrice.Dec())
	case TermCollateral:
		e.Detail = fmt.Sprintf("the slot asks %s collateral, availability %s locks at most %s", n.coll.Dec(), best.ID, best.MaxCollateral.Dec())
	case TermBudget:
		e.Detail = fmt.Sprintf("the slot asks %s collateral, availability %s has %s left of its budget", n.coll.Dec(), best.ID, best.FreeCollateral.Dec())
	}
	return e
}

func untilText(t time.Time) string {
	if t.IsZero() {
		return "no end"
	}
	return t.UTC().Format(time.RFC3339)
}

func seconds(s uint64) string {
	if s > uint64(1<<63-1)/uint64(time.Second) {
		return fmt.Sprintf("%ds", s)
	}
	return (time.Duration(s) * time.Second).String()
}

func (t txn) slotFree(requestID stowage.RequestID, index uint64) error {
	taken, err := t.Has(slotKey(requestID, index))
	if err != nil {
		return err
	}
	if taken {
		return ErrSlotReserved
	}
	return nil
}

// createReservation stages a new reservation, its indexes and the
// availability it came out of.
func (t txn) createReservation(s *state, a Availability, r Reservation) error {
	if err := t.putAvailability(s, a); err != nil {
		return err
	}
	if err := t.putReservation(r); err != nil {
		return err
	}
	availabilityOf.put(r.ID, r.AvailabilityID)
	s.noBlocks.put(r.ID, struct{}{})
	if err := t.putExpiry(&r); err != nil {
		return err
	}
	if err := t.Put(byIDKey(r.ID), []byte(r.AvailabilityID.String())); err != nil {
		return err
	}
	return t.Put(slotKey(r.RequestID, r.SlotIndex), encodeSlot(r))
}
