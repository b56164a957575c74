package engine

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-datastore"
)

// Group commit: while a host's change holds the counters' locks, the
// changes of the host queued behind it (up to maxGroup) join its
// transaction, each run in turn on it and seeing the earlier ones' writes,
// and all commit with one COMMIT: one round trip and one flush of the
// server's log for the group, and each joined change's writes ride on its
// next one's first read. Each change keeps its own outcome: should a
// joined change fail (its own error, its ctx ending, a conflict), the
// transaction is ended before anything is written and every change of the
// group runs again alone (errRunAlone), where the failing one meets its
// error again and the others do not. A group whose COMMIT is refused for a
// conflict runs alone too; a COMMIT of unknown outcome fails every change
// of the group with ErrWriteFailed, as it fails a change alone. Only
// changes that write no separate block store group (the order of a block
// store's writes around the metadata's commit is a change's own).
const maxGroup = 8

// errRunAlone tells a change to run in a transaction of its own.
var errRunAlone = errors.New("engine: run the change alone")

// joinReq is a change waiting to join another's transaction.
type joinReq struct {
	ctx     context.Context
	fn      func(tx *Tx) error
	done    chan error // its outcome, once claimed: nil, an error, or errRunAlone
	claimed bool       // taken by a group; under chain.mu
}

// joined is a change run in another's transaction, not yet committed.
type joined struct {
	req *joinReq
	tx  *Tx
}

// acquireOrJoin waits for sem, as acquire does, offering req to the holder
// of sem meanwhile. joined reports that a group took req: err is then its
// outcome (errRunAlone to run it alone, sem not held).
func (s *sharedMode) acquireOrJoin(ctx context.Context, req *joinReq) (err error, joined bool) {
	ch := &s.chain
	ch.mu.Lock()
	ch.waiters++
	ch.joinable = append(ch.joinable, req)
	ch.mu.Unlock()
	select {
	case s.sem <- struct{}{}:
		ch.mu.Lock()
		if req.claimed {
			// The group ended and released sem: its outcome is in.
			ch.mu.Unlock()
			s.release(ctx)
			return <-req.done, true
		}
		ch.unjoin(req)
		ch.waiters--
		ch.mu.Unlock()
		return nil, false
	case err := <-req.done:
		return err, true
	case <-ctx.Done():
		ch.mu.Lock()
		if req.claimed {
			// The group runs req's fn under ctx, which has ended:
			// its outcome comes soon.
			ch.mu.Unlock()
			return <-req.done, true
		}
		ch.unjoin(req)
		ch.waiters--
		if ch.waiters == 0 && ch.next != nil {
			select {
			case s.sem <- struct{}{}:
				ch.mu.Unlock()
				s.release(ctx)
				return ctx.Err(), false
			default:
			}
		}
		ch.mu.Unlock()
		return ctx.Err(), false
	}
}

// unjoin takes req off the list of changes that may join. Called with mu
// held.
func (ch *sharedChain) unjoin(req *joinReq) {
	if i := slices.Index(ch.joinable, req); i >= 0 {
		ch.joinable = slices.Delete(ch.joinable, i, i+1)
	}
}

// join runs the changes waiting to join, up to maxGroup-1, on txn, whose
// counters stand at c, staging their writes. Should one fail, every
// change claimed is told to run alone and join returns errRunAlone: the
// caller's change runs alone too. Called with sem held.
func (s *sharedMode) join(txn datastore.Txn, c Counters) ([]joined, error) {
	ch := &s.chain
	ch.mu.Lock()
	n := min(len(ch.joinable), s.group-1)
	reqs := slices.Clone(ch.joinable[:n])
	ch.joinable = slices.Delete(ch.joinable, 0, n)
	for _, r := range reqs {
		r.claimed = true
		ch.waiters--
	}
	ch.mu.Unlock()
	var out []joined
	for _, r := range reqs {
		err := r.ctx.Err()
		var tx *Tx
		if err == nil {
			tx = &Tx{e: s.e, ctx: r.ctx, c: c, base: c, txn: txn}
			err = run(r.fn, tx)
		}
		if err == nil {
			err = r.ctx.Err()
		}
		if err == nil && tx.Dirty() {
			meta, _, _ := s.ds.plan(tx.ops, c, tx.c)
			err = s.ds.stage(r.ctx, txn, meta)
		}
		if err != nil {
			for _, r := range reqs {
				r.done <- errRunAlone
			}
			return nil, errRunAlone
		}
		c = tx.c
		out = append(out, joined{req: r, tx: tx})
	}
	return out, nil
}

// groupCtx returns the ctx of a group's COMMIT, which is every member's:
// it ends the grace after the first of their ctxs ends (so that no call
// returns later than the grace after its own ctx ends, and one call's end
// does not cut the others' COMMIT short), or when stop is called.
func (s *sharedMode) groupCtx(ctx context.Context, joined []joined) (_ context.Context, stop func()) {
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var mu sync.Mutex
	var timer *time.Timer
	stopped := false
	ended := func() {
		mu.Lock()
		defer mu.Unlock()
		if !stopped && timer == nil {
			timer = time.AfterFunc(s.grace, cancel)
		}
	}
	stops := []func() bool{context.AfterFunc(ctx, ended)}
	for _, j := range joined {
		stops = append(stops, context.AfterFunc(j.req.ctx, ended))
	}
	return gctx, func() {
		for _, f := range stops {
			f()
		}
		mu.Lock()
		stopped = true
		if timer != nil {
			timer.Stop()
		}
		mu.Unlock()
		cancel()
	}
}
