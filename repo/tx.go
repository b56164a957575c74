package repo

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ipfs/go-datastore"
	"github.com/syndtr/goleveldb/leveldb/storage"

	"github.com/stowage/stowage/internal/engine"
	"github.com/stowage/stowage/internal/owner"
)

// Update runs fn as one atomic, durable change: the records it puts and
// deletes, the bytes it reserves and releases and the blocks it writes
// and deletes reach the datastore together, in one commit, or not at all.
// Update returns once the change is durable (nil), or with fn's error,
// which abandons the change (nothing is written), or with the error that
// kept the change from the datastore (ErrWriteFailed: see there).
//
// fn runs under the repo's staging lock, so every change sees the ones
// before it: keep it short and do no I/O of your own in it. A panic in fn
// abandons the change and is returned as an error matching ErrPanic. In
// shared mode (WithShared) fn runs again when the datastore rolls its
// transaction back for a conflict: it must have no effect but through
// its Tx. The Tx is valid only until fn returns.
func (r *Repo) Update(ctx context.Context, fn func(tx *Tx) error) error {
	if fn == nil {
		return fmt.Errorf("%w: nil function", ErrInvalidOption)
	}
	tx := begin(fn, false)
	defer tx.end()
	return r.eng.Update(ctx, tx.run)
}

// View runs fn on a Tx that reads one consistent state of the repo: the
// records, blocks and counters as one committed change left them (blocks
// in a separate block store, WithBlockstore, are read as they are when
// read). Its writes fail with ErrReadOnly. On the embedded LevelDB a View
// reads a snapshot and holds no change off; in shared mode it is one
// read-only transaction; on other datastores changes wait while fn runs.
// fn's error, or a panic in it (ErrPanic), is returned.
func (r *Repo) View(ctx context.Context, fn func(tx *Tx) error) error {
	if fn == nil {
		return fmt.Errorf("%w: nil function", ErrInvalidOption)
	}
	tx := begin(fn, true)
	defer tx.end()
	return r.eng.Read(ctx, tx.run)
}

// txs recycles the Tx of the packages holding a capability (Tx.Owner),
// which never keep one beyond their function: an Update of theirs then
// allocates nothing here. A user's Tx is never recycled, so one kept
// beyond its function only fails (errTxDone); it cannot reach another
// change.
var txs = sync.Pool{New: func() any {
	tx := new(Tx)
	tx.run = tx.call
	return tx
}}

func begin(fn func(*Tx) error, view bool) *Tx {
	tx := txs.Get().(*Tx)
	tx.fn, tx.view = fn, view
	return tx
}

// call runs the function on one attempt of the change (shared mode may
// make several).
func (tx *Tx) call(t *engine.Tx) (err error) {
	tx.t, tx.own, tx.owned = t, owner.Tx{}, false
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", ErrPanic, p)
		}
	}()
	return tx.fn(tx)
}

func (tx *Tx) end() {
	if tx.owned {
		*tx = Tx{run: tx.run}
		txs.Put(tx)
		return
	}
	tx.t, tx.fn = nil, nil
}

// errTxDone is the use of a Tx after its function returned.
var errTxDone = fmt.Errorf("%w: Tx used after its function returned", ErrClosed)

// Tx is one change being made by Update, or one state being read by
// View. It reads its own writes first, then the repo.
//
// Records are any keys a datastore.Key can be, but for the ones the SDK
// owns: the keys at and under /meta (the quota counters, the records of
// package reservations) and /blocks (blocks kept in the metadata
// datastore). A Tx reads them, but its Put and Delete refuse them with
// ErrReservedKey: keep your records under a prefix of your own. Blocks go
// through PutBlock and DeleteBlock, which keep Used right.
//
// A Tx is used only by the function it is given to, and only until that
// returns: later, its methods fail with an error matching ErrClosed.
type Tx struct {
	t     *engine.Tx // nil once the function returned
	own   owner.Tx   // what Owner returned
	view  bool
	owned bool
	fn    func(*Tx) error
	run   func(*engine.Tx) error // call, made once per Tx
}

// Get returns the record stored under key, as this change sees it. A
// missing record is an error matching datastore.ErrNotFound; a key no
// record can have, ErrInvalidKey.
func (tx *Tx) Get(key datastore.Key) ([]byte, error) {
	if tx.t == nil {
		return nil, errTxDone
	}
	if err := engine.CheckBlockKey(key); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	return tx.t.Get(key)
}

// Has reports whether a record is stored under key, as this change sees
// it.
func (tx *Tx) Has(key datastore.Key) (bool, error) {
	if tx.t == nil {
		return false, errTxDone
	}
	if err := engine.CheckBlockKey(key); err != nil {
		return false, fmt.Errorf("has: %w", err)
	}
	return tx.t.Has(key)
}

// Put stores value under key with the change. A key the SDK owns is
// refused with ErrReservedKey, a key no record can have with
// ErrInvalidKey, any write in a View with ErrReadOnly.
func (tx *Tx) Put(key datastore.Key, value []byte) error {
	if tx.t == nil {
		return errTxDone
	}
	if err := tx.writable(key); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	return tx.t.Put(key, value)
}

// Delete removes the record under key with the change (a missing record
// is no error). Keys are refused as Put refuses them.
func (tx *Tx) Delete(key datastore.Key) error {
	if tx.t == nil {
		return errTxDone
	}
	if err := tx.writable(key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	return tx.t.Delete(key)
}

// Scan calls fn for every record under prefix (not prefix itself), as
// this change sees them, in key order: the records written by this change
// in their place, those it deleted left out. An error from fn ends the
// scan and is returned; so is a read error. prefix must be a proper key
// (ErrInvalidKey for the root): a record's key is never scanned with the
// blocks and counters.
func (tx *Tx) Scan(prefix datastore.Key, fn func(key datastore.Key, value []byte) error) error {
	if tx.t == nil {
		return errTxDone
	}
	if err := engine.CheckBlockKey(prefix); err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	return tx.t.Scan(prefix, false, func(key string, value []byte) error {
		return fn(datastore.RawKey(key), value)
	})
}

// Reserve adds n to Reserved, failing with ErrQuotaNotEnough when it does
// not fit under Max (the change goes on without it: fn decides).
func (tx *Tx) Reserve(n uint64) error {
	if tx.t == nil {
		return errTxDone
	}
	if tx.view {
		return ErrReadOnly
	}
	return tx.t.Reserve(n)
}

// Release subtracts n from Reserved, failing with
// ErrReleaseExceedsReserved when n is more than Reserved.
func (tx *Tx) Release(n uint64) error {
	if tx.t == nil {
		return errTxDone
	}
	if tx.view {
		return ErrReadOnly
	}
	return tx.t.Release(n)
}

// PutBlock stores data under key and adds its length to Used (an
// overwrite counts the difference), as Repo.PutBlock does, within the
// change: ErrQuotaNotEnough when it does not fit in what is neither used
// nor reserved (Release the bytes first, in the same change), ErrInvalidKey
// for a key no block can have.
func (tx *Tx) PutBlock(key datastore.Key, data []byte) error {
	if tx.t == nil {
		return errTxDone
	}
	if tx.view {
		return ErrReadOnly
	}
	if err := engine.CheckBlockKey(key); err != nil {
		return fmt.Errorf("put block: %w", err)
	}
	return tx.t.PutBlock(key, data)
}

// DeleteBlock removes the block under key and subtracts its size from
// Used, within the change. A missing block is no error.
func (tx *Tx) DeleteBlock(key datastore.Key) error {
	if tx.t == nil {
		return errTxDone
	}
	if tx.view {
		return ErrReadOnly
	}
	if err := engine.CheckBlockKey(key); err != nil {
		return fmt.Errorf("delete block: %w", err)
	}
	_, err := tx.t.DeleteBlock(key)
	return err
}

// Quota returns the counters as the change leaves them so far (in a
// View, as the state read holds them); the zero Quota once the function
// returned.
func (tx *Tx) Quota() Quota {
	if tx.t == nil {
		return Quota{}
	}
	c := tx.t.Counters()
	return Quota{Max: tx.t.Max(), Used: c.Used, Reserved: c.Reserved}
}

// writable checks that the change may write key.
func (tx *Tx) writable(key datastore.Key) error {
	if tx.view {
		return ErrReadOnly
	}
	if err := engine.CheckBlockKey(key); err != nil {
		return err
	}
	if owner.SDKKey(key.String()) {
		return fmt.Errorf("%w: %s", ErrReservedKey, key)
	}
	return nil
}

// Owner hands the change to a package of this module that holds t: the
// returned Tx writes the keys t owns, and offers what only such packages
// need. A user cannot hold a Token (package internal/owner makes them):
// the zero Token fails with ErrReservedKey.
func (tx *Tx) Owner(t owner.Token) (owner.Tx, error) {
	if tx.t == nil {
		return owner.Tx{}, errTxDone
	}
	if !t.Valid() {
		return owner.Tx{}, fmt.Errorf("%w: no capability", ErrReservedKey)
	}
	tx.owned = true
	tx.own = owner.NewTx(tx.t, t)
	return tx.own, nil
}

// Owner returns the repo as a package of this module that holds t sees
// it (see Tx.Owner), or nil for the zero Token.
func (r *Repo) Owner(t owner.Token) owner.Repo {
	if !t.Valid() {
		return nil
	}
	return &ownedRepo{r: r, own: t}
}

type ownedRepo struct {
	r   *Repo
	own owner.Token
}

func (o *ownedRepo) Snapshot(ctx context.Context, fn func(tx owner.Tx) error) error {
	return o.r.eng.Snapshot(ctx, func(t *engine.Tx) error {
		return fn(owner.NewTx(t, o.own))
	})
}

func (o *ownedRepo) Get(ctx context.Context, key datastore.Key) ([]byte, error) {
	return o.r.eng.Get(ctx, key)
}

func (o *ownedRepo) Watch(prefix datastore.Key) owner.Watch { return o.r.eng.Watch(prefix) }

func (o *ownedRepo) CheckBlockKey(key datastore.Key) error { return engine.CheckBlockKey(key) }

func (o *ownedRepo) State(mk func() any) any {
	o.r.stateMu.Lock()
	defer o.r.stateMu.Unlock()
	if o.r.state == nil {
		o.r.state = map[any]any{}
	}
	v, ok := o.r.state[o.own.ID()]
	if !ok {
		v = mk()
		o.r.state[o.own.ID()] = v
	}
	return v
}

// ownerState is what a Repo keeps for the packages holding a Token.
type ownerState struct {
	stateMu sync.Mutex
	state   map[any]any // per capability: Owner(t).State
}

// WithOwnerStorage wraps the goleveldb storage of the database Open opens,
// at every opening, for the tests of a package of this module that holds
// t (fault injection). The zero Token makes New and Open fail with
// ErrInvalidOption.
func WithOwnerStorage(t owner.Token, wrap func(storage.Storage) storage.Storage) Option {
	return func(o *options) {
		if !t.Valid() {
			o.bad = errors.New("WithOwnerStorage without a capability")
			return
		}
		o.wrapStorage = wrap
	}
}
