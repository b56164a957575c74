// Package faultfs injects faults into the goleveldb storage behind
// repo.Open, for tests: it fails the journal's fsync on demand.
package faultfs

import (
	"errors"
	"sync/atomic"

	"github.com/syndtr/goleveldb/leveldb/storage"
)

// ErrInjected is the error of an injected fault.
var ErrInjected = errors.New("faultfs: injected fsync failure")

// Faults controls the storages made by its Wrap; one Faults serves every
// reopening of a database.
type Faults struct {
	armed atomic.Bool
	fired atomic.Int32
}

// FailNextJournalSync makes the next fsync of a journal file fail, once.
func (f *Faults) FailNextJournalSync() { f.armed.Store(true) }

// Fired reports how many faults were injected.
func (f *Faults) Fired() int { return int(f.fired.Load()) }

// Wrap wraps a goleveldb storage (ldb.Options.WrapStorage).
func (f *Faults) Wrap(s storage.Storage) storage.Storage { return &stor{Storage: s, f: f} }

type stor struct {
	storage.Storage
	f *Faults
}

func (s *stor) Create(fd storage.FileDesc) (storage.Writer, error) {
	w, err := s.Storage.Create(fd)
	if err != nil || fd.Type != storage.TypeJournal {
		return w, err
	}
	return &writer{Writer: w, f: s.f}, nil
}

type writer struct {
	storage.Writer
	f *Faults
}

func (w *writer) Sync() error {
	if w.f.armed.CompareAndSwap(true, false) {
		w.f.fired.Add(1)
		return ErrInjected
	}
	return w.Writer.Sync()
}

// CountSyncs wraps a goleveldb storage so that n counts the fsyncs of its
// journal: one per durable write (benchmarks report writes per fsync).
func CountSyncs(s storage.Storage, n *atomic.Int64) storage.Storage {
	return counting{Storage: s, n: n}
}

type counting struct {
	storage.Storage
	n *atomic.Int64
}

func (s counting) Create(fd storage.FileDesc) (storage.Writer, error) {
	w, err := s.Storage.Create(fd)
	if err != nil || fd.Type != storage.TypeJournal {
		return w, err
	}
	return countingWriter{Writer: w, n: s.n}, nil
}

type countingWriter struct {
	storage.Writer
	n *atomic.Int64
}

func (w countingWriter) Sync() error {
	w.n.Add(1)
	return w.Writer.Sync()
}
