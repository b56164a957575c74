// Package faultfs injects faults into the goleveldb storage behind
// repo.Open, for tests: it fails the journal's fsync on demand, and plays
// a full disk.
package faultfs

import (
	"errors"
	"os"
	"sync/atomic"
	"syscall"

	"github.com/syndtr/goleveldb/leveldb/storage"
)

// ErrInjected is the error of an injected fault.
var ErrInjected = errors.New("faultfs: injected fsync failure")

// Faults controls the storages made by its Wrap; one Faults serves every
// reopening of a database.
type Faults struct {
	armed atomic.Bool
	fired atomic.Int32
	full  atomic.Bool
}

// SetFull makes the disk full (every write, fsync and new CURRENT file
// fails with an error that errors.Is syscall.ENOSPC, as a full disk's
// does) or gives the space back.
func (f *Faults) SetFull(full bool) { f.full.Store(full) }

// noSpace is a full disk's answer for the file named name, or nil.
func (f *Faults) noSpace(op, name string) error {
	if !f.full.Load() {
		return nil
	}
	f.fired.Add(1)
	return &os.PathError{Op: op, Path: name, Err: syscall.ENOSPC}
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
	if err != nil {
		return w, err
	}
	return &writer{Writer: w, f: s.f, name: fd.String(), journal: fd.Type == storage.TypeJournal}, nil
}

func (s *stor) SetMeta(fd storage.FileDesc) error {
	if err := s.f.noSpace("write", "CURRENT"); err != nil {
		return err
	}
	return s.Storage.SetMeta(fd)
}

type writer struct {
	storage.Writer
	f       *Faults
	name    string
	journal bool
}

func (w *writer) Write(p []byte) (int, error) {
	if err := w.f.noSpace("write", w.name); err != nil {
		return 0, err
	}
	return w.Writer.Write(p)
}

func (w *writer) Sync() error {
	if w.journal && w.f.armed.CompareAndSwap(true, false) {
		w.f.fired.Add(1)
		return ErrInjected
	}
	if err := w.f.noSpace("sync", w.name); err != nil {
		return err
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
