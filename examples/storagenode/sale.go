package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/reservations"
	"github.com/stowage/stowage/statemachine"
)

// Errors that end a sale in the errored state.
var (
	// ErrSlotLost: the market freed the host's slot (in the real network,
	// for missed proofs), or says the host no longer holds it.
	ErrSlotLost = errors.New("sale: slot lost")
	// ErrIncompleteSlot: the bytes stored for a slot do not add up to its
	// size, so there is nothing to prove.
	ErrIncompleteSlot = errors.New("sale: slot data incomplete")
)

// Outcome is how a sale ended.
type Outcome uint8

// The outcomes, one per final state.
const (
	OutcomeNone      Outcome = iota // still running, or stopped with the host
	OutcomeFinished                 // the request ran its course and paid out
	OutcomeCancelled                // the request expired before it started
	OutcomeFailed                   // the request failed; collateral lost
	OutcomeErrored                  // something went wrong on the host's side or the market's
	OutcomeIgnored                  // the host decided not to serve the slot, or lost it to another host
)

// String returns the outcome's name, which is its final state's.
func (o Outcome) String() string {
	switch o {
	case OutcomeNone:
		return "none"
	case OutcomeFinished:
		return "finished"
	case OutcomeCancelled:
		return "cancelled"
	case OutcomeFailed:
		return "failed"
	case OutcomeErrored:
		return "errored"
	case OutcomeIgnored:
		return "ignored"
	}
	return fmt.Sprintf("Outcome(%d)", uint8(o))
}

// Why a sale was ignored.
const (
	reasonNoAvailability = "no availability fits"
	reasonLostRace       = "another host filled the slot"
	reasonNotOpen        = "request no longer open"
)

// saleState and saleMachine name the state machine instantiated for sales.
type (
	saleState   = statemachine.State[*Sale]
	saleMachine = statemachine.Machine[*Sale]
)

// Sale is one slot the host is selling: the subject of a state machine that
// walks it from preparing to one of the final states.
type Sale struct {
	host *Host
	ref  SlotRef
	m    *saleMachine

	released     chan struct{} // closed when the queue worker may move on
	releasedOnce sync.Once

	// Activity, for Host.WaitIdle; guarded by host.mu.
	live     bool // registered in host.sales
	running  int  // Runs of this sale's states under way
	inflight bool // a transition was decided and its state has not started yet
	pending  int  // events scheduled and not yet applied
	ending   bool // a final state is done; the host has yet to retire the sale
	busy     bool // live && (running > 0 || inflight || pending > 0 || ending)
	// holdsWorker: a queue worker waits for this sale to be filled or end.
	holdsWorker bool

	mu      sync.Mutex // guards what follows
	ask     stowage.StorageAsk
	expiry  uint64
	state   saleState
	res     reservations.Reservation
	hasRes  bool
	written uint64 // bytes of the slot stored in the repo
	mine    bool   // the market says this host filled the slot
	filled  bool
	outcome Outcome
	reason  string // see SaleInfo.Reason
	err     error
}

// SaleInfo is a snapshot of a sale, as the host's hooks see it.
type SaleInfo struct {
	Slot           SlotRef
	Ask            stowage.StorageAsk
	State          string
	Reservation    reservations.Reservation
	HasReservation bool
	Written        uint64
	Outcome        Outcome
	Reason         string // why it was ignored, or the state it errored in
	Err            error  // why it errored
}

// Info returns a snapshot of the sale.
func (s *Sale) Info() SaleInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	info := SaleInfo{
		Slot: s.ref, Ask: s.ask, Reservation: s.res, HasReservation: s.hasRes,
		Written: s.written, Outcome: s.outcome, Reason: s.reason, Err: s.err,
	}
	if s.state != nil {
		info.State = fmt.Sprint(s.state)
	}
	return info
}

func (s *Sale) reservation() (reservations.Reservation, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.res, s.hasRes
}

func (s *Sale) slotAsk() stowage.StorageAsk {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ask
}

// release frees the queue worker waiting for this sale. The worker stops
// counting as held at once, before its process call returns, so WaitIdle
// knows it is about to take the next item.
func (s *Sale) release() {
	h := s.host
	h.mu.Lock()
	if s.holdsWorker {
		s.holdsWorker = false
		h.processing--
		h.notifyLocked()
	}
	h.mu.Unlock()
	s.releasedOnce.Do(func() { close(s.released) })
}

// enter runs the body of state st's Run and keeps the host's activity count
// (see Host.WaitIdle) in step with the machine: the sale is busy while a Run
// works, and from the moment a Run or an event decides a transition until
// the next state's Run starts.
func (s *Sale) enter(ctx context.Context, st saleState, body func(ctx context.Context) (saleState, error)) (next saleState, err error) {
	h := s.host
	h.track(s, func() {
		s.running++
		s.inflight = false
	})
	s.mu.Lock()
	s.state = st
	s.mu.Unlock()
	completed := false
	defer func() {
		h.track(s, func() {
			s.running--
			// The machine acts on a result only while ctx is live; a
			// panic becomes an error it hands to OnError.
			if !completed || ((next != nil || err != nil) && ctx.Err() == nil) {
				s.inflight = true
			}
		})
	}()
	next, err = body(ctx)
	completed = true
	return next, err
}

// Every state that is not final handles the errors of its Run the same way:
// the sale ends in errored, which cleans up, remembering where it failed.

// unknown is where a sale resumed after a restart starts: it asks the market
// where the slot stands.
type unknown struct{}

// String names the state, for logs and reports.
func (*unknown) String() string { return "unknown" }

// OnError implements statemachine.ErrorHandler.
func (st *unknown) OnError(err error) saleState { return &errored{err: err, from: st} }

// Run implements statemachine.State.
func (st *unknown) Run(ctx context.Context, m *saleMachine) (saleState, error) {
	s := m.Subject()
	return s.enter(ctx, st, func(ctx context.Context) (saleState, error) {
		mctx, cancel := s.host.marketContext(ctx)
		defer cancel()
		status, err := s.host.market.SlotStatus(mctx, s.ref.Request, s.ref.Slot)
		if err != nil {
			return nil, fmt.Errorf("unknown: slot status: %w", err)
		}
		s.mu.Lock()
		s.ask, s.expiry, s.mine = status.Ask, status.Expiry, status.Mine
		s.filled = status.Mine // it was filled before the restart
		s.mu.Unlock()
		switch {
		case status.Request == RequestFailed:
			return &failed{}, nil
		case status.Request == RequestCancelled:
			return &cancelled{}, nil
		case status.Request == RequestFinished && status.Paid:
			return &finished{}, nil
		case !status.Mine:
			return nil, fmt.Errorf("unknown: %s: %w", s.ref, ErrSlotLost)
		case status.Request == RequestFinished:
			return &payout{}, nil
		}
		return &proving{}, nil
	})
}

// preparing finds an availability for the slot and reserves the slot's
// bytes in it. No availability fits: the sale is ignored.
type preparing struct{}

// String names the state, for logs and reports.
func (*preparing) String() string { return "preparing" }

// OnError implements statemachine.ErrorHandler.
func (st *preparing) OnError(err error) saleState { return &errored{err: err, from: st} }

// Run implements statemachine.State.
func (st *preparing) Run(ctx context.Context, m *saleMachine) (saleState, error) {
	s := m.Subject()
	return s.enter(ctx, st, func(ctx context.Context) (saleState, error) {
		h, ask := s.host, s.slotAsk()
		// A concurrent sale may take the bytes between Find and Create;
		// look again then, a few times.
		for range 3 {
			a, ok, err := h.store.FindAvailability(ctx, ask.SlotSize, ask.Duration, ask.PricePerSlot(), ask.Collateral)
			if err != nil {
				return nil, fmt.Errorf("preparing: %w", err)
			}
			if !ok {
				return &ignored{reason: reasonNoAvailability}, nil
			}
			res, err := h.store.CreateReservation(ctx, a.ID, ask.SlotSize, s.ref.Request, s.ref.Slot)
			if errors.Is(err, reservations.ErrBytesOutOfBounds) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("preparing: %w", err)
			}
			s.mu.Lock()
			s.res, s.hasRes = res, true
			s.mu.Unlock()
			return &downloading{}, nil
		}
		return &ignored{reason: reasonNoAvailability}, nil
	})
}

// downloading stores the slot's data batch by batch. Each visit writes the
// batch it was given (if any) at offset, then asks the network for the next
// one and waits: the delivery is an event that enters a new downloading
// state with that batch.
type downloading struct {
	offset uint64
	data   []byte
}

// String names the state, for logs and reports.
func (*downloading) String() string { return "downloading" }

// OnError implements statemachine.ErrorHandler.
func (st *downloading) OnError(err error) saleState { return &errored{err: err, from: st} }

// Run implements statemachine.State.
func (st *downloading) Run(ctx context.Context, m *saleMachine) (saleState, error) {
	s := m.Subject()
	return s.enter(ctx, st, func(ctx context.Context) (saleState, error) {
		h, ask := s.host, s.slotAsk()
		offset := st.offset
		if st.data != nil {
			if err := h.storeBatch(ctx, s, offset, st.data); err != nil {
				return nil, fmt.Errorf("downloading: %w", err)
			}
			offset += uint64(len(st.data))
		}
		if offset >= ask.SlotSize {
			return &initialProving{}, nil
		}
		n := min(h.cfg.Batch, ask.SlotSize-offset)
		h.network.Fetch(ctx, s.ref.Request, s.ref.Slot, offset, n, func(data []byte, err error) {
			h.schedule(s, func(cur saleState) saleState {
				if cur != saleState(st) {
					return nil // the sale moved on; drop the stale batch
				}
				if err != nil {
					return &errored{err: fmt.Errorf("downloading: %w", err), from: cur}
				}
				if uint64(len(data)) != n {
					return &errored{err: fmt.Errorf("downloading: asked %d bytes at %d, got %d", n, offset, len(data)), from: cur}
				}
				return &downloading{offset: offset, data: data}
			})
		})
		return nil, nil
	})
}

// initialProving reads the slot back and computes the proof that goes with
// filling it. The simulated market accepts any non-empty proof; the check
// that matters here is that every byte of the slot is stored.
type initialProving struct{}

// String names the state, for logs and reports.
func (*initialProving) String() string { return "initial-proving" }

// OnError implements statemachine.ErrorHandler.
func (st *initialProving) OnError(err error) saleState { return &errored{err: err, from: st} }

// Run implements statemachine.State.
func (st *initialProving) Run(ctx context.Context, m *saleMachine) (saleState, error) {
	s := m.Subject()
	return s.enter(ctx, st, func(ctx context.Context) (saleState, error) {
		sum := sha256.New()
		n, err := s.host.walkBlocks(ctx, s.ref, func(_ uint64, data []byte) error {
			sum.Write(data)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("initial proving: %w", err)
		}
		if size := s.slotAsk().SlotSize; n != size {
			return nil, fmt.Errorf("initial proving: %s: %d of %d bytes stored: %w", s.ref, n, size, ErrIncompleteSlot)
		}
		return &filling{proof: sum.Sum(nil)}, nil
	})
}

// filling submits the proof to the market and locks the collateral.
type filling struct {
	proof []byte
}

// String names the state, for logs and reports.
func (*filling) String() string { return "filling" }

// OnError implements statemachine.ErrorHandler.
func (st *filling) OnError(err error) saleState { return &errored{err: err, from: st} }

// Run implements statemachine.State.
func (st *filling) Run(ctx context.Context, m *saleMachine) (saleState, error) {
	s := m.Subject()
	return s.enter(ctx, st, func(ctx context.Context) (saleState, error) {
		mctx, cancel := s.host.marketContext(ctx)
		defer cancel()
		err := s.host.market.FillSlot(mctx, s.ref.Request, s.ref.Slot, st.proof)
		switch {
		case errors.Is(err, ErrSlotNotFree):
			return &ignored{reason: reasonLostRace}, nil
		case errors.Is(err, ErrRequestNotOpen):
			return &ignored{reason: reasonNotOpen}, nil
		case err != nil:
			return nil, fmt.Errorf("filling: %w", err)
		}
		s.mu.Lock()
		s.mine = true
		s.mu.Unlock()
		return &filled{}, nil
	})
}

// filled: the slot is the host's. The queue worker is freed here, so the
// next slot can start downloading while this one is proven.
type filled struct{}

// String names the state, for logs and reports.
func (*filled) String() string { return "filled" }

// OnError implements statemachine.ErrorHandler.
func (st *filled) OnError(err error) saleState { return &errored{err: err, from: st} }

// Run implements statemachine.State.
func (st *filled) Run(ctx context.Context, m *saleMachine) (saleState, error) {
	s := m.Subject()
	return s.enter(ctx, st, func(ctx context.Context) (saleState, error) {
		s.host.saleFilled(s)
		return &proving{}, nil
	})
}

// proving holds the slot until the request ends. A real host answers the
// market's storage proof challenges here; the simulated market issues none,
// and frees a slot instead to model a host that missed them.
type proving struct{}

// String names the state, for logs and reports.
func (*proving) String() string { return "proving" }

// OnError implements statemachine.ErrorHandler.
func (st *proving) OnError(err error) saleState { return &errored{err: err, from: st} }

// Run implements statemachine.State.
func (st *proving) Run(ctx context.Context, m *saleMachine) (saleState, error) {
	return m.Subject().enter(ctx, st, func(ctx context.Context) (saleState, error) {
		return nil, nil // market events move the sale on
	})
}

// payout collects the reward and the collateral of a finished request.
type payout struct{}

// String names the state, for logs and reports.
func (*payout) String() string { return "payout" }

// OnError implements statemachine.ErrorHandler.
func (st *payout) OnError(err error) saleState { return &errored{err: err, from: st} }

// Run implements statemachine.State.
func (st *payout) Run(ctx context.Context, m *saleMachine) (saleState, error) {
	s := m.Subject()
	return s.enter(ctx, st, func(ctx context.Context) (saleState, error) {
		mctx, cancel := s.host.marketContext(ctx)
		defer cancel()
		paid, err := s.host.market.FreeSlot(mctx, s.ref.Request, s.ref.Slot)
		switch {
		case errors.Is(err, ErrAlreadyPaid):
			// Collected before a restart.
		case err != nil:
			return nil, fmt.Errorf("payout: %w", err)
		default:
			s.host.addCollected(paid)
		}
		return &finished{}, nil
	})
}

// The final states. Each cleans up (see Host.reclaim), records the outcome
// and stops the machine; the host then retires the sale.

type finished struct{}

// String names the state, for logs and reports.
func (*finished) String() string { return "finished" }

// Run implements statemachine.State.
func (st *finished) Run(ctx context.Context, m *saleMachine) (saleState, error) {
	s := m.Subject()
	return s.enter(ctx, st, func(ctx context.Context) (saleState, error) {
		return s.finish(ctx, m, OutcomeFinished, "", nil)
	})
}

type cancelled struct{}

// String names the state, for logs and reports.
func (*cancelled) String() string { return "cancelled" }

// Run implements statemachine.State: a slot the host filled gets its
// collateral back.
func (st *cancelled) Run(ctx context.Context, m *saleMachine) (saleState, error) {
	s := m.Subject()
	return s.enter(ctx, st, func(ctx context.Context) (saleState, error) {
		s.mu.Lock()
		mine := s.mine
		s.mu.Unlock()
		if mine {
			mctx, cancel := s.host.marketContext(ctx)
			paid, err := s.host.market.FreeSlot(mctx, s.ref.Request, s.ref.Slot)
			cancel()
			switch {
			case errors.Is(err, ErrAlreadyPaid):
			case err != nil:
				// The slot stays in MySlots: the next start tries again.
				s.host.log.Warn("collateral not recovered", "slot", s.ref, "err", err)
			default:
				s.host.addCollected(paid)
			}
		}
		return s.finish(ctx, m, OutcomeCancelled, "", nil)
	})
}

type failed struct{}

// String names the state, for logs and reports.
func (*failed) String() string { return "failed" }

// Run implements statemachine.State.
func (st *failed) Run(ctx context.Context, m *saleMachine) (saleState, error) {
	s := m.Subject()
	return s.enter(ctx, st, func(ctx context.Context) (saleState, error) {
		return s.finish(ctx, m, OutcomeFailed, "", nil)
	})
}

// errored: something failed in state from (nil when the machine itself
// ended on an error no state handled).
type errored struct {
	err  error
	from saleState
}

// String names the state, for logs and reports.
func (*errored) String() string { return "errored" }

// Run implements statemachine.State.
func (st *errored) Run(ctx context.Context, m *saleMachine) (saleState, error) {
	s := m.Subject()
	return s.enter(ctx, st, func(ctx context.Context) (saleState, error) {
		var in string
		if st.from != nil {
			in = fmt.Sprint(st.from)
		}
		return s.finish(ctx, m, OutcomeErrored, in, st.err)
	})
}

type ignored struct{ reason string }

// String names the state, for logs and reports.
func (*ignored) String() string { return "ignored" }

// Run implements statemachine.State.
func (st *ignored) Run(ctx context.Context, m *saleMachine) (saleState, error) {
	s := m.Subject()
	return s.enter(ctx, st, func(ctx context.Context) (saleState, error) {
		return s.finish(ctx, m, OutcomeIgnored, st.reason, nil)
	})
}

// finish ends every final state: it records the outcome, cleans up and
// stops the machine. The host then retires the sale.
func (s *Sale) finish(ctx context.Context, m *saleMachine, o Outcome, reason string, err error) (saleState, error) {
	s.mu.Lock()
	s.outcome, s.reason, s.err = o, reason, err
	s.mu.Unlock()
	if err != nil {
		s.host.log.Debug("sale errored", "slot", s.ref, "err", err)
	}
	// Cleanup runs to the end even when the host stops meanwhile: half a
	// cleanup would only be redone by the next start.
	s.host.reclaimSale(context.WithoutCancel(ctx), s)
	s.host.track(s, func() { s.ending = true })
	m.Stop() // does not wait for this Run, which returns next
	return nil, nil
}

// The market events, as state machine events: each maps the current state
// to the next, or to nil where the event does not apply.

func isFinal(st saleState) bool {
	switch st.(type) {
	case *finished, *cancelled, *failed, *errored, *ignored:
		return true
	}
	return false
}

// onCancelled: the request expired before it started.
func onCancelled(cur saleState) saleState {
	if isFinal(cur) {
		return nil
	}
	if _, ok := cur.(*payout); ok {
		return nil
	}
	return &cancelled{}
}

// onFailed: the request failed.
func onFailed(cur saleState) saleState {
	if isFinal(cur) {
		return nil
	}
	return &failed{}
}

// onFinished: the request ran its course.
func onFinished(cur saleState) saleState {
	switch cur.(type) {
	case *unknown, *filled, *proving:
		return &payout{}
	}
	return nil
}

// onFilledByOther: another host filled the slot this sale works towards.
func onFilledByOther(cur saleState) saleState {
	switch cur.(type) {
	case *preparing, *downloading, *initialProving, *filling:
		return &ignored{reason: reasonLostRace}
	}
	return nil
}

// onSlotLost: the market freed the slot this host held.
func onSlotLost(cur saleState) saleState {
	switch cur.(type) {
	case *unknown, *filled, *proving:
		return &errored{err: ErrSlotLost, from: cur}
	}
	return nil
}
