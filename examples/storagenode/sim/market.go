// Package sim is the simulated marketplace the example storage host runs
// against: clients posting storage requests over simulated time, competing
// hosts, requests that expire, fail or lose a host, and the clients'
// uploads. Market implements market.Market and market.Network; Clock is the
// simulated time everything is scheduled on, and the host's clock too. The
// whole scenario is a pure function of Config, its Seed included.
package sim

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/holiman/uint256"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/examples/storagenode/market"
)

// Config shapes the simulated marketplace. The whole scenario (every
// request, its terms, when competing hosts fill its slots, whether it fails
// or loses a host) is a pure function of these values, Seed included; only
// what this host does changes the outcome.
type Config struct {
	Seed     uint64 `json:"seed"`
	Requests int    `json:"requests"` // how many requests clients post
	Start    uint64 `json:"start"`    // market time when the simulation starts

	MeanInterval uint64   `json:"meanInterval"` // mean seconds between two requests
	MaxSlots     uint64   `json:"maxSlots"`     // slots per request: 1 to MaxSlots
	SlotSizes    []uint64 `json:"slotSizes"`    // slot sizes to pick from, bytes
	MinDuration  uint64   `json:"minDuration"`  // seconds
	MaxDuration  uint64   `json:"maxDuration"`  // seconds
	MaxReward    uint64   `json:"maxReward"`    // per second per slot: 1 to MaxReward
	MaxCollat    uint64   `json:"maxCollateral"`
	MinExpiry    uint64   `json:"minExpiry"` // seconds from posting to expiry
	MaxExpiry    uint64   `json:"maxExpiry"`

	Competition float64 `json:"competition"` // chance that another host fills a given slot before expiry
	FailRate    float64 `json:"failRate"`    // chance that a started request fails
	FreeRate    float64 `json:"freeRate"`    // chance that a started request loses one slot's host
	RefillRate  float64 `json:"refillRate"`  // chance that another host fills a freed slot

	Bandwidth        uint64  `json:"bandwidth"`        // bytes per second a client uploads a slot at
	NetworkErrorRate float64 `json:"networkErrorRate"` // chance that fetching one batch fails
}

// DefaultConfig returns the scenario the example runs by default: a day of
// market activity with KiB-sized slots, so that it runs in seconds.
func DefaultConfig() Config {
	return Config{
		Seed:             1,
		Requests:         200,
		Start:            1767225600, // 2026-01-01T00:00:00Z
		MeanInterval:     300,
		MaxSlots:         8,
		SlotSizes:        []uint64{16 << 10, 32 << 10, 64 << 10, 128 << 10, 256 << 10},
		MinDuration:      3600,
		MaxDuration:      12 * 3600,
		MaxReward:        100,
		MaxCollat:        1000,
		MinExpiry:        5 * 60,
		MaxExpiry:        30 * 60,
		Competition:      0.3,
		FailRate:         0.03,
		FreeRate:         0.05,
		RefillRate:       0.5,
		Bandwidth:        1 << 10,
		NetworkErrorRate: 0.002,
	}
}

// Validate reports the first setting out of range, naming it.
func (c Config) Validate() error {
	switch {
	case c.Requests < 0:
		return fmt.Errorf("sim: %d requests", c.Requests)
	case c.MaxSlots == 0 || c.MaxSlots > 1<<16-1:
		return fmt.Errorf("sim: max slots %d, want 1 to 65535", c.MaxSlots)
	case len(c.SlotSizes) == 0:
		return errors.New("sim: no slot sizes")
	case c.MinDuration == 0 || c.MaxDuration < c.MinDuration:
		return fmt.Errorf("sim: durations %d to %d", c.MinDuration, c.MaxDuration)
	case c.MinExpiry == 0 || c.MaxExpiry < c.MinExpiry || c.MaxExpiry >= c.MinDuration:
		return fmt.Errorf("sim: expiries %d to %d, want 1 up to less than the shortest duration", c.MinExpiry, c.MaxExpiry)
	case c.MaxReward == 0 || c.MeanInterval == 0 || c.Bandwidth == 0:
		return errors.New("sim: max reward, mean interval and bandwidth must be positive")
	}
	for _, s := range c.SlotSizes {
		if s == 0 {
			return errors.New("sim: zero slot size")
		}
	}
	return nil
}

// Stats counts what happened on the simulated market.
type Stats struct {
	Posted    int `json:"posted"`
	Started   int `json:"started"`
	Cancelled int `json:"cancelled"`
	Failed    int `json:"failed"`
	Finished  int `json:"finished"`

	FilledByHost   int `json:"filledByHost"`   // slots this host filled
	FilledByOthers int `json:"filledByOthers"` // slots competing hosts filled
	Freed          int `json:"freed"`          // slots whose host lost them

	Earned  uint256.Int `json:"earned"`  // reward paid to this host
	Locked  uint256.Int `json:"locked"`  // this host's collateral locked now
	Slashed uint256.Int `json:"slashed"` // this host's collateral lost
}

// script is what the scenario decides about one request, before any host
// acts. Times are absolute market times; zero means never.
type script struct {
	id         stowage.RequestID
	posted     uint64
	ask        stowage.StorageAsk
	expiry     uint64
	competitor []uint64 // per slot: when another host tries to fill it
	failAfter  uint64   // seconds after the start
	freeSlot   uint64
	freeAfter  uint64 // seconds after the start
	refillIn   uint64 // seconds after the slot is freed
}

type slotHost uint8

const (
	hostNone slotHost = iota
	hostMe
	hostOther
)

// simSlot and simRequest are the market's state: what Save persists.
type simSlot struct {
	Host     slotHost `json:"host"`
	FilledAt uint64   `json:"filledAt,omitempty"`
	FreedAt  uint64   `json:"freedAt,omitempty"`
	Paid     bool     `json:"paid,omitempty"`
}

type simRequest struct {
	*script `json:"-"`
	State   market.RequestState `json:"state"`
	Start   uint64              `json:"start,omitempty"`
	End     uint64              `json:"end,omitempty"`
	Slots   []simSlot           `json:"slots"`
}

// Market is a simulated marketplace for one host, driven by a Clock.
// Clients post requests over time; competing hosts fill some slots first;
// requests not filled by their expiry are cancelled; a few started requests
// fail or lose a host; finished requests pay out. It implements Market for
// the host under test, and Network for the clients' uploads.
//
// Events are delivered in order on whichever goroutine caused them: the
// clock's for scheduled ones, the host's for those its FillSlot caused.
type Market struct {
	cfg     Config
	clock   *Clock
	scripts []script

	mu     sync.Mutex
	posted []*simRequest
	byID   map[stowage.RequestID]*simRequest
	stats  Stats
	subs   map[int]func(market.Event)
	nextID int
	outbox []market.Event
	data   []byte // the bytes every upload is cut from

	deliver sync.Mutex // held while events are handed to subscribers
}

var (
	_ market.Market  = (*Market)(nil)
	_ market.Network = (*Market)(nil)
)

// NewMarket returns a market that posts its first request on clock, which
// should stand at cfg.Start.
func NewMarket(cfg Config, clock *Clock) (*Market, error) {
	m, err := newMarket(cfg, clock)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.armPostLocked(0)
	m.mu.Unlock()
	return m, nil
}

func newMarket(cfg Config, clock *Clock) (*Market, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Market{
		cfg:     cfg,
		clock:   clock,
		scripts: makeScripts(cfg),
		byID:    make(map[stowage.RequestID]*simRequest),
		subs:    make(map[int]func(market.Event)),
	}
	return m, nil
}

// makeScripts draws the whole scenario. Each request has a generator of its
// own, so one request's terms never depend on another's.
func makeScripts(cfg Config) []script {
	scripts := make([]script, cfg.Requests)
	at := cfg.Start
	for i := range scripts {
		rng := rand.New(rand.NewPCG(cfg.Seed, uint64(i)))
		s := &scripts[i]
		// Exponential gaps, as independent clients would post.
		at += 1 + uint64(rng.ExpFloat64()*float64(cfg.MeanInterval))
		s.posted = at
		s.id = requestIDFor(cfg.Seed, i)
		s.ask = stowage.StorageAsk{
			Slots:    1 + rng.Uint64N(cfg.MaxSlots),
			SlotSize: cfg.SlotSizes[rng.IntN(len(cfg.SlotSizes))],
			Duration: between(rng, cfg.MinDuration, cfg.MaxDuration),
		}
		s.ask.Reward.SetUint64(between(rng, 1, cfg.MaxReward))
		s.ask.Collateral.SetUint64(between(rng, 0, cfg.MaxCollat))
		s.expiry = s.posted + between(rng, cfg.MinExpiry, cfg.MaxExpiry)
		s.competitor = make([]uint64, s.ask.Slots)
		for j := range s.competitor {
			if rng.Float64() < cfg.Competition {
				s.competitor[j] = between(rng, s.posted+1, s.expiry)
			}
		}
		if rng.Float64() < cfg.FailRate {
			s.failAfter = between(rng, 1, s.ask.Duration-1)
		}
		if rng.Float64() < cfg.FreeRate {
			s.freeSlot = rng.Uint64N(s.ask.Slots)
			s.freeAfter = between(rng, 1, s.ask.Duration-1)
			if rng.Float64() < cfg.RefillRate {
				s.refillIn = between(rng, 60, 3600)
			}
		}
	}
	return scripts
}

// between returns a number in [lo, hi].
func between(rng *rand.Rand, lo, hi uint64) uint64 {
	if hi <= lo {
		return lo
	}
	return lo + rng.Uint64N(hi-lo+1)
}

func requestIDFor(seed uint64, i int) stowage.RequestID {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], seed)
	binary.BigEndian.PutUint64(b[8:], uint64(i))
	return sha256.Sum256(b[:])
}

// Config returns the scenario.
func (m *Market) Config() Config { return m.cfg }

// Stats returns what happened so far.
func (m *Market) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// Done reports whether every request was posted and has ended.
func (m *Market) Done() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.posted) < len(m.scripts) {
		return false
	}
	for _, r := range m.posted {
		if r.State == market.RequestNew || r.State == market.RequestStarted {
			return false
		}
	}
	return true
}

// Subscribe implements Market.
func (m *Market) Subscribe(fn func(market.Event)) (unsubscribe func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id := m.nextID
	m.nextID++
	m.subs[id] = fn
	return func() {
		// Taking deliver too means no delivery to fn is under way once
		// unsubscribe returns, unless unsubscribe runs inside fn itself,
		// which the Market contract rules out by forbidding fn to block.
		m.deliver.Lock()
		defer m.deliver.Unlock()
		m.mu.Lock()
		defer m.mu.Unlock()
		delete(m.subs, id)
	}
}

// SlotStatus implements Market.
func (m *Market) SlotStatus(ctx context.Context, id stowage.RequestID, slot uint64) (market.SlotStatus, error) {
	if err := ctx.Err(); err != nil {
		return market.SlotStatus{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.byID[id]
	if !ok {
		return market.SlotStatus{}, fmt.Errorf("slot status %s: %w", id, market.ErrUnknownRequest)
	}
	st := market.SlotStatus{Request: r.State, Slot: r.slot(slot)}
	if slot < uint64(len(r.Slots)) {
		st.Mine = r.Slots[slot].Host == hostMe
		st.Free = r.Slots[slot].Host == hostNone
		st.Paid = st.Mine && r.Slots[slot].Paid
	}
	return st, nil
}

// MySlots lists the slots this host filled, still holds and has
// not been paid for, except those of failed requests (nothing to collect).
func (m *Market) MySlots(ctx context.Context) ([]stowage.Slot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []stowage.Slot
	for _, r := range m.posted {
		if r.State == market.RequestFailed {
			continue
		}
		for i, s := range r.Slots {
			if s.Host == hostMe && !s.Paid {
				out = append(out, r.slot(uint64(i)))
			}
		}
	}
	return out, nil
}

// FillSlot implements Market.
func (m *Market) FillSlot(ctx context.Context, id stowage.RequestID, slot uint64, proof []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(proof) == 0 {
		return errors.New("fill slot: empty proof")
	}
	m.mu.Lock()
	r, ok := m.byID[id]
	switch {
	case !ok:
		m.mu.Unlock()
		return fmt.Errorf("fill slot %s/%d: %w", id, slot, market.ErrUnknownRequest)
	case r.State != market.RequestNew && r.State != market.RequestStarted:
		m.mu.Unlock()
		return fmt.Errorf("fill slot %s/%d: request %s: %w", id, slot, r.State, market.ErrRequestNotOpen)
	case slot >= uint64(len(r.Slots)) || r.Slots[slot].Host != hostNone:
		m.mu.Unlock()
		return fmt.Errorf("fill slot %s/%d: %w", id, slot, market.ErrSlotNotFree)
	}
	m.fillLocked(r, slot, hostMe)
	m.mu.Unlock()
	m.flush()
	return nil
}

// FreeSlot implements Market.
func (m *Market) FreeSlot(ctx context.Context, id stowage.RequestID, slot uint64) (uint256.Int, error) {
	var paid uint256.Int
	if err := ctx.Err(); err != nil {
		return paid, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.byID[id]
	if !ok {
		return paid, fmt.Errorf("free slot %s/%d: %w", id, slot, market.ErrUnknownRequest)
	}
	if slot >= uint64(len(r.Slots)) || r.Slots[slot].Host != hostMe {
		return paid, fmt.Errorf("free slot %s/%d: %w", id, slot, market.ErrNotSlotHost)
	}
	s := &r.Slots[slot]
	if s.Paid {
		return paid, fmt.Errorf("free slot %s/%d: %w", id, slot, market.ErrAlreadyPaid)
	}
	switch r.State {
	case market.RequestNew, market.RequestStarted:
		return paid, fmt.Errorf("free slot %s/%d: %w", id, slot, market.ErrRequestRunning)
	case market.RequestFailed:
		return paid, fmt.Errorf("free slot %s/%d: %w", id, slot, market.ErrRequestFailed)
	case market.RequestFinished:
		reward := stowage.MulSaturating(r.End-max(s.FilledAt, r.Start), &r.ask.Reward)
		m.stats.Earned.Add(&m.stats.Earned, &reward)
		paid.Add(&reward, &r.ask.Collateral)
	case market.RequestCancelled:
		paid = r.ask.Collateral
	}
	m.stats.Locked.Sub(&m.stats.Locked, &r.ask.Collateral)
	s.Paid = true
	return paid, nil
}

// Fetch implements market.Network: the client uploads at cfg.Bandwidth, so
// n bytes arrive n/Bandwidth simulated seconds after the call, and done is
// called then, during the Step that reaches that time (on a goroutine of
// its own, which the Step waits for). A few fetches fail,
// decided by the seed, the slot and the offset. Once ctx has ended, done is
// not called.
func (m *Market) Fetch(ctx context.Context, id stowage.RequestID, slot, offset, n uint64, done func([]byte, error)) {
	at := m.clock.Unix() + max(1, (n+m.cfg.Bandwidth-1)/m.cfg.Bandwidth)
	m.mu.Lock()
	if uint64(len(m.data)) < n {
		m.data = make([]byte, n)
		for i := range m.data {
			m.data[i] = byte(i*31 + 7)
		}
	}
	data := m.data[:n:n] // read-only: shared by every delivery
	m.mu.Unlock()
	if ctx.Err() != nil {
		return
	}
	// A cancelled fetch keeps its timer, which then does nothing: taking it
	// out from the goroutine that cancels would race with the driver's
	// Step, and the run would no longer repeat exactly.
	m.clock.At(at, func() {
		if ctx.Err() != nil {
			return
		}
		var err error
		if m.fetchFails(id, slot, offset) {
			data, err = nil, fmt.Errorf("fetch %s/%d at %d: %w", id, slot, offset, errConnectionReset)
		}
		// Deliveries due at the same time are handled side by side, as a
		// real network's would be; the Step still ends after them.
		m.clock.Go(func() { done(data, err) })
	})
}

// errConnectionReset is the simulated network's failure.
var errConnectionReset = errors.New("connection reset by peer")

func (m *Market) fetchFails(id stowage.RequestID, slot, offset uint64) bool {
	if m.cfg.NetworkErrorRate <= 0 {
		return false
	}
	var b [48]byte
	copy(b[:32], id[:])
	binary.BigEndian.PutUint64(b[32:], slot)
	binary.BigEndian.PutUint64(b[40:], offset)
	h := sha256.Sum256(b[:])
	rng := rand.New(rand.NewPCG(m.cfg.Seed, binary.BigEndian.Uint64(h[:8])))
	return rng.Float64() < m.cfg.NetworkErrorRate
}

// emitLocked queues ev for delivery by flush. m.mu must be held.
func (m *Market) emitLocked(ev market.Event) {
	m.outbox = append(m.outbox, ev)
}

// flush hands queued events to the subscribers, in order, outside m.mu so
// that they may call the market. m.deliver keeps two goroutines flushing at
// once from reordering events.
func (m *Market) flush() {
	m.deliver.Lock()
	defer m.deliver.Unlock()
	for {
		m.mu.Lock()
		evs := m.outbox
		m.outbox = nil
		subs := make([]func(market.Event), 0, len(m.subs))
		for id := range m.nextID {
			if fn, ok := m.subs[id]; ok {
				subs = append(subs, fn)
			}
		}
		m.mu.Unlock()
		if len(evs) == 0 {
			return
		}
		for _, ev := range evs {
			for _, fn := range subs {
				fn(ev)
			}
		}
	}
}

// at runs f under m.mu at market time t, then delivers what it emitted.
func (m *Market) at(t uint64, f func()) {
	m.clock.At(t, func() {
		m.mu.Lock()
		f()
		m.mu.Unlock()
		m.flush()
	})
}

// armPostLocked schedules the posting of request i, if the scenario has
// one. Each posting arms the next, so postings stay in order and the clock
// holds one of them at a time.
func (m *Market) armPostLocked(i int) {
	if i >= len(m.scripts) {
		return
	}
	s := &m.scripts[i]
	m.at(s.posted, func() {
		r := &simRequest{script: s, State: market.RequestNew, Slots: make([]simSlot, s.ask.Slots)}
		m.posted = append(m.posted, r)
		m.byID[s.id] = r
		m.stats.Posted++
		m.emitLocked(market.Event{Kind: market.EventRequested, Slot: stowage.Slot{RequestID: s.id, Ask: s.ask, Expiry: unixTime(s.expiry)}})
		m.armOpenLocked(r, s.posted)
		m.armPostLocked(i + 1)
	})
}

// armOpenLocked schedules what happens to a request waiting for hosts:
// competing hosts filling slots, and the expiry.
func (m *Market) armOpenLocked(r *simRequest, now uint64) {
	for slot, t := range r.competitor {
		if t > now && r.Slots[slot].Host == hostNone {
			m.at(t, func() { m.competitorFillLocked(r, uint64(slot)) })
		}
	}
	if r.expiry > now {
		m.at(r.expiry, func() {
			if r.State == market.RequestNew {
				r.State = market.RequestCancelled
				m.stats.Cancelled++
				m.emitLocked(market.Event{Kind: market.EventRequestCancelled, Slot: stowage.Slot{RequestID: r.id}})
			}
		})
	}
}

// armStartedLocked schedules what happens to a running request: its end,
// and the failure or freed slot the script has for it.
func (m *Market) armStartedLocked(r *simRequest, now uint64) {
	if r.End > now {
		m.at(r.End, func() {
			if r.State == market.RequestStarted {
				r.State = market.RequestFinished
				m.stats.Finished++
				m.emitLocked(market.Event{Kind: market.EventRequestFinished, Slot: stowage.Slot{RequestID: r.id}})
			}
		})
	}
	if t := r.Start + r.failAfter; r.failAfter > 0 && t > now {
		m.at(t, func() { m.failLocked(r) })
	}
	if t := r.Start + r.freeAfter; r.freeAfter > 0 && t > now {
		m.at(t, func() { m.freeLocked(r, r.freeSlot) })
	}
	for slot, s := range r.Slots {
		if t := s.FreedAt + r.refillIn; s.FreedAt > 0 && r.refillIn > 0 && s.Host == hostNone && t > now && t < r.End {
			m.at(t, func() { m.competitorFillLocked(r, uint64(slot)) })
		}
	}
}

func (m *Market) competitorFillLocked(r *simRequest, slot uint64) {
	if (r.State == market.RequestNew || r.State == market.RequestStarted) && r.Slots[slot].Host == hostNone {
		m.fillLocked(r, slot, hostOther)
	}
}

func (m *Market) fillLocked(r *simRequest, slot uint64, host slotHost) {
	now := m.clock.Unix()
	r.Slots[slot] = simSlot{Host: host, FilledAt: now}
	if host == hostMe {
		m.stats.FilledByHost++
		m.stats.Locked.Add(&m.stats.Locked, &r.ask.Collateral)
	} else {
		m.stats.FilledByOthers++
	}
	m.emitLocked(market.Event{Kind: market.EventSlotFilled, Slot: stowage.Slot{RequestID: r.id, Index: slot}, Mine: host == hostMe})
	if r.State != market.RequestNew {
		return
	}
	for _, s := range r.Slots {
		if s.Host == hostNone {
			return
		}
	}
	r.State, r.Start, r.End = market.RequestStarted, now, now+r.ask.Duration
	m.stats.Started++
	m.emitLocked(market.Event{Kind: market.EventRequestStarted, Slot: stowage.Slot{RequestID: r.id}})
	m.armStartedLocked(r, now)
}

func (m *Market) failLocked(r *simRequest) {
	if r.State != market.RequestStarted {
		return
	}
	r.State = market.RequestFailed
	m.stats.Failed++
	for _, s := range r.Slots {
		if s.Host == hostMe && !s.Paid {
			m.stats.Locked.Sub(&m.stats.Locked, &r.ask.Collateral)
			m.stats.Slashed.Add(&m.stats.Slashed, &r.ask.Collateral)
		}
	}
	m.emitLocked(market.Event{Kind: market.EventRequestFailed, Slot: stowage.Slot{RequestID: r.id}})
}

func (m *Market) freeLocked(r *simRequest, slot uint64) {
	s := &r.Slots[slot]
	if r.State != market.RequestStarted || s.Host == hostNone {
		return
	}
	mine := s.Host == hostMe
	if mine {
		m.stats.Locked.Sub(&m.stats.Locked, &r.ask.Collateral)
		m.stats.Slashed.Add(&m.stats.Slashed, &r.ask.Collateral)
	}
	now := m.clock.Unix()
	*s = simSlot{FreedAt: now}
	m.stats.Freed++
	m.emitLocked(market.Event{Kind: market.EventSlotFreed, Slot: stowage.Slot{RequestID: r.id, Index: slot, Ask: r.ask, Expiry: unixTime(r.End)}, Mine: mine})
	if t := now + r.refillIn; r.refillIn > 0 && t < r.End {
		m.at(t, func() { m.competitorFillLocked(r, slot) })
	}
}

// slot returns slot index of the request, with its terms: what a host
// queues. The Expiry of a slot of a started request is the request's end:
// a freed slot can be filled until then.
func (r *simRequest) slot(index uint64) stowage.Slot {
	expiry := r.expiry
	if r.State != market.RequestNew && r.End > 0 {
		expiry = r.End
	}
	return stowage.Slot{RequestID: r.id, Index: index, Ask: r.ask, Expiry: unixTime(expiry)}
}

// unixTime is a market time (Unix seconds) as a time.Time; zero for 0.
func unixTime(sec uint64) time.Time {
	if sec == 0 {
		return time.Time{}
	}
	return time.Unix(int64(sec), 0).UTC()
}

// simSnapshot is the market's state as Save writes it.
type simSnapshot struct {
	Config   Config        `json:"config"`
	Now      uint64        `json:"now"`
	Requests []*simRequest `json:"requests"`
	Stats    Stats         `json:"stats"`
}

// Save writes the market's state to path as JSON, so that LoadMarket can
// carry on where this one stopped. Call it while the clock stands still.
func (m *Market) Save(path string) error {
	m.mu.Lock()
	snap := simSnapshot{Config: m.cfg, Now: m.clock.Unix(), Requests: m.posted, Stats: m.stats}
	b, err := json.MarshalIndent(&snap, "", " ")
	m.mu.Unlock()
	if err != nil {
		return fmt.Errorf("save market: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("save market: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save market: %w", err)
	}
	return nil
}

// LoadMarket reads a market saved by Save. It returns the market and its
// clock, standing at the time of the save with everything still to happen
// scheduled on it. A missing file is an error that errors.Is os.ErrNotExist.
func LoadMarket(path string) (*Market, *Clock, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("load market: %w", err)
	}
	var snap simSnapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		return nil, nil, fmt.Errorf("load market %s: %w", path, err)
	}
	clock := NewClock(snap.Now)
	m, err := newMarket(snap.Config, clock)
	if err != nil {
		return nil, nil, fmt.Errorf("load market %s: %w", path, err)
	}
	if len(snap.Requests) > len(m.scripts) {
		return nil, nil, fmt.Errorf("load market %s: %d requests posted, scenario has %d", path, len(snap.Requests), len(m.scripts))
	}
	m.stats = snap.Stats
	m.mu.Lock()
	for i, r := range snap.Requests {
		r.script = &m.scripts[i]
		if uint64(len(r.Slots)) != r.ask.Slots {
			m.mu.Unlock()
			return nil, nil, fmt.Errorf("load market %s: request %d has %d slots, scenario says %d", path, i, len(r.Slots), r.ask.Slots)
		}
		m.posted = append(m.posted, r)
		m.byID[r.id] = r
		switch r.State {
		case market.RequestNew:
			m.armOpenLocked(r, snap.Now)
		case market.RequestStarted:
			m.armStartedLocked(r, snap.Now)
		}
	}
	m.armPostLocked(len(m.posted))
	m.mu.Unlock()
	return m, clock, nil
}
