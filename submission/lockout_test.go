package submission

import (
	"net/netip"
	"strconv"
	"testing"
	"time"
)

func TestLockout(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	cfg := AuthLockout{Failures: 3, Window: 10 * time.Minute, Duration: 15 * time.Minute}
	a := lockoutKey(netip.MustParseAddr("192.0.2.1"))
	type step struct {
		fail   bool // record a failure, else ask whether locked
		at     time.Duration
		locked bool // what fail or locked answers
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"locked at the third failure", []step{
			{true, 0, false}, {true, time.Minute, false}, {false, 2 * time.Minute, false},
			{true, 2 * time.Minute, true}, {false, 2 * time.Minute, true},
		}},
		{"for Duration", []step{
			{true, 0, false}, {true, 0, false}, {true, time.Minute, true},
			{false, 16*time.Minute - 1, true}, {false, 16 * time.Minute, false},
		}},
		{"failures out of the window do not count", []step{
			{true, 0, false}, {true, 5 * time.Minute, false},
			{true, 10 * time.Minute, false}, // the first is out
			{false, 10 * time.Minute, false},
			{true, 14 * time.Minute, true},
		}},
		{"the count starts over after a lockout", []step{
			{true, 0, false}, {true, 0, false}, {true, 0, true},
			{true, 15 * time.Minute, false}, {true, 15 * time.Minute, false}, {true, 16 * time.Minute, true},
		}},
		{"a failure while locked keeps the lock as it is", []step{
			{true, 0, false}, {true, 0, false}, {true, 0, true},
			{true, 14 * time.Minute, true}, {false, 15 * time.Minute, false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLockout(cfg, 10)
			for i, s := range tt.steps {
				var got bool
				if s.fail {
					got = l.fail(a, at(s.at))
				} else {
					got = l.locked(a, at(s.at))
				}
				if got != s.locked {
					t.Fatalf("step %d %+v: %v", i, s, got)
				}
			}
		})
	}
}

func TestLockoutKey(t *testing.T) {
	tests := []struct{ a, b string }{
		{"192.0.2.1", "192.0.2.1"},
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9"},
	}
	for _, tt := range tests {
		if ka, kb := lockoutKey(netip.MustParseAddr(tt.a)), lockoutKey(netip.MustParseAddr(tt.b)); ka != kb {
			t.Errorf("%s is %v, %s is %v: want one client", tt.a, ka, tt.b, kb)
		}
	}
	others := []string{"192.0.2.1", "192.0.2.2", "2001:db8:1:2::1", "2001:db8:1:3::1"}
	seen := map[netip.Prefix]string{}
	for _, s := range others {
		k := lockoutKey(netip.MustParseAddr(s))
		if prev, ok := seen[k]; ok {
			t.Errorf("%s and %s are one client %v", prev, s, k)
		}
		seen[k] = s
	}
	if k := lockoutKey(netip.Addr{}); k.IsValid() {
		t.Errorf("no address is client %v", k)
	}
	l := newLockout(AuthLockout{Failures: 1, Window: time.Minute, Duration: time.Minute}, 10)
	if l.fail(netip.Prefix{}, time.Now()) || len(l.clients) != 0 {
		t.Error("no address recorded")
	}
}

// TestLockoutBound: a full lockout forgets clients with nothing to
// remember first, then the one whose record ends soonest; a locked client
// with a later end stays locked.
func TestLockoutBound(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cfg := AuthLockout{Failures: 2, Window: 10 * time.Minute, Duration: time.Hour}
	l := newLockout(cfg, 3)
	client := func(i int) netip.Prefix { return lockoutKey(netip.MustParseAddr("192.0.2." + strconv.Itoa(i))) }
	l.fail(client(1), t0)
	l.fail(client(1), t0) // locked until t0+1h
	l.fail(client(2), t0) // ends at t0+10m
	l.fail(client(3), t0.Add(time.Minute))
	l.fail(client(4), t0.Add(2*time.Minute)) // full: 2 goes
	if len(l.clients) != 3 || l.clients[client(2)] != nil {
		t.Fatalf("clients %v, want 1, 3, 4", l.clients)
	}
	l.fail(client(5), t0.Add(12*time.Minute)) // 3 and 4 have ended
	if len(l.clients) != 2 || l.clients[client(5)] == nil || !l.locked(client(1), t0.Add(12*time.Minute)) {
		t.Fatalf("clients %v, want 1 (locked) and 5", l.clients)
	}
	for i := 6; i < 100; i++ {
		l.fail(client(i), t0.Add(13*time.Minute))
	}
	if len(l.clients) > 3 || !l.locked(client(1), t0.Add(13*time.Minute)) {
		t.Errorf("%d clients, 1 locked %v", len(l.clients), l.locked(client(1), t0.Add(13*time.Minute)))
	}
}
