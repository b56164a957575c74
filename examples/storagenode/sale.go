package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/holiman/uint256"
	"github.com/ipfs/go-datastore"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/examples/storagenode/market"
	"github.com/stowage/stowage/reservations"
	"github.com/stowage/stowage/statemachine"
)

// ErrSlotLost ends a sale in errored: the market freed the host's slot (in
// the real network, for missed proofs).
var ErrSlotLost = errors.New("sale: slot lost")

// Why a sale ended in ignored.
const (
	reasonLostRace = "another host filled the slot"
	reasonNotOpen  = "request no longer open"
)

type (
	saleState   = statemachine.State[*sale]
	saleEvent   = statemachine.Event[*sale]
	saleMachine = statemachine.Machine[*sale]
)

// sale is one slot the host is selling, the subject of its state machine.
// Its states run one at a time, so they share these fields without a lock;
// the host reads them only once the machine has ended.
type sale struct {
	h   *Host
	ref market.SlotRef
	ask stowage.StorageAsk
	res reservations.Reservation // Size and Used as the downloading state left them
	m   *saleMachine

	filled     chan struct{} // closed by the filled state: the queue worker may move on
	fillOnce   sync.Once
	mine       bool // the host holds the slot on the market
	downloaded uint64
	collected  uint256.Int
}

// marketCall bounds a call to the market.
func (s *sale) marketCall(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.h.cfg.MarketTimeout)
}

// blockKey names the block of a slot's data that starts at offset.
func blockKey(ref market.SlotRef, offset uint64) datastore.Key {
	return datastore.KeyWithNamespaces([]string{ref.Request.String(), strconv.FormatUint(ref.Slot, 10), strconv.FormatUint(offset, 10)})
}

// downloading fetches the slot's data batch by batch and stores each batch
// with Store.PutBlock, which moves its bytes from the reservation to the
// repo's used bytes in the same atomic change. A download resumed after a
// restart goes on from the bytes already stored.
type downloading struct{}

func (*downloading) String() string                 { return "downloading" }
func (st *downloading) OnError(err error) saleState { return &errored{err: err, in: st.String()} }

func (*downloading) Run(ctx context.Context, m *saleMachine) (saleState, error) {
	s := m.Subject()
	for off := s.res.Used; off < s.ask.SlotSize; {
		n := min(s.h.cfg.Batch, s.ask.SlotSize-off)
		data, err := s.h.network.Fetch(ctx, s.ref.Request, s.ref.Slot, off, n)
		if err == nil && uint64(len(data)) != n {
			err = fmt.Errorf("asked %d bytes at %d, got %d", n, off, len(data))
		}
		if err == nil {
			err = s.h.store.PutBlock(ctx, s.res.ID, blockKey(s.ref, off), data)
		}
		if err != nil {
			return nil, err
		}
		off += n
		s.res.Used, s.res.Size, s.downloaded = s.res.Used+n, s.res.Size-n, s.downloaded+n
	}
	return &initialProving{}, nil
}

// initialProving reads the slot back and computes the proof that goes with
// filling it (the simulated market accepts any non-empty proof).
type initialProving struct{}

func (*initialProving) String() string                 { return "initial-proving" }
func (st *initialProving) OnError(err error) saleState { return &errored{err: err, in: st.String()} }

func (*initialProving) Run(ctx context.Context, m *saleMachine) (saleState, error) {
	s := m.Subject()
	sum := sha256.New()
	for off := uint64(0); off < s.ask.SlotSize; {
		data, err := s.h.repo.GetBlock(ctx, blockKey(s.ref, off))
		if err != nil {
			return nil, fmt.Errorf("read back at %d: %w", off, err)
		}
		if len(data) == 0 {
			return nil, fmt.Errorf("read back at %d: empty block", off)
		}
		sum.Write(data)
		off += uint64(len(data))
	}
	return &filling{proof: sum.Sum(nil)}, nil
}

// filling submits the proof to the market, which locks the collateral.
type filling struct{ proof []byte }

func (*filling) String() string                 { return "filling" }
func (st *filling) OnError(err error) saleState { return &errored{err: err, in: st.String()} }

func (st *filling) Run(ctx context.Context, m *saleMachine) (saleState, error) {
	s := m.Subject()
	ctx, cancel := s.marketCall(ctx)
	defer cancel()
	switch err := s.h.market.FillSlot(ctx, s.ref.Request, s.ref.Slot, st.proof); {
	case errors.Is(err, market.ErrSlotNotFree):
		return &ignored{reason: reasonLostRace}, nil
	case errors.Is(err, market.ErrRequestNotOpen):
		return &ignored{reason: reasonNotOpen}, nil
	case err != nil:
		return nil, err
	}
	s.mine = true
	return &filled{}, nil
}

// filled: the slot is the host's. The queue worker is freed here, so the
// next slot can download while this one is held.
type filled struct{}

func (*filled) String() string                 { return "filled" }
func (st *filled) OnError(err error) saleState { return &errored{err: err, in: st.String()} }

func (*filled) Run(ctx context.Context, m *saleMachine) (saleState, error) {
	s := m.Subject()
	s.fillOnce.Do(func() { close(s.filled) })
	s.h.mu.Lock()
	s.h.stats.Filled++
	s.h.mu.Unlock()
	return &proving{}, nil
}

// proving holds the slot until the request ends; market events move the
// sale on. A real host answers the market's proof challenges here.
type proving struct{}

func (*proving) String() string                                       { return "proving" }
func (*proving) Run(context.Context, *saleMachine) (saleState, error) { return nil, nil }

// payout collects the reward and the collateral of a finished request.
type payout struct{}

func (*payout) String() string                 { return "payout" }
func (st *payout) OnError(err error) saleState { return &errored{err: err, in: st.String()} }

func (*payout) Run(ctx context.Context, m *saleMachine) (saleState, error) {
	s := m.Subject()
	ctx, cancel := s.marketCall(ctx)
	defer cancel()
	paid, err := s.h.market.FreeSlot(ctx, s.ref.Request, s.ref.Slot)
	if err != nil && !errors.Is(err, market.ErrAlreadyPaid) { // paid before a restart
		return nil, err
	}
	s.collected.Add(&s.collected, &paid)
	return &finished{}, nil
}

// The final states end the machine once their Run returns; the host then
// deletes the sale's reservation, which gives every byte back.
type (
	finished  struct{}
	cancelled struct{}
	failed    struct{}
	errored   struct {
		err error
		in  string // the state it failed in
	}
	ignored struct{ reason string }
)

func (*finished) Final()  {}
func (*cancelled) Final() {}
func (*failed) Final()    {}
func (*errored) Final()   {}
func (*ignored) Final()   {}

func (*finished) String() string  { return "finished" }
func (*cancelled) String() string { return "cancelled" }
func (*failed) String() string    { return "failed" }
func (*errored) String() string   { return "errored" }
func (*ignored) String() string   { return "ignored" }

func (*finished) Run(context.Context, *saleMachine) (saleState, error) { return nil, nil }
func (*failed) Run(context.Context, *saleMachine) (saleState, error)   { return nil, nil }
func (*ignored) Run(context.Context, *saleMachine) (saleState, error)  { return nil, nil }

func (st *errored) Run(_ context.Context, m *saleMachine) (saleState, error) {
	m.Subject().h.log.Debug("sale errored", "slot", m.Subject().ref, "in", st.in, "err", st.err)
	return nil, nil
}

// Run gets the collateral of a slot the host filled back.
func (*cancelled) Run(ctx context.Context, m *saleMachine) (saleState, error) {
	s := m.Subject()
	if !s.mine {
		return nil, nil
	}
	ctx, cancel := s.marketCall(ctx)
	defer cancel()
	paid, err := s.h.market.FreeSlot(ctx, s.ref.Request, s.ref.Slot)
	if err != nil && !errors.Is(err, market.ErrAlreadyPaid) {
		s.h.log.Warn("collateral not recovered", "slot", s.ref, "err", err)
	}
	s.collected.Add(&s.collected, &paid)
	return nil, nil
}

// resumeState is where a sale the host holds resumes after a restart, from
// what the market says of its slot; nil when there is nothing to resume.
func resumeState(st market.SlotStatus, err error) saleState {
	if err != nil || !st.Mine || st.Paid {
		return nil
	}
	switch st.Request {
	case market.RequestFailed:
		return &failed{}
	case market.RequestCancelled:
		return &cancelled{}
	case market.RequestFinished:
		return &payout{}
	}
	return &proving{}
}

// The market events, as state machine events: each maps the current state
// to the next, or to nil where the event does not apply.

func isFinal(st saleState) bool {
	_, ok := st.(statemachine.Final)
	return ok
}

// onCancelled: the request expired before it started.
func onCancelled(cur saleState) saleState {
	if _, ok := cur.(*payout); ok || isFinal(cur) {
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
	case *filled, *proving:
		return &payout{}
	}
	return nil
}

// onFilledByOther: another host filled the slot this sale works towards.
func onFilledByOther(cur saleState) saleState {
	switch cur.(type) {
	case *downloading, *initialProving, *filling:
		return &ignored{reason: reasonLostRace}
	}
	return nil
}

// onSlotLost: the market freed the slot this host held.
func onSlotLost(cur saleState) saleState {
	switch cur.(type) {
	case *filled, *proving:
		return &errored{err: ErrSlotLost, in: fmt.Sprint(cur)}
	}
	return nil
}
