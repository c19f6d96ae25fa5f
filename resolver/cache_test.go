package resolver

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/mtad/mtad/internal/testdns"
)

// clock is a settable time source for the cache.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestCache(t *testing.T) {
	s := testdns.Start(t, `
$ORIGIN example.test.
@    300 IN SOA ns admin 1 3600 600 86400 60
@    300 IN MX  10 mx
mx   300 IN A   127.0.0.2
zero   0 IN MX  10 mx
`)
	tests := []struct {
		name   string
		domain string
		ttl    time.Duration // how long the answer should be cached
	}{
		{"positive", "example.test", 300 * time.Second},
		{"negative with soa minimum", "nope.example.test", 60 * time.Second},
		{"nodata with soa minimum", "mx.example.test", 60 * time.Second},
		{"ttl 0 clamped", "zero.example.test", minTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newResolver(t, Config{}, s.Addr)
			clk := &clock{now: time.Unix(1e9, 0)}
			r.cache = newCache(16, clk.Now)
			before := s.Queries()
			lookup := func() { r.LookupMX(context.Background(), tt.domain) }
			lookup()
			clk.Advance(tt.ttl - time.Second)
			lookup()
			if n := s.Queries() - before; n != 1 {
				t.Errorf("%d queries within the ttl, want 1", n)
			}
			clk.Advance(time.Second)
			lookup()
			if n := s.Queries() - before; n != 2 {
				t.Errorf("%d queries after the ttl, want 2", n)
			}
		})
	}
}

func TestCacheSkipsFailures(t *testing.T) {
	s := testdns.Start(t, "example.test. 300 IN MX 10 mx.example.test.\n")
	r := newResolver(t, Config{}, s.Addr)
	s.SetRcode("example.test", dns.TypeMX, dns.RcodeServerFailure)
	if _, err := r.LookupMX(context.Background(), "example.test"); err == nil {
		t.Fatal("LookupMX succeeded on SERVFAIL")
	}
	s.SetRcode("example.test", dns.TypeMX, dns.RcodeSuccess)
	if _, err := r.LookupMX(context.Background(), "example.test"); err != nil {
		t.Fatalf("LookupMX after SERVFAIL cleared: %v", err)
	}
}

func TestCacheIsBounded(t *testing.T) {
	clk := &clock{now: time.Unix(1e9, 0)}
	c := newCache(3, clk.Now)
	msg := func(ttl uint32) *dns.Msg {
		m := new(dns.Msg)
		m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Rrtype: dns.TypeA, Ttl: ttl}}}
		return m
	}
	c.put(cacheKey{"short.", dns.TypeA}, msg(10))
	for _, name := range []string{"a.", "b.", "c.", "d."} {
		c.put(cacheKey{name, dns.TypeA}, msg(300))
		if n := len(c.entries); n > 3 {
			t.Fatalf("%d entries, bound is 3", n)
		}
	}
	clk.Advance(20 * time.Second)
	c.put(cacheKey{"e.", dns.TypeA}, msg(300))
	if _, ok := c.get(cacheKey{"e.", dns.TypeA}); !ok {
		t.Error("the newest entry is missing")
	}
	if _, ok := c.get(cacheKey{"short.", dns.TypeA}); ok {
		t.Error("an expired entry was returned")
	}
}
