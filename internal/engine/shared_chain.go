package engine

import (
	"context"
	"sync"

	"github.com/ipfs/go-datastore"
)

// acquire takes sem, counting the call among the chain's waiters while it
// waits, so that locks handed over are taken or ended.
func (s *sharedMode) acquire(ctx context.Context) error {
	ch := &s.chain
	ch.mu.Lock()
	ch.waiters++
	ch.mu.Unlock()
	select {
	case s.sem <- struct{}{}:
		ch.mu.Lock()
		ch.waiters--
		ch.mu.Unlock()
		return nil
	case <-ctx.Done():
		ch.mu.Lock()
		ch.waiters--
		if ch.waiters == 0 && ch.next != nil {
			// Handed locks no one will take: end them, unless a
			// holder of sem will (release).
			select {
			case s.sem <- struct{}{}:
				ch.mu.Unlock()
				s.release(ctx)
				return ctx.Err()
			default:
			}
		}
		ch.mu.Unlock()
		return ctx.Err()
	}
}

// release frees sem, first ending the locks handed over if no call waits
// to take them.
func (s *sharedMode) release(ctx context.Context) {
	ch := &s.chain
	for {
		ch.mu.Lock()
		if ch.waiters > 0 || ch.next == nil {
			<-s.sem
			ch.mu.Unlock()
			return
		}
		n := ch.next
		ch.next = nil
		ch.mu.Unlock()
		s.discard(ctx, n)
	}
}

// A host whose changes queue behind each other hands the counters' locks
// from one change to the next without releasing them (chainTxn: pgds),
// at most maxChain changes in a row, so that another host's changes, queued
// on the server for the same locks, get their turn. This saves each
// handed-on change a round trip, and the fleet the wake-up of another
// process for each change.
const maxChain = 8

// chainTxn is a transaction that commits and begins the next one on the
// same locks in one round trip (pgds's CommitAndBegin).
type chainTxn interface {
	CommitAndBegin(ctx context.Context, prefetch []datastore.Key) (datastore.Txn, error)
}

// sharedChain is the hand-over of locks between the changes of a host.
// Invariant: sem is free only while next is nil or waiters is not zero,
// so that locks handed over are always taken or ended.
type sharedChain struct {
	mu      sync.Mutex    // see the lock order on Engine
	waiters int           // calls waiting for sem
	next    datastore.Txn // begun, locks held, for the next change
	run     int           // changes in a row on the same locks
	// joinable: changes waiting for sem that a group may take (each
	// also counted in waiters until taken).
	joinable []*joinReq
}

// take returns the transaction the last change handed over, if any.
// Called with sem held.
func (ch *sharedChain) take() datastore.Txn {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	n := ch.next
	ch.next = nil
	if n == nil {
		ch.run = 0
	}
	return n
}

// commit commits txn, handing its locks to the next change when one waits
// and the run is not too long. Called with sem held.
func (ch *sharedChain) commit(ctx context.Context, txn datastore.Txn) error {
	c, ok := txn.(chainTxn)
	ch.mu.Lock()
	chain := ok && ch.waiters > 0 && ch.run < maxChain-1
	ch.mu.Unlock()
	if !chain {
		return txn.Commit(ctx)
	}
	next, err := c.CommitAndBegin(ctx, counterKeys)
	if next != nil {
		ch.mu.Lock()
		ch.next = next
		ch.run++
		ch.mu.Unlock()
	}
	return err
}
