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
// one a user can write. The interfaces here name no type of
// internal/engine: the packages that hold a Token see the repo only
// through repo's public API and these.
package owner

import (
	"context"
	"strings"

	"github.com/ipfs/go-datastore"
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

// Test is the capability of this module's tests: every key the SDK owns
// (the tests write corrupt records and counters on purpose).
var Test = Token{&grant{name: "test", prefixes: []string{"/"}}}

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

// Tx is a repo.Tx in the hands of its owner: the public methods it shares
// with repo.Tx, without the key check for the owner's keys, and the ones
// only owners need. Its Get, Has, Put and Delete are repo.Tx's.
type Tx interface {
	Get(key datastore.Key) ([]byte, error)
	Has(key datastore.Key) (bool, error)
	Put(key datastore.Key, value []byte) error
	Delete(key datastore.Key) error
	Reserve(n uint64) error
	Release(n uint64) error

	// Scan is ScanAfter with no start.
	Scan(prefix datastore.Key, keysOnly bool, fn func(key string, value []byte) error) error
	// ScanAfter calls fn for each record under prefix whose key sorts
	// after after (all when empty), in key order, as the change sees them.
	// A read error, or fn's, ends it with that error.
	ScanAfter(prefix datastore.Key, after string, keysOnly bool, fn func(key string, value []byte) error) error
	// BlockSize returns the size of the block under key and whether it
	// exists, as the change sees it.
	BlockSize(key datastore.Key) (uint64, bool, error)
	// ReplaceBlock is PutBlock for a caller that has just read the size
	// of the block under key with BlockSize (zero: none).
	ReplaceBlock(key datastore.Key, data []byte, old uint64) error
	// ForgetBlock deletes a block whose size the owner's records give,
	// taking that size from Used without reading the block.
	ForgetBlock(key datastore.Key, size uint64) error

	// AfterStage registers f to run once the change has joined the
	// commit queue (or is done, writing nothing), under the staging
	// lock; not for a change abandoned.
	AfterStage(f func())
	// Generation changes whenever staged changes were dropped or the
	// database reopened: state derived from earlier reads is stale.
	Generation() uint64
	// Shared reports whether the repo runs in shared mode, where other
	// processes change the datastore unseen.
	Shared() bool
	// Dirty reports whether the change has written or moved a counter.
	Dirty() bool
	// Counters returns Used and Reserved as the change leaves them.
	Counters() (used, reserved uint64)
	// VerifyCounters is repo.Repo.Verify's check, on this Tx's state.
	VerifyCounters() error
}

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
