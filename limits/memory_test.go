package limits

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// drive asks for events of key as soon as they are allowed, from start
// until end: a refused Take moves the clock to its retryAt, as a caller's
// timer would. It returns when each allowed event happened.
func drive(t *testing.T, s Store, key string, r Rate, start, end time.Time) []time.Time {
	t.Helper()
	var events []time.Time
	for now := start; now.Before(end); {
		ok, at := s.Take(key, r, now)
		if ok {
			events = append(events, now)
			continue
		}
		if !at.After(now) {
			t.Fatalf("Take at %v refused with retryAt %v, not later", now, at)
		}
		now = at
	}
	return events
}

// near reports whether retryAt is want, or the nanosecond before it: x/time
// truncates waits to whole nanoseconds, so its limiter allows an event up to
// 1 ns before the ideal instant, and retryAt is the limiter's instant.
func near(retryAt, want time.Time) bool {
	return !retryAt.After(want) && !retryAt.Before(want.Add(-1))
}

func TestTakeHoldsRate(t *testing.T) {
	r := Rate{N: 50, Per: time.Second}
	events := drive(t, NewMemory(), "k", r, t0, t0.Add(10*time.Second))
	if n := len(events); n < 450 || n > 550 {
		t.Errorf("%d events in 10 s at %v, want 500±10%%", n, r)
	}
	perSecond := make([]int, 10)
	for _, e := range events {
		perSecond[e.Sub(t0)/time.Second]++
	}
	for i, n := range perSecond {
		if n > 55 {
			t.Errorf("second %d: %d events, want at most 55 (50/1s + 10%%)", i, n)
		}
	}
	t.Logf("%d events in 10 s, per second %v", len(events), perSecond)
}

func TestTakeRetryAtExact(t *testing.T) {
	m := NewMemory()
	r := Rate{N: 50, Per: time.Second} // burst 5, then one every 20 ms
	for i := range 5 {
		if ok, _ := m.Take("k", r, t0); !ok {
			t.Fatalf("burst event %d refused", i)
		}
	}
	ok, at := m.Take("k", r, t0)
	if want := t0.Add(20 * time.Millisecond); ok || !near(at, want) {
		t.Fatalf("Take after the burst = %v, %v; want false, %v", ok, at, want)
	}
	if ok, again := m.Take("k", r, at.Add(-1)); ok || !again.Equal(at) {
		t.Fatalf("Take 1ns before retryAt = %v, %v; want false, %v", ok, again, at)
	}
	if ok, _ := m.Take("k", r, at); !ok {
		t.Fatalf("Take at retryAt refused")
	}
}

// TestTakeRetryAtExactRandom checks, for many rates and clocks, that a
// refused Take's retryAt is allowed and one nanosecond before it is not.
func TestTakeRetryAtExactRandom(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	pers := []time.Duration{time.Second, 7 * time.Second, time.Minute, time.Hour, 333 * time.Millisecond, 24 * time.Hour}
	m := NewMemory()
	checked := 0
	for i := range 500 {
		key := fmt.Sprint("k", i)
		r := Rate{N: 1 + rnd.IntN(2000), Per: pers[rnd.IntN(len(pers))]}
		now := t0
		for range 50 {
			now = now.Add(time.Duration(rnd.Int64N(int64(r.Per / time.Duration(r.N) / 2))))
			ok, at := m.Take(key, r, now)
			if ok {
				continue
			}
			if ok2, at2 := m.Take(key, r, at.Add(-1)); ok2 || !at2.Equal(at) {
				t.Fatalf("%v: Take at retryAt-1ns = %v, %v; want false, %v", r, ok2, at2, at)
			}
			if ok3, at3 := m.Take(key, r, at); !ok3 {
				t.Fatalf("%v: Take at retryAt %v refused until %v", r, at, at3)
			}
			now = at
			checked++
		}
	}
	if checked < 1000 {
		t.Fatalf("only %d refusals checked", checked)
	}
}

func TestTakeRefusedTakesNothing(t *testing.T) {
	m := NewMemory()
	r := Rate{N: 10, Per: time.Second} // burst 1, one every 100 ms
	if ok, _ := m.Take("k", r, t0); !ok {
		t.Fatal("first Take refused")
	}
	want := t0.Add(100 * time.Millisecond)
	for now := t0; now.Before(want); now = now.Add(time.Millisecond / 10) {
		if ok, at := m.Take("k", r, now); ok || !near(at, want) {
			t.Fatalf("Take at +%v = %v, %v; want false, %v", now.Sub(t0), ok, at, want)
		}
	}
	if ok, _ := m.Take("k", r, want); !ok {
		t.Fatal("Take at retryAt refused after 1000 refused Takes")
	}
}

func TestTakeKeysIndependent(t *testing.T) {
	m := NewMemory()
	r := Rate{N: 10, Per: time.Minute} // burst 1
	if ok, _ := m.Take(Key("l", "a"), r, t0); !ok {
		t.Fatal("a refused")
	}
	if ok, _ := m.Take(Key("l", "a"), r, t0); ok {
		t.Fatal("a allowed twice")
	}
	if ok, _ := m.Take(Key("l", "b"), r, t0); !ok {
		t.Fatal("b refused after a was used")
	}
}

func TestTakeClockBackwards(t *testing.T) {
	m := NewMemory()
	r := Rate{N: 1, Per: time.Second}
	if ok, _ := m.Take("k", r, t0.Add(time.Second)); !ok {
		t.Fatal("first Take refused")
	}
	ok, at := m.Take("k", r, t0)
	if want := t0.Add(2 * time.Second); ok || !near(at, want) {
		t.Fatalf("Take with an earlier clock = %v, %v; want false, %v", ok, at, want)
	}
}

func TestTakeZeroRate(t *testing.T) {
	m := NewMemory()
	for range 100 {
		if ok, _ := m.Take("k", Rate{}, t0); !ok {
			t.Fatal("zero Rate refused")
		}
	}
	if n := m.Len(); n != 0 {
		t.Errorf("Len() = %d after zero-Rate Takes, want 0", n)
	}
	m.Adjust("k", 0, t0.Add(time.Minute))
	if ok, at := m.Take("k", Rate{}, t0); ok || !at.Equal(t0.Add(time.Minute)) {
		t.Errorf("zero Rate while suspended = %v, %v; want false, until", ok, at)
	}
}

func TestAcquireRelease(t *testing.T) {
	m := NewMemory()
	for i := range 3 {
		if !m.Acquire("k", 3, t0) {
			t.Fatalf("slot %d refused", i)
		}
	}
	if m.Acquire("k", 3, t0) {
		t.Fatal("4th slot of 3 given")
	}
	m.Release("k")
	if !m.Acquire("k", 3, t0) {
		t.Fatal("slot refused after a Release")
	}
	for range 3 {
		m.Release("k")
	}
	m.Release("k")       // none held: nothing
	m.Release("unknown") // never seen: nothing
	if n := m.Len(); n != 0 {
		t.Errorf("Len() = %d with no slot held, want 0", n)
	}
	for range 100 {
		if !m.Acquire("free", 0, t0) {
			t.Fatal("max 0 refused")
		}
	}
}

func TestAcquireNeverExceeds(t *testing.T) {
	const max, workers, rounds = 3, 32, 2000
	m := NewMemory()
	var holders, peak, granted atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range rounds {
				if !m.Acquire("site", max, time.Now()) {
					continue
				}
				granted.Add(1)
				n := holders.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				for range 3 {
					runtime.Gosched() // hold the slot a while, so that holders overlap
				}
				holders.Add(-1)
				m.Release("site")
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p > max {
		t.Errorf("%d holders at once, want at most %d", p, max)
	}
	if granted.Load() == 0 {
		t.Error("no slot was ever granted")
	}
	if n := m.Len(); n != 0 {
		t.Errorf("Len() = %d once every slot is released, want 0", n)
	}
	t.Logf("peak %d holders, %d of %d acquisitions granted", peak.Load(), granted.Load(), workers*rounds)
}

func TestAdjustSuspends(t *testing.T) {
	m := NewMemory()
	r := Rate{N: 50, Per: time.Second}
	until := t0.Add(time.Minute)
	if !m.Acquire("k", 4, t0) {
		t.Fatal("Acquire refused before the suspension")
	}
	m.Adjust("k", 0, until)
	now := t0.Add(time.Second)
	if ok, at := m.Take("k", r, now); ok || !at.Equal(until) {
		t.Errorf("Take while suspended = %v, %v; want false, %v", ok, at, until)
	}
	if m.Acquire("k", 4, now) {
		t.Error("Acquire while suspended succeeded")
	}
	if f, u := m.Adjusted("k", now); f != 0 || !u.Equal(until) {
		t.Errorf("Adjusted = %v, %v; want 0, %v", f, u, until)
	}
	if ok, _ := m.Take("k", r, until); !ok {
		t.Error("Take at until refused")
	}
	if !m.Acquire("k", 4, until) {
		t.Error("Acquire at until refused")
	}
	if f, u := m.Adjusted("k", until); f != 1 || !u.IsZero() {
		t.Errorf("Adjusted after until = %v, %v; want 1, zero", f, u)
	}
}

func TestAdjustHalves(t *testing.T) {
	m := NewMemory()
	r := Rate{N: 50, Per: time.Second}
	m.Adjust("k", 0.5, t0.Add(time.Hour))
	if f, _ := m.Adjusted("k", t0); f != 0.5 {
		t.Fatalf("Adjusted = %v, want 0.5", f)
	}
	if n := len(drive(t, m, "k", r, t0, t0.Add(10*time.Second))); n < 225 || n > 275 {
		t.Errorf("%d events in 10 s at half of %v, want 250±10%%", n, r)
	}
	for i := range 2 {
		if !m.Acquire("k", 4, t0) {
			t.Fatalf("slot %d of 4/2 refused", i)
		}
	}
	if m.Acquire("k", 4, t0) {
		t.Error("3rd slot given at half of 4")
	}

	// A later Adjust replaces the earlier one; factor 1 lifts it.
	m.Adjust("k", 1, time.Time{})
	if f, u := m.Adjusted("k", t0); f != 1 || !u.IsZero() {
		t.Errorf("Adjusted after lifting = %v, %v; want 1, zero", f, u)
	}
	if !m.Acquire("k", 4, t0) {
		t.Error("3rd slot refused after lifting")
	}
	later := t0.Add(time.Minute)
	if n := len(drive(t, m, "k", r, later, later.Add(10*time.Second))); n < 450 || n > 550 {
		t.Errorf("%d events in 10 s after lifting, want 500±10%%", n)
	}
}

func TestAdjustFloorsAndClamps(t *testing.T) {
	m := NewMemory()
	r := Rate{N: 50, Per: time.Second}
	m.Adjust("k", 0.001, t0.Add(time.Hour)) // 50×0.001 rounds down to 0: at least 1/1s
	if n := len(drive(t, m, "k", r, t0, t0.Add(10*time.Second))); n < 10 || n > 11 {
		t.Errorf("%d events in 10 s at 0.001 of %v, want 10 (1 per second; 11 with the last at 10s-1ns)", n, r)
	}
	if !m.Acquire("k", 4, t0) || m.Acquire("k", 4, t0) {
		t.Error("concurrency at 0.001 of 4 is not 1")
	}
	for _, tc := range []struct{ in, want float64 }{{-1, 0}, {2, 1}, {0.25, 0.25}} {
		m.Adjust("c", tc.in, t0.Add(time.Hour))
		if f, _ := m.Adjusted("c", t0); f != tc.want {
			t.Errorf("Adjust(%v): Adjusted = %v, want %v", tc.in, f, tc.want)
		}
	}
}

func TestAdjustEndsBeforeRetryAt(t *testing.T) {
	m := NewMemory()
	r := Rate{N: 10, Per: time.Minute} // halved: 5/1m, one every 12 s
	until := t0.Add(5 * time.Second)
	m.Adjust("k", 0.5, until)
	if ok, _ := m.Take("k", r, t0); !ok {
		t.Fatal("first Take refused")
	}
	if ok, at := m.Take("k", r, t0); ok || !at.Equal(until) {
		t.Errorf("Take = %v, %v; want false, %v (the adjustment ends first)", ok, at, until)
	}
	// By until, 5 s at 5/1m earned 5/12 of an event; the rest comes at
	// 10/1m: 7/12 of 6 s, 3.5 s.
	ok, at := m.Take("k", r, until)
	if want := t0.Add(8500 * time.Millisecond); ok || !near(at, want) {
		t.Errorf("Take at until = %v, %v; want false, %v (10/1m again)", ok, at, want)
	}
}

func TestSweepDropsIdleKeys(t *testing.T) {
	m := NewMemory()
	r := Rate{N: 10, Per: time.Second} // idle after a minute
	for i := range 1000 {
		m.Take(fmt.Sprint("old", i), r, t0)
	}
	for i := range 10 {
		m.Acquire(fmt.Sprint("held", i), 5, t0)
	}
	for i := range 5 {
		m.Adjust(fmt.Sprint("adjusted", i), 0.5, t0.Add(time.Hour))
	}

	// Adding keys sweeps a few entries each time: add keys until what
	// remains is what is live (the keys just added, and want), or give up.
	sweepTo := func(prefix string, at time.Time, want int) {
		t.Helper()
		for i := range 20_000 {
			m.Take(fmt.Sprint(prefix, i), r, at)
			if m.Len() == want+i+1 {
				return
			}
		}
		t.Fatalf("Len() = %d after adding 20000 keys at +%v, want %d", m.Len(), at.Sub(t0), want+20_000)
	}

	for i := range 5000 {
		m.Take(fmt.Sprint("young", i), r, t0.Add(30*time.Second))
	}
	if n, want := m.Len(), 1000+10+5+5000; n != want {
		t.Fatalf("Len() = %d before anything is idle, want %d", n, want)
	}
	sweepTo("new", t0.Add(2*time.Minute), 10+5) // old and young are idle
	for i := range 10 {
		m.Release(fmt.Sprint("held", i))
	}
	sweepTo("later", t0.Add(2*time.Hour), 0) // the adjustments ended, new is idle
}

func BenchmarkTakeParallel(b *testing.B) {
	for _, bc := range []struct {
		name string
		r    Rate
	}{
		{"allowed", Rate{N: 1_000_000_000, Per: time.Second}},
		{"refused", Rate{N: 1, Per: time.Hour}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			keys := make([]string, 10_000)
			for i := range keys {
				keys[i] = Key("bench", fmt.Sprint("rcpt_domain=d", i, ".example"))
			}
			m := NewMemory()
			var seed atomic.Uint64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := int(seed.Add(7919))
				for pb.Next() {
					m.Take(keys[i%len(keys)], bc.r, time.Now())
					i++
				}
			})
		})
	}
}

func BenchmarkAcquireReleaseParallel(b *testing.B) {
	keys := make([]string, 10_000)
	for i := range keys {
		keys[i] = Key("bench", fmt.Sprint("mx=mx", i, ".example"))
	}
	m := NewMemory()
	var seed atomic.Uint64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seed.Add(7919))
		for pb.Next() {
			k := keys[i%len(keys)]
			if m.Acquire(k, 10, time.Now()) {
				m.Release(k)
			}
			i++
		}
	})
}
