package resolver

import (
	"sync"
	"time"

	"github.com/miekg/dns"
)

// TTL clamps for cached answers.
const (
	minTTL             = 5 * time.Second
	maxTTL             = time.Hour
	maxNegativeTTL     = 5 * time.Minute
	defaultNegativeTTL = time.Minute // a negative answer without a SOA
)

type cacheKey struct {
	name  string // lower-case FQDN
	qtype uint16
}

type cacheEntry struct {
	msg     *dns.Msg // shared, read-only
	expires time.Time
}

// cache holds responses (answers, NXDOMAIN, NODATA) for their TTL, at most
// max of them. A nil *cache caches nothing.
type cache struct {
	max int
	now func() time.Time

	mu      sync.Mutex
	entries map[cacheKey]cacheEntry // guarded by mu
}

func newCache(max int, now func() time.Time) *cache {
	return &cache{max: max, now: now, entries: make(map[cacheKey]cacheEntry)}
}

func (c *cache) get(key cacheKey) (*dns.Msg, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || !c.now().Before(e.expires) {
		delete(c.entries, key)
		return nil, false
	}
	return e.msg, true
}

func (c *cache) put(key cacheKey, m *dns.Msg) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.max {
		c.makeRoom(now)
	}
	c.entries[key] = cacheEntry{msg: m, expires: now.Add(ttl(m))}
}

// makeRoom drops expired entries, or one entry if none has expired.
// It must be called with c.mu held.
func (c *cache) makeRoom(now time.Time) {
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, k)
		}
	}
	for k := range c.entries {
		if len(c.entries) < c.max {
			return
		}
		delete(c.entries, k)
	}
}

// ttl is how long m may be cached: the smallest TTL of its answer records,
// or for a negative answer the SOA's negative TTL (RFC 2308 section 5).
func ttl(m *dns.Msg) time.Duration {
	if len(m.Answer) == 0 || m.Rcode == dns.RcodeNameError {
		return negativeTTL(m)
	}
	least := m.Answer[0].Header().Ttl
	for _, rr := range m.Answer[1:] {
		least = min(least, rr.Header().Ttl)
	}
	return clamp(seconds(least), minTTL, maxTTL)
}

func negativeTTL(m *dns.Msg) time.Duration {
	for _, rr := range m.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return clamp(seconds(min(soa.Hdr.Ttl, soa.Minttl)), minTTL, maxNegativeTTL)
		}
	}
	return defaultNegativeTTL
}

func seconds(s uint32) time.Duration { return time.Duration(s) * time.Second }

func clamp(d, lo, hi time.Duration) time.Duration { return min(max(d, lo), hi) }
