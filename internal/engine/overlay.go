package engine

import "slices"

// overlay holds the writes of the changes staged but not yet durable, and
// of the last durable group, so that a change reads what changes staged
// before it wrote (read-your-pipelined-writes). It is not safe for
// concurrent use: the engine guards it with the staging lock.
type overlay struct {
	m map[okey]pending
	// keys are the metadata keys of m, sorted, for a scan in key order.
	keys []string
	// retired are durable groups whose writes are still in m.
	retired [][]*change
}

// pending is the last write of one key in the overlay, by the change seq.
type pending struct {
	value []byte
	del   bool
	seq   uint64
}

func newOverlay() overlay { return overlay{m: map[okey]pending{}} }

// add records the writes of the change seq, staged after every change
// already in the overlay.
func (ov *overlay) add(ops []op, seq uint64) {
	for _, o := range ops {
		if _, ok := ov.m[o.okey]; !ok && !o.blocks {
			if i, found := slices.BinarySearch(ov.keys, o.key); !found {
				ov.keys = slices.Insert(ov.keys, i, o.key)
			}
		}
		ov.m[o.okey] = pending{value: o.value, del: o.del, seq: seq}
	}
}

// get returns the last pending write of k.
func (ov *overlay) get(k okey) (pending, bool) {
	p, ok := ov.m[k]
	return p, ok
}

// retire drops what durable groups wrote, one group late: a caller's
// next change, staged while the following group is being written, then
// reads what its last change wrote from memory rather than from the
// datastore (the values are the same). When the engine goes idle (no
// change queued) the overlay is emptied, so it never holds more than the
// last two groups' writes. A key written again by a later change stays.
// It returns a group's slice it is done with, emptied, for reuse (nil if
// none).
func (ov *overlay) retire(groups [][]*change, idle bool) (free []*change) {
	ov.retired = append(ov.retired, groups...)
	keep := 1
	if idle {
		keep = 0
	}
	dropped := false
	for len(ov.retired) > keep {
		for _, c := range ov.retired[0] {
			for _, o := range c.ops {
				if p, ok := ov.m[o.okey]; ok && p.seq <= c.seq {
					delete(ov.m, o.okey)
					dropped = dropped || !o.blocks
				}
			}
		}
		free = ov.retired[0]
		clear(free)
		ov.retired[0] = nil
		ov.retired = ov.retired[1:]
	}
	if dropped {
		ov.keys = slices.DeleteFunc(ov.keys, func(k string) bool {
			_, ok := ov.m[okey{key: k}]
			return !ok
		})
	}
	return free[:0]
}

// reset empties the overlay (the changes in it failed).
func (ov *overlay) reset() {
	clear(ov.m)
	ov.keys = ov.keys[:0]
	ov.retired = nil
}

// from returns the sorted metadata keys of the overlay from key start on.
func (ov *overlay) from(start string) []string {
	i, _ := slices.BinarySearch(ov.keys, start)
	return ov.keys[i:]
}
