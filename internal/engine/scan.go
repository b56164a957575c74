package engine

import (
	"slices"
	"strings"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
)

// Scan calls fn for every metadata record under prefix as this change sees
// it, in key order. A read error ends the scan with that error.
func (tx *Tx) Scan(prefix datastore.Key, keysOnly bool, fn func(key string, value []byte) error) error {
	return tx.ScanAfter(prefix, "", keysOnly, fn)
}

// ScanAfter is Scan of the records under prefix whose keys sort after
// after (all of them when after is empty). On the embedded LevelDB it
// reads from there on: a change that works through many records in steps
// (a big reservation's blocks) so reads each only once, not the deletes of
// the steps before it.
func (tx *Tx) ScanAfter(prefix datastore.Key, after string, keysOnly bool, fn func(key string, value []byte) error) error {
	type entry struct {
		key   string
		value []byte
	}
	var entries []entry
	p := prefix.String() + "/"
	inPrefix := func(k string) bool { return p == "//" || strings.HasPrefix(k, p) }
	under := func(k string) bool { return inPrefix(k) && k > after }
	var pendingKeys map[string]bool // written by this change or one in flight
	add := func(k okey, value []byte, del bool) {
		if k.blocks || pendingKeys[k.key] || !under(k.key) {
			return
		}
		if pendingKeys == nil {
			pendingKeys = map[string]bool{}
		}
		pendingKeys[k.key] = true
		if !del {
			entries = append(entries, entry{k.key, value})
		}
	}
	for i := len(tx.ops) - 1; i >= 0; i-- {
		add(tx.ops[i].okey, tx.ops[i].value, tx.ops[i].del)
	}
	var keys []string // the overlay's, empty in shared mode and in a snapshot
	if tx.snap == nil {
		keys = tx.e.overlay.from(max(p, after))
	}
	for i := 0; i < len(keys) && inPrefix(keys[i]); i++ {
		k := okey{key: keys[i]}
		pd, _ := tx.e.overlay.get(k)
		add(k, pd.value, pd.del)
	}
	if tx.snap == nil {
		// A change holds the staging lock, which a reopen needs too: fn
		// may read again under this read lock. A view's snapshot is
		// replaced by no reopen and needs none.
		tx.e.dbMu.RLock()
		defer tx.e.dbMu.RUnlock()
	}
	store := tx.metaStore()
	if pendingKeys == nil {
		// Nothing pending under prefix: the store's own order is the
		// answer, with nothing collected or sorted.
		if ok, err := orderedScan(store, prefix, after, keysOnly, fn); ok {
			return err
		}
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.key, b.key) })
	// The embedded LevelDB (or its snapshot) iterates in key order: merge
	// the pending entries into its scan, so that fn stopping early (an
	// error) ends the scan there rather than after reading every key (a
	// big reservation is deleted in steps that read only what they
	// delete).
	next := 0
	ok, err := orderedScan(store, prefix, after, keysOnly, func(key string, value []byte) error {
		for ; next < len(entries) && entries[next].key < key; next++ {
			if err := fn(entries[next].key, entries[next].value); err != nil {
				return err
			}
		}
		if pendingKeys[key] {
			return nil
		}
		return fn(key, value)
	})
	if ok {
		if err != nil {
			return err
		}
		for ; next < len(entries); next++ {
			if err := fn(entries[next].key, entries[next].value); err != nil {
				return err
			}
		}
		return nil
	}
	// No order asked of the store: the entries are sorted below, with the
	// pending ones among them.
	err = scan(tx.ctx, store, prefix, keysOnly, nil, func(en query.Entry) error {
		if !pendingKeys[en.Key] && en.Key > after {
			entries = append(entries, entry{en.Key, en.Value})
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.key, b.key) })
	for _, en := range entries {
		if err := fn(en.key, en.value); err != nil {
			return err
		}
	}
	return nil
}
