package limits

import (
	"hash/maphash"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

const (
	shardCount = 64 // a power of two
	sweepStep  = 4  // entries looked at for idleness when a key is added
)

// Memory is the in-process Store. Create it with NewMemory; it is safe for
// concurrent use. Keys are spread over shards, each with its own lock. Each
// time Take or Acquire adds a key, it first looks at the next few entries of
// the shard and drops those that hold nothing any more: the work is bounded
// per call, and since only adding a key makes a shard grow, and each add
// looks at sweepStep entries, memory follows the keys in use.
type Memory struct {
	seed   maphash.Seed
	shards [shardCount]shard
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory {
	m := &Memory{seed: maphash.MakeSeed()}
	for i := range m.shards {
		m.shards[i].m = map[string]*entry{}
	}
	return m
}

type shard struct {
	mu   sync.Mutex
	m    map[string]*entry // guarded by mu
	all  []*entry          // the entries of m, in the order the sweep visits them; guarded by mu
	next int               // the sweep's position in all; guarded by mu
	_    [64]byte          // keeps neighbouring shards' locks off one cache line
}

// entry is the state of one key. All fields are guarded by the shard's mu.
type entry struct {
	key string
	idx int // position in shard.all

	lim  *rate.Limiter // nil until the key is used as a rate
	eff  Rate          // the rate lim is set to (after adjustment)
	last time.Time     // the latest now Take saw; also its idle clock

	held int // concurrency slots taken

	factor float64   // the adjustment, in force while now is before until
	until  time.Time // zero when there is none
}

// Take implements Store.
func (m *Memory) Take(key string, r Rate, now time.Time) (bool, time.Time) {
	s := m.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[key]
	f, until := e.adjustment(now)
	if f == 0 {
		return false, until
	}
	if r.IsZero() {
		return true, now
	}
	if e == nil {
		e = s.add(key, now)
	}
	if now.Before(e.last) {
		now = e.last // callers' clocks differ a little: never count an interval twice
	}
	e.last = now
	e.setRate(r.scaled(f), now)
	if e.lim.AllowN(now, 1) {
		return true, now
	}
	at := e.earliest(now)
	if f < 1 && until.Before(at) {
		at = until // the rate is faster once the adjustment ends
	}
	return false, at
}

// Acquire implements Store.
func (m *Memory) Acquire(key string, max int, now time.Time) bool {
	s := m.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[key]
	f, _ := e.adjustment(now)
	if f == 0 {
		return false
	}
	if e != nil && max >= 1 && e.held >= scaledMax(max, f) {
		return false
	}
	if e == nil {
		e = s.add(key, now)
	}
	e.held++
	return true
}

// Release implements Store.
func (m *Memory) Release(key string) {
	s := m.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[key]
	if e == nil || e.held == 0 {
		return
	}
	e.held--
	if e.held == 0 && e.lim == nil && e.until.IsZero() {
		s.remove(e)
	}
}

// Adjust implements Store.
func (m *Memory) Adjust(key string, factor float64, until time.Time) {
	factor = clampFactor(factor)
	s := m.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[key]
	if factor == 1 {
		if e != nil {
			e.factor, e.until = 1, time.Time{}
			if e.held == 0 && e.lim == nil {
				s.remove(e)
			}
		}
		return
	}
	if e == nil {
		e = s.add(key, time.Time{}) // no time to sweep by: Take and Acquire will
	}
	e.factor, e.until = factor, until
}

// Adjusted implements Store.
func (m *Memory) Adjusted(key string, now time.Time) (float64, time.Time) {
	s := m.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[key].adjustment(now)
}

// Len returns the number of keys Memory holds state for (for tests and
// metrics).
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

func (m *Memory) shard(key string) *shard {
	return &m.shards[maphash.String(m.seed, key)&(shardCount-1)]
}

// add sweeps s at now, unless now is zero, and creates the entry of key.
// Called with s.mu held.
func (s *shard) add(key string, now time.Time) *entry {
	if !now.IsZero() {
		s.sweep(now)
	}
	e := &entry{key: key, idx: len(s.all), factor: 1}
	s.m[key] = e
	s.all = append(s.all, e)
	return e
}

// remove forgets e, moving the last entry into its place. Called with s.mu
// held.
func (s *shard) remove(e *entry) {
	last := s.all[len(s.all)-1]
	s.all[e.idx], last.idx = last, e.idx
	s.all[len(s.all)-1] = nil
	s.all = s.all[:len(s.all)-1]
	delete(s.m, e.key)
}

// sweep looks at the next sweepStep entries and drops the idle ones, going
// round all of them in len(all)/sweepStep calls. Called with s.mu held.
func (s *shard) sweep(now time.Time) {
	for range sweepStep {
		if len(s.all) == 0 {
			return
		}
		if s.next >= len(s.all) {
			s.next = 0
		}
		if e := s.all[s.next]; e.idle(now) {
			s.remove(e) // the last entry moved into s.next: look at it next
		} else {
			s.next++
		}
	}
}

// idle reports whether e holds nothing at now: no slot, no adjustment in
// force, and no limiter or one unused for long enough to be full again.
func (e *entry) idle(now time.Time) bool {
	return e.held == 0 && !now.Before(e.until) &&
		(e.lim == nil || now.Sub(e.last) > e.eff.idleAfter())
}

// adjustment returns the factor in force at now and its end; an entry that
// is nil or whose adjustment ended has factor 1.
func (e *entry) adjustment(now time.Time) (float64, time.Time) {
	if e == nil || !now.Before(e.until) {
		return 1, time.Time{}
	}
	return e.factor, e.until
}

// setRate makes e's limiter count r, creating it on first use.
func (e *entry) setRate(r Rate, now time.Time) {
	switch {
	case e.lim == nil:
		e.lim = rate.NewLimiter(r.limit(), r.burst())
	case r != e.eff:
		e.lim.SetLimitAt(now, r.limit())
		e.lim.SetBurstAt(now, r.burst())
	default:
		return
	}
	e.eff = r
}

// earliest returns the first time from now at which e's limiter allows one
// event, to the nanosecond, without taking anything: it starts from the
// tokens missing at now and corrects the float arithmetic against the
// limiter's own rule.
func (e *entry) earliest(now time.Time) time.Time {
	at := now.Add(e.wait(1 - e.lim.TokensAt(now)))
	for step := time.Duration(1); !e.allowedAt(at) && step < math.MaxInt64/2; step *= 2 {
		at = at.Add(step)
	}
	for i := 0; i < 4 && at.After(now) && e.allowedAt(at.Add(-1)); i++ {
		at = at.Add(-1)
	}
	return at
}

// allowedAt reports whether Limiter.AllowN(t, 1) would succeed, by the same
// arithmetic (a deficit worth less than a nanosecond is allowed), without
// changing the limiter.
func (e *entry) allowedAt(t time.Time) bool {
	missing := 1 - e.lim.TokensAt(t)
	return missing <= 0 || e.wait(missing) <= 0
}

// wait is how long e's limiter takes to earn tokens, truncated to the
// nanosecond as the limiter does.
func (e *entry) wait(tokens float64) time.Duration {
	d := tokens / float64(e.eff.limit()) * float64(time.Second)
	if d >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(d)
}

func clampFactor(f float64) float64 {
	switch {
	case !(f > 0): // also NaN
		return 0
	case f > 1:
		return 1
	}
	return f
}

// scaledMax is n slots scaled by f in (0, 1], rounded down and at least 1.
func scaledMax(n int, f float64) int {
	if f >= 1 {
		return n
	}
	return max(1, int(float64(n)*f))
}
