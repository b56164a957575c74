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
// Its states run one at a time, so they share these fields without a lock,
// but for the download's progress, which the network's callbacks write
// (guarded by mu). downloading and recorded belong to the host and are
// guarded by its mutex.
type sale struct {
	h    *Host
	slot stowage.Slot             // as the queue and ReserveSlot had it
	res  reservations.Reservation // Size and Used as the downloading state left them
	m    *saleMachine

	mine      bool // the host holds the slot on the market
	collected uint256.Int

	mu         sync.Mutex // the download's progress, written by the network's callbacks
	downloaded uint64     // bytes stored by this run

	downloading bool // counted in Host.downloading
	recorded    bool // counted in Host.stats
}

// marketCall bounds a call to the market.
func (s *sale) marketCall(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.h.cfg.MarketTimeout)
}

// schedule applies ev to the sale's current state.
func (s *sale) schedule(ev saleEvent) {
	s.h.mu.Lock()
	s.h.touchLocked(s)
	s.h.mu.Unlock()
	s.m.Schedule(ev)
}

// end is the last work of every sale, done by its Final state: the
// reservation is deleted, which deletes its blocks and gives every byte
// back to the offer, and the sale is counted. A failed delete is the
// machine's Err: the host logs it, and ReclaimExpired or the next start
// deletes the reservation. The delete is not cut short by Close.
func (s *sale) end(ctx context.Context, final saleState) error {
	err := s.h.store.DeleteReservation(context.WithoutCancel(ctx), s.res.ID)
	s.h.mu.Lock()
	s.h.recordLocked(s, final)
	s.h.mu.Unlock()
	s.h.doneDownloading(s)
	s.h.wakeQueue() // its bytes are free again
	if err != nil {
		return fmt.Errorf("delete reservation %s: %w", s.res.ID, err)
	}
	return nil
}

// blockKey names the block of a slot's data that starts at offset.
func blockKey(slot stowage.Slot, offset uint64) datastore.Key {
	return datastore.KeyWithNamespaces([]string{slot.RequestID.String(), strconv.FormatUint(slot.Index, 10), strconv.FormatUint(offset, 10)})
}

// downloading fetches the slot's data batch by batch and stores each batch
// with Store.PutBlock, which moves its bytes from the reservation to the
// repo's used bytes in the same atomic change. A download resumed after a
// restart goes on from the bytes already stored.
//
// No goroutine waits for the network: Run asks for the first batch and
// returns, and each batch is stored as it arrives, on the network's
// callback, which then asks for the next (see sale.fetch). Once the slot is
// complete, or the download failed, an event (downloaded) moves the sale
// on; a failure goes, through a downloading state that returns it, to the
// machine's OnError, which ends the sale in errored.
type downloading struct {
	err error // the download failed: Run returns it
}

func (*downloading) String() string { return "downloading" }

func (st *downloading) Run(ctx context.Context, m *saleMachine) (saleState, error) {
	if st.err != nil {
		return nil, st.err
	}
	m.Subject().fetch(ctx, st)
	return nil, nil
}

// fetch asks the network for the next batch of the slot, for the
// downloading state from; the callback stores the batch and asks for the
// next. It ends with the event downloaded, once the slot is complete or the
// download failed. Nothing happens once ctx has ended (the sale moved on).
func (s *sale) fetch(ctx context.Context, from *downloading) {
	s.mu.Lock()
	off := s.res.Used
	s.mu.Unlock()
	size := s.slot.Ask.SlotSize
	if off >= size {
		s.schedule(downloaded(from, nil))
		return
	}
	n := min(s.h.cfg.Batch, size-off)
	s.h.network.Fetch(ctx, s.slot.RequestID, s.slot.Index, off, n, func(data []byte, err error) {
		if err == nil && uint64(len(data)) != n {
			err = fmt.Errorf("asked %d bytes at %d, got %d", n, off, len(data))
		}
		if err == nil {
			err = s.store(ctx, off, data)
		}
		switch {
		case ctx.Err() != nil:
		case err != nil:
			s.schedule(downloaded(from, err))
		default:
			s.fetch(ctx, from)
		}
	})
}

// store writes the batch that starts at off.
func (s *sale) store(ctx context.Context, off uint64, data []byte) error {
	if err := s.h.store.PutBlock(ctx, s.res.ID, blockKey(s.slot, off), data); err != nil {
		return err
	}
	n := uint64(len(data))
	s.mu.Lock()
	s.res.Used, s.res.Size, s.downloaded = s.res.Used+n, s.res.Size-n, s.downloaded+n
	s.mu.Unlock()
	return nil
}

// downloaded: the download that the downloading state from started is over,
// complete (err nil) or failed.
func downloaded(from *downloading, err error) saleEvent {
	return func(cur saleState) saleState {
		switch {
		case cur != saleState(from):
			return nil // the sale moved on meanwhile
		case err != nil:
			return &downloading{err: err}
		}
		return &initialProving{}
	}
}

// initialProving reads the slot back and computes the proof that goes with
// filling it (the simulated market accepts any non-empty proof).
type initialProving struct{}

func (*initialProving) String() string { return "initial-proving" }

func (*initialProving) Run(ctx context.Context, m *saleMachine) (saleState, error) {
	s := m.Subject()
	sum := sha256.New()
	for off := uint64(0); off < s.slot.Ask.SlotSize; {
		data, err := s.h.repo.GetBlock(ctx, blockKey(s.slot, off))
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

func (*filling) String() string { return "filling" }

func (st *filling) Run(ctx context.Context, m *saleMachine) (saleState, error) {
	s := m.Subject()
	ctx, cancel := s.marketCall(ctx)
	defer cancel()
	switch err := s.h.market.FillSlot(ctx, s.slot.RequestID, s.slot.Index, st.proof); {
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

// filled: the slot is the host's. Its download is over, so the queue may
// reserve the next slot while this one is held.
type filled struct{}

func (*filled) String() string { return "filled" }

func (*filled) Run(ctx context.Context, m *saleMachine) (saleState, error) {
	s := m.Subject()
	s.h.mu.Lock()
	s.h.stats.Filled++
	s.h.mu.Unlock()
	s.h.doneDownloading(s)
	return &proving{}, nil
}

// proving holds the slot until the request ends; market events move the
// sale on. A real host answers the market's proof challenges here.
type proving struct{}

func (*proving) String() string                                       { return "proving" }
func (*proving) Run(context.Context, *saleMachine) (saleState, error) { return nil, nil }

// payout collects the reward and the collateral of a finished request.
type payout struct{}

func (*payout) String() string { return "payout" }

func (*payout) Run(ctx context.Context, m *saleMachine) (saleState, error) {
	s := m.Subject()
	ctx, cancel := s.marketCall(ctx)
	defer cancel()
	paid, err := s.h.market.FreeSlot(ctx, s.slot.RequestID, s.slot.Index)
	if err != nil && !errors.Is(err, market.ErrAlreadyPaid) { // paid before a restart
		return nil, err
	}
	s.collected.Add(&s.collected, &paid)
	return &finished{}, nil
}

// The final states end the machine once their Run returns; each deletes the
// sale's reservation (see sale.end), which gives every byte back.
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

func (st *finished) Run(ctx context.Context, m *saleMachine) (saleState, error) {
	return nil, m.Subject().end(ctx, st)
}

func (st *failed) Run(ctx context.Context, m *saleMachine) (saleState, error) {
	return nil, m.Subject().end(ctx, st)
}

func (st *ignored) Run(ctx context.Context, m *saleMachine) (saleState, error) {
	return nil, m.Subject().end(ctx, st)
}

func (st *errored) Run(ctx context.Context, m *saleMachine) (saleState, error) {
	s := m.Subject()
	s.h.log.Debug("sale errored", "slot", slotName(s.slot), "in", st.in, "err", st.err)
	return nil, s.end(ctx, st)
}

// Run gets the collateral of a slot the host filled back.
func (st *cancelled) Run(ctx context.Context, m *saleMachine) (saleState, error) {
	s := m.Subject()
	if s.mine {
		mctx, cancel := s.marketCall(ctx)
		paid, err := s.h.market.FreeSlot(mctx, s.slot.RequestID, s.slot.Index)
		cancel()
		if err != nil && !errors.Is(err, market.ErrAlreadyPaid) {
			s.h.log.Warn("collateral not recovered", "slot", slotName(s.slot), "err", err)
		}
		s.collected.Add(&s.collected, &paid)
	}
	return nil, s.end(ctx, st)
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
