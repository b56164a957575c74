package slotqueue

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/holiman/uint256"

	"github.com/stowage/stowage"
)

// sortedSlice is the baseline the core is measured against, and the model
// the core is checked against: a slice kept sorted by binary-search
// insertion, worst item first and best last (so pop is a truncation and a
// drop is a shift of the items below the new one), with a map from slot to
// entry for membership and for finding an entry to delete. It compares with
// the same precomputed profitability as the core, so only the data
// structures differ.
type sortedSlice struct {
	maxSize int
	s       []sortedEntry
	slots   map[slotKey]sortedEntry
	rank    func(*Item) uint64 // tie rank, the same as the core compared with
}

type sortedEntry struct {
	profit uint256.Int
	rank   uint64
	item   Item
}

// newSortedSlice returns a sorted slice ordering ties by rank, which should
// be the tieRank of the core it is compared with.
func newSortedSlice(maxSize int, rank func(*Item) uint64) *sortedSlice {
	hint := min(maxSize, 1024)
	return &sortedSlice{
		rank:    rank,
		maxSize: maxSize,
		s:       make([]sortedEntry, 0, hint),
		slots:   make(map[slotKey]sortedEntry, hint),
	}
}

func (s *sortedSlice) len() int { return len(s.s) }

func (s *sortedSlice) contains(request stowage.RequestID, index uint64) bool {
	_, ok := s.slots[slotKey{request, index}]
	return ok
}

// above returns how many entries are served after x: x's position.
func (s *sortedSlice) above(x *sortedEntry) int {
	return sort.Search(len(s.s), func(i int) bool {
		return !servedBefore(&x.item, &x.profit, x.rank, &s.s[i].item, &s.s[i].profit, s.s[i].rank)
	})
}

func (s *sortedSlice) push(it Item) (Item, bool, error) {
	key := slotKey{it.RequestID, it.Index}
	if _, ok := s.slots[key]; ok {
		return Item{}, false, ErrItemExists
	}
	x := sortedEntry{profit: it.Profitability(), rank: s.rank(&it), item: it}
	pos := s.above(&x)
	var dropped Item
	var didDrop bool
	if len(s.s) >= s.maxSize {
		if pos == 0 {
			return it, true, nil
		}
		dropped, didDrop = s.s[0].item, true
		delete(s.slots, slotKey{dropped.RequestID, dropped.Index})
		copy(s.s[:pos-1], s.s[1:pos])
		s.s[pos-1] = x
	} else {
		s.s = append(s.s, sortedEntry{})
		copy(s.s[pos+1:], s.s[pos:])
		s.s[pos] = x
	}
	s.slots[key] = x
	return dropped, didDrop, nil
}

func (s *sortedSlice) pop() (Item, bool) {
	n := len(s.s)
	if n == 0 {
		return Item{}, false
	}
	it := s.s[n-1].item
	s.s = s.s[:n-1]
	delete(s.slots, slotKey{it.RequestID, it.Index})
	return it, true
}

func (s *sortedSlice) delete(request stowage.RequestID, index uint64) bool {
	key := slotKey{request, index}
	x, ok := s.slots[key]
	if !ok {
		return false
	}
	delete(s.slots, key)
	pos := s.above(&x)
	s.s = slices.Delete(s.s, pos, pos+1)
	return true
}

// deleteRequest, expire, clearSeen and items serve the model tests only;
// they may be slow.
func (s *sortedSlice) deleteRequest(request stowage.RequestID) int {
	n := len(s.s)
	s.s = slices.DeleteFunc(s.s, func(e sortedEntry) bool { return e.item.RequestID == request })
	for k := range s.slots {
		if k.request == request {
			delete(s.slots, k)
		}
	}
	return n - len(s.s)
}

func (s *sortedSlice) expire(now time.Time) []Item {
	var out []Item
	s.s = slices.DeleteFunc(s.s, func(e sortedEntry) bool {
		if !expired(e.item.Expiry, now) {
			return false
		}
		out = append(out, e.item)
		delete(s.slots, slotKey{e.item.RequestID, e.item.Index})
		return true
	})
	return out
}

func (s *sortedSlice) clearSeen() {
	old := s.s
	s.s, s.slots = s.s[:0:0], make(map[slotKey]sortedEntry)
	for _, e := range old {
		e.item.Seen = false
		_, _, _ = s.push(e.item)
	}
}

func (s *sortedSlice) items() []Item {
	out := make([]Item, len(s.s))
	for i, e := range s.s {
		out[len(s.s)-1-i] = e.item
	}
	return out
}

// benchQueue is what the benchmarks exercise: the core and the baseline.
type benchQueue interface {
	push(Item) (Item, bool, error)
	pop() (Item, bool)
	contains(stowage.RequestID, uint64) bool
	delete(stowage.RequestID, uint64) bool
	len() int
}

var benchStructures = []struct {
	name string
	make func(maxSize int) benchQueue
}{
	{"heap", func(n int) benchQueue { return newCore(n, 1) }},
	{"sorted", func(n int) benchQueue { return newSortedSlice(n, newCore(1, 1).tieRank) }},
}

var benchSizes = []int{128, 65535}

// benchItem returns a distinct slot (request i, slot 0) with the given
// reward and otherwise fixed terms, so profitability decides the order.
func benchItem(i uint64, reward uint64) Item {
	it := Item{Slot: stowage.Slot{Ask: stowage.StorageAsk{SlotSize: 1 << 20, Duration: 1000}, Expiry: time.Unix(1<<40, 0)}}
	binary.BigEndian.PutUint64(it.RequestID[:8], i)
	it.Ask.Reward.SetUint64(reward)
	it.Ask.Collateral.SetUint64(10)
	return it
}

// fill pushes n new slots with random rewards. It pushes them worst first so
// that filling the sorted baseline is not quadratic; the result is the same
// whatever the order.
func fill(q benchQueue, n int, next *uint64, rng *rand.Rand) []Item {
	rewards := make([]uint64, n)
	for i := range rewards {
		rewards[i] = rng.Uint64()
	}
	slices.Sort(rewards)
	items := make([]Item, n)
	for i := range items {
		items[i] = benchItem(*next, rewards[i])
		*next++
		if _, _, err := q.push(items[i]); err != nil {
			panic(err)
		}
	}
	return items
}

func runBench(b *testing.B, f func(b *testing.B, q benchQueue, size int)) {
	for _, size := range benchSizes {
		for _, st := range benchStructures {
			b.Run(fmt.Sprintf("size=%d/%s", size, st.name), func(b *testing.B) {
				f(b, st.make(size), size)
			})
		}
	}
}

// warmUp brings a queue of the given size to the steady state of 4×size
// pushes of benchItem(i, reward(i)): it pushes only the items those pushes
// would keep, worst first, so that the sorted baseline fills in linear
// time. It returns the next i.
func warmUp(size int, reward func(uint64) uint64, push func(Item) error) uint64 {
	n := uint64(4 * size)
	kept := make([]uint64, n)
	for i := range kept {
		kept[i] = uint64(i)
	}
	slices.SortFunc(kept, func(a, b uint64) int { return cmp.Compare(reward(a), reward(b)) })
	for _, i := range kept[n-uint64(size):] {
		if err := push(benchItem(i, reward(i))); err != nil {
			panic(err)
		}
	}
	return n
}

// BenchmarkPushEvict pushes onto a full queue, so every push drops the
// lowest-priority item. Rewards grow by one per push plus an exponential
// jitter with a mean of the queue size: in steady state that makes each new
// item land at a uniformly random rank among the queued ones and never be
// the one dropped, so neither structure gets an easy end.
func BenchmarkPushEvict(b *testing.B) {
	runBench(b, func(b *testing.B, q benchQueue, size int) {
		rng := rand.New(rand.NewPCG(1, 2))
		jitter := make([]uint64, 1<<12)
		for i := range jitter {
			jitter[i] = uint64(rng.ExpFloat64() * float64(size) * 1024)
		}
		reward := func(i uint64) uint64 { return i*1024 + jitter[i%uint64(len(jitter))] }
		i := warmUp(size, reward, func(it Item) error { _, _, err := q.push(it); return err })
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, _, err := q.push(benchItem(i, reward(i))); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkPop pops from a queue filled with random priorities (the refills
// are not timed).
func BenchmarkPop(b *testing.B) {
	runBench(b, func(b *testing.B, q benchQueue, size int) {
		rng := rand.New(rand.NewPCG(1, 2))
		var next uint64
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if q.len() == 0 {
				b.StopTimer()
				fill(q, size, &next, rng)
				b.StartTimer()
			}
			q.pop()
		}
	})
}

// BenchmarkContains looks up slots in a full queue, half of them queued.
func BenchmarkContains(b *testing.B) {
	runBench(b, func(b *testing.B, q benchQueue, size int) {
		rng := rand.New(rand.NewPCG(1, 2))
		var next uint64
		items := fill(q, size, &next, rng)
		absent := benchItem(next, 0).RequestID
		b.ReportAllocs()
		b.ResetTimer()
		found := 0
		for i := range b.N {
			id := absent
			if i&1 == 0 {
				id = items[(i>>1)%len(items)].RequestID
			}
			if q.contains(id, 0) {
				found++
			}
		}
		if b.N > 1 && found == 0 {
			b.Fatal("nothing found")
		}
	})
}

// BenchmarkDelete deletes every slot of a full queue in random order (the
// refills are not timed).
func BenchmarkDelete(b *testing.B) {
	runBench(b, func(b *testing.B, q benchQueue, size int) {
		rng := rand.New(rand.NewPCG(1, 2))
		var next uint64
		var items []Item
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if len(items) == 0 {
				b.StopTimer()
				items = fill(q, size, &next, rng)
				rng.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
				b.StartTimer()
			}
			it := items[len(items)-1]
			items = items[:len(items)-1]
			if !q.delete(it.RequestID, it.Index) {
				b.Fatal("not deleted")
			}
		}
	})
}

// BenchmarkQueuePushEvict is BenchmarkPushEvict through the public Queue
// (lock, duplicate check, wake-up) with its only worker held busy, so items
// stay waiting.
func BenchmarkQueuePushEvict(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			busy := make(chan struct{})
			q, err := New(func(ctx context.Context, _ Item) error {
				close(busy)
				<-ctx.Done()
				return nil
			}, WithMaxWorkers(1), WithMaxSize(size))
			if err != nil {
				b.Fatal(err)
			}
			q.Start()
			defer q.Stop()
			if err := q.Push(benchItem(1<<62, 0)); err != nil {
				b.Fatal(err)
			}
			<-busy

			rng := rand.New(rand.NewPCG(1, 2))
			jitter := make([]uint64, 1<<12)
			for i := range jitter {
				jitter[i] = uint64(rng.ExpFloat64() * float64(size) * 1024)
			}
			reward := func(i uint64) uint64 { return i*1024 + jitter[i%uint64(len(jitter))] }
			i := warmUp(size, reward, func(it Item) error { return q.Push(it) })
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := q.Push(benchItem(i, reward(i))); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkPushPop keeps a queue one short of full and, per iteration,
// pushes an item of random priority and pops the best: the work of one item
// passing through a busy queue.
func BenchmarkPushPop(b *testing.B) {
	runBench(b, func(b *testing.B, q benchQueue, size int) {
		rng := rand.New(rand.NewPCG(1, 2))
		var next uint64
		fill(q, size-1, &next, rng)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, _, err := q.push(benchItem(next, rng.Uint64())); err != nil {
				b.Fatal(err)
			}
			next++
			q.pop()
		}
	})
}

// BenchmarkWorkers passes items through a running queue to its pool of
// workers, whose process function does nothing: the cost per item of the
// queue's shell (lock, heap, wake-up, bookkeeping). Compare with
// BenchmarkWorkers_Baseline, the bare hand-off to as many goroutines over a
// channel.
func BenchmarkWorkers(b *testing.B) {
	for _, workers := range []int{1, 3} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			var wg sync.WaitGroup
			q, err := New(func(context.Context, Item) error { wg.Done(); return nil },
				WithMaxWorkers(workers), WithMaxSize(DefaultMaxSize))
			if err != nil {
				b.Fatal(err)
			}
			q.Start()
			defer q.Stop()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range uint64(b.N) {
				wg.Add(1)
				if q.Push(benchItem(i, i)) != nil {
					b.Fatal("push failed")
				}
				if q.Len() >= DefaultMaxSize/2 {
					wg.Wait() // never drop: every item is processed
				}
			}
			wg.Wait()
		})
	}
}

// BenchmarkWorkers_Baseline hands each item to a pool of goroutines over a
// buffered channel: no priority, no bound, no bookkeeping.
func BenchmarkWorkers_Baseline(b *testing.B) {
	for _, workers := range []int{1, 3} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			var wg sync.WaitGroup
			ch := make(chan Item, DefaultMaxSize)
			var done sync.WaitGroup
			for range workers {
				done.Go(func() {
					for range ch {
						wg.Done()
					}
				})
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range uint64(b.N) {
				wg.Add(1)
				ch <- benchItem(i, i)
			}
			wg.Wait()
			b.StopTimer()
			close(ch)
			done.Wait()
		})
	}
}
