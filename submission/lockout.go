package submission

import (
	"net/netip"
	"sync"
	"time"
)

// AuthLockout is when a client is refused AUTH after failing it: after
// Failures failed attempts within Window, for Duration. A client is its
// address, IPv6 addresses by their /64 (one host usually holds a whole
// /64). Zero fields get the fields of DefaultAuthLockout.
type AuthLockout struct {
	Failures int
	Window   time.Duration
	Duration time.Duration
}

func (l AuthLockout) withDefaults() AuthLockout {
	if l.Failures <= 0 {
		l.Failures = DefaultAuthLockout.Failures
	}
	if l.Window <= 0 {
		l.Window = DefaultAuthLockout.Window
	}
	if l.Duration <= 0 {
		l.Duration = DefaultAuthLockout.Duration
	}
	return l
}

// maxLockoutClients bounds the clients a lockout remembers.
const maxLockoutClients = 10000

// lockout counts the failed AUTH attempts of each client and locks a
// client out after too many. Its memory is bounded by maxClients: once
// full, it forgets clients with nothing left to remember, and then the
// client whose record ends soonest. It is safe for concurrent use.
type lockout struct {
	cfg        AuthLockout
	maxClients int

	mu      sync.Mutex // guards clients
	clients map[netip.Prefix]*failures
}

// failures is one client's record.
type failures struct {
	times []time.Time // failures within the window, oldest first; fewer than Failures
	until time.Time   // locked out before this
}

func newLockout(cfg AuthLockout, maxClients int) *lockout {
	return &lockout{cfg: cfg, maxClients: maxClients, clients: make(map[netip.Prefix]*failures)}
}

// lockoutKey is the client that ip belongs to; invalid (never locked out)
// when ip is.
func lockoutKey(ip netip.Addr) netip.Prefix {
	if !ip.IsValid() {
		return netip.Prefix{}
	}
	if ip.Is4() {
		return netip.PrefixFrom(ip, 32)
	}
	p, _ := ip.Prefix(64)
	return p
}

// locked reports whether client is locked out at now.
func (l *lockout) locked(client netip.Prefix, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.clients[client]
	return f != nil && now.Before(f.until)
}

// fail records a failure of client at now, and reports whether client is
// locked out from now on. An invalid client is not recorded.
func (l *lockout) fail(client netip.Prefix, now time.Time) bool {
	if !client.IsValid() {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.clients[client]
	if f == nil {
		l.makeRoom(now)
		f = &failures{}
		l.clients[client] = f
	}
	if now.Before(f.until) {
		return true // an attempt that began before the lock
	}
	f.times = append(since(f.times, now.Add(-l.cfg.Window)), now)
	if len(f.times) < l.cfg.Failures {
		return false
	}
	f.times, f.until = nil, now.Add(l.cfg.Duration)
	return true
}

// since drops the times not after t from ts, which is in order.
func since(ts []time.Time, t time.Time) []time.Time {
	i := 0
	for i < len(ts) && !ts[i].After(t) {
		i++
	}
	return append(ts[:0], ts[i:]...)
}

// end is when f has nothing left to remember: its lock is over and its
// last failure is out of the window.
func (l *lockout) end(f *failures) time.Time {
	e := f.until
	if n := len(f.times); n > 0 && f.times[n-1].Add(l.cfg.Window).After(e) {
		e = f.times[n-1].Add(l.cfg.Window)
	}
	return e
}

// makeRoom makes room for one more client when the map is full. Runs under
// l.mu.
func (l *lockout) makeRoom(now time.Time) {
	if len(l.clients) < l.maxClients {
		return
	}
	var soonest netip.Prefix
	var soonestEnd time.Time
	for c, f := range l.clients {
		e := l.end(f)
		if !e.After(now) {
			delete(l.clients, c)
			continue
		}
		if !soonest.IsValid() || e.Before(soonestEnd) {
			soonest, soonestEnd = c, e
		}
	}
	if len(l.clients) >= l.maxClients {
		delete(l.clients, soonest)
	}
}
