// Package owner holds the capabilities that let the packages of this module
// built on package repo (reservations) do through a repo.Tx what a user of
// the repo may not: write the keys the SDK owns, and reach the repo's
// machinery that has no place in its public API (hooks run once a change is
// staged, watches, scans from a key on, the counters' check, per-repo
// state).
//
// A capability is a Token. Only this package makes them, and it is
// internal, so no code outside this module can hold one: the exported
// methods of package repo that take a Token (repo.Tx.Owner,
// repo.Repo.Owner, repo.WithOwnerStorage) refuse the zero Token, the only
// one a user can write. The methods of Tx, Repo and Watch name no type of
// internal/engine: the packages that hold a Token see the repo only
// through repo's public API and these, and import nothing of the engine.
package owner

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ipfs/go-datastore"

	"github.com/stowage/stowage/internal/engine"
)

// Token is a capability: the Tx it is given to (repo.Tx.Owner) may write
// the keys under its prefixes. The zero Token grants nothing.
type Token struct{ g *grant }

type grant struct {
	name     string
	prefixes []string // each with a trailing "/"
}

// Reservations is package reservations' capability: the records under
// /meta/sales.
var Reservations = Token{&grant{name: "reservations", prefixes: []string{"/meta/sales/"}}}

// Valid reports whether t was made by this package.
func (t Token) Valid() bool { return t.g != nil }

// Name names the capability's holder, for errors.
func (t Token) Name() string {
	if t.g == nil {
		return "none"
	}
	return t.g.name
}

// Owns reports whether t grants writing the key whose string form is key.
func (t Token) Owns(key string) bool {
	if t.g == nil {
		return false
	}
	for _, p := range t.g.prefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// ID identifies the capability, as a map key for per-repo state.
func (t Token) ID() any { return t.g }

// ErrReservedKey is re-exported by package repo: a key the SDK owns,
// written by a Tx whose capability does not own it.
var ErrReservedKey = errors.New("repo: key reserved for the SDK")

// SDKKey reports whether the SDK owns key (its string form): /meta,
// /blocks and what lies under them.
func SDKKey(key string) bool {
	for _, p := range [...]string{"/meta", "/blocks"} {
		if strings.HasPrefix(key, p) && (len(key) == len(p) || key[len(p)] == '/') {
			return true
		}
	}
	return false
}

// Tx is a repo.Tx in the hands of its owner (repo.Tx.Owner): the record
// and quota methods of repo.Tx, without the key checks but for the
// ownership of what it writes, and the ones only owners need. It is a
// concrete type, so that the functions given to its scans stay on the
// caller's stack. Its methods name no type of internal/engine; package
// repo makes it with NewTx.
type Tx struct {
	t   *engine.Tx
	own Token
}

// NewTx returns the Tx of a change in the hands of own. For package repo.
func NewTx(t *engine.Tx, own Token) Tx { return Tx{t: t, own: own} }

// Get reads a record as the change sees it; a missing one is
// datastore.ErrNotFound.
func (tx Tx) Get(key datastore.Key) ([]byte, error) { return tx.t.Get(key) }

// Has reports whether a record exists as the change sees it.
func (tx Tx) Has(key datastore.Key) (bool, error) { return tx.t.Has(key) }

// Put writes a record with the change: ErrReservedKey for a key the SDK
// owns that the capability does not.
func (tx Tx) Put(key datastore.Key, value []byte) error {
	if err := tx.check(key); err != nil {
		return err
	}
	return tx.t.Put(key, value)
}

// Delete removes a record with the change, checked as Put.
func (tx Tx) Delete(key datastore.Key) error {
	if err := tx.check(key); err != nil {
		return err
	}
	return tx.t.Delete(key)
}

func (tx Tx) check(key datastore.Key) error {
	if s := key.String(); !tx.own.Owns(s) && SDKKey(s) {
		return fmt.Errorf("%w: %s is not %s's", ErrReservedKey, key, tx.own.Name())
	}
	return nil
}

// Reserve adds n to Reserved (repo.ErrQuotaNotEnough).
func (tx Tx) Reserve(n uint64) error { return tx.t.Reserve(n) }

// Release takes n from Reserved (repo.ErrReleaseExceedsReserved).
func (tx Tx) Release(n uint64) error { return tx.t.Release(n) }

// Scan is ScanAfter with no start.
func (tx Tx) Scan(prefix datastore.Key, keysOnly bool, fn func(key string, value []byte) error) error {
	return tx.t.ScanAfter(prefix, "", keysOnly, fn)
}

// ScanAfter calls fn for each record under prefix whose key sorts after
// after (all when empty), in key order, as the change sees them. A read
// error, or fn's, ends it with that error.
func (tx Tx) ScanAfter(prefix datastore.Key, after string, keysOnly bool, fn func(key string, value []byte) error) error {
	return tx.t.ScanAfter(prefix, after, keysOnly, fn)
}

// BlockSize returns the size of the block under key and whether it
// exists, as the change sees it.
func (tx Tx) BlockSize(key datastore.Key) (uint64, bool, error) { return tx.t.BlockSize(key) }

// ReplaceBlock is PutBlock for a caller that has just read the size of the
// block under key with BlockSize (zero: none).
func (tx Tx) ReplaceBlock(key datastore.Key, data []byte, old uint64) error {
	return tx.t.ReplaceBlock(key, data, old)
}

// ForgetBlock deletes a block whose size the owner's records give, taking
// that size from Used without reading the block.
func (tx Tx) ForgetBlock(key datastore.Key, size uint64) error { return tx.t.ForgetBlock(key, size) }

// AfterStage registers f to run once the change has joined the commit
// queue (or is done, writing nothing), under the staging lock; not for a
// change abandoned.
func (tx Tx) AfterStage(f func()) { tx.t.AfterStage(f) }

// Generation changes whenever staged changes were dropped or the database
// reopened: state derived from earlier reads is stale.
func (tx Tx) Generation() uint64 { return tx.t.Generation() }

// Shared reports whether the repo runs in shared mode, where other
// processes change the datastore unseen.
func (tx Tx) Shared() bool { return tx.t.Shared() }

// Dirty reports whether the change has written or moved a counter.
func (tx Tx) Dirty() bool { return tx.t.Dirty() }

// Counters returns Used and Reserved as the change leaves them.
func (tx Tx) Counters() (used, reserved uint64) {
	c := tx.t.Counters()
	return c.Used, c.Reserved
}

// VerifyCounters is repo.Repo.Verify's check, on this Tx's state.
func (tx Tx) VerifyCounters() error { return tx.t.VerifyCounters() }

// Repo is a repo.Repo in the hands of an owner.
type Repo interface {
	// Snapshot runs fn on a read-only Tx of a state between two
	// committed changes, with the counters memory held for it (what a
	// Verify compares).
	Snapshot(ctx context.Context, fn func(tx Tx) error) error
	// Get reads one durable record.
	Get(ctx context.Context, key datastore.Key) ([]byte, error)
	// Watch starts watching the puts of records under prefix.
	Watch(prefix datastore.Key) Watch
	// CheckBlockKey is the check of a block's key that repo.PutBlock
	// makes (repo.ErrInvalidKey).
	CheckBlockKey(key datastore.Key) error
	// State returns the owner's state for this repo, made with mk on
	// first use: one per repo and capability, shared by every user of
	// the repo in the process.
	State(mk func() any) any
}

// Watch tells whether a change staged since it started put a record under
// its prefix.
type Watch interface {
	Hit() bool
	Stop()
}
