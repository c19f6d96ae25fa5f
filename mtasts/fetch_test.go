package mtasts

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testDomain = "example.test"
	policyHost = "mta-sts.example.test"
	enforce    = "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.test\r\nmx: *.mx.example.test\r\nmax_age: 86400\r\n"
)

// env is a policy server for mta-sts.example.test (and a few more names)
// behind a fake DNS, and a Fetcher pointed at both.
type env struct {
	ca    *testCA
	srv   *policyServer
	dns   *fakeDNS
	clock *clock
	f     *Fetcher
}

func newEnv(t *testing.T, h http.HandlerFunc) *env {
	t.Helper()
	ca := newCA(t)
	srv := newServer(t, ca.leaf(t, policyHost, "mta-sts.a.test", "mta-sts.b.test", "mta-sts.c.test"), h)
	e := &env{ca: ca, srv: srv, dns: newDNS(testDomain, "id1"), clock: newClock()}
	e.f = &Fetcher{
		TXT: e.dns, IP: e.dns, RootCAs: ca.pool, Port: srv.port,
		Timeout: 5 * time.Second, Now: e.clock.Now,
	}
	return e
}

func (e *env) get(t *testing.T, domain string) (*Policy, error) {
	t.Helper()
	return e.f.Get(context.Background(), domain)
}

// mustGet gets a policy that must be there.
func (e *env) mustGet(t *testing.T, domain string) *Policy {
	t.Helper()
	p, err := e.get(t, domain)
	if err != nil || p == nil {
		t.Fatalf("Get(%q) = %+v, %v; want a policy", domain, p, err)
	}
	return p
}

func (e *env) wantRequests(t *testing.T, n int) {
	t.Helper()
	if got := e.srv.requests(); got != n {
		t.Fatalf("policy fetched %d times, want %d", got, n)
	}
}

func TestGetFetchesAndCaches(t *testing.T) {
	e := newEnv(t, serve(enforce))
	start := e.clock.Now()

	p := e.mustGet(t, testDomain)
	want := &Policy{Version: "STSv1", Mode: ModeEnforce, MX: []string{"mx1.example.test", "*.mx.example.test"},
		MaxAge: 24 * time.Hour, ID: "id1", Fetched: start}
	if p.Version != want.Version || p.Mode != want.Mode || !slices.Equal(p.MX, want.MX) ||
		p.MaxAge != want.MaxAge || p.ID != want.ID || !p.Fetched.Equal(want.Fetched) {
		t.Fatalf("Get = %+v, want %+v", p, want)
	}
	e.wantRequests(t, 1)
	e.srv.mu.Lock()
	host, sni := e.srv.hosts[0], e.srv.snis[0]
	e.srv.mu.Unlock()
	if host != policyHost || sni != policyHost {
		t.Errorf("request had Host %q and SNI %q, want %s", host, sni, policyHost)
	}

	t.Run("same id reuses", func(t *testing.T) {
		e.clock.advance(time.Hour)
		if again := e.mustGet(t, testDomain); again != p {
			t.Errorf("Get = %+v, want the cached %+v", again, p)
		}
		if again := e.mustGet(t, "EXAMPLE.Test."); again != p {
			t.Errorf("Get of the name in capitals with a dot = %+v, want the cached policy", again)
		}
		e.wantRequests(t, 1)
	})
	t.Run("new id refetches", func(t *testing.T) {
		e.dns.setID(testDomain, "id2")
		p = e.mustGet(t, testDomain)
		if p.ID != "id2" || !p.Fetched.Equal(e.clock.Now()) {
			t.Errorf("Get = %+v, want id2 fetched now", p)
		}
		e.wantRequests(t, 2)
		if again := e.mustGet(t, testDomain); again != p {
			t.Error("the policy of the new id was not cached")
		}
		e.wantRequests(t, 2)
	})
	t.Run("expired refetches", func(t *testing.T) {
		e.clock.advance(24*time.Hour - time.Second)
		e.mustGet(t, testDomain)
		e.wantRequests(t, 2)
		e.clock.advance(time.Second)
		if again := e.mustGet(t, testDomain); again == p || again.ID != "id2" {
			t.Errorf("Get after max_age = %+v, want a new fetch of id2", again)
		}
		e.wantRequests(t, 3)
	})
}

// TestGetCacheOutlivesDNS: a cached policy is used when the TXT record
// cannot be had or a new policy cannot be fetched (RFC 8461 section 5.1).
func TestGetCacheOutlivesDNS(t *testing.T) {
	var broken sync.Mutex // held: the server answers 500
	broke := false
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		broken.Lock()
		defer broken.Unlock()
		if broke {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		serve(enforce)(w, r)
	})
	p := e.mustGet(t, testDomain)

	steps := []struct {
		name string
		dns  func()
	}{
		{"txt gone", func() { e.dns.removeTXT(testDomain) }},
		{"txt empty", func() { e.dns.setTXT(testDomain) }},
		{"txt not sts", func() { e.dns.setTXT(testDomain, "v=spf1 -all") }},
		{"txt invalid", func() { e.dns.setTXT(testDomain, "v=STSv1; id=not-valid;") }},
		{"two sts records", func() { e.dns.setTXT(testDomain, "v=STSv1; id=a;", "v=STSv1; id=b;") }},
		{"txt servfail", func() { e.dns.failTXT(testDomain, servfail("_mta-sts."+testDomain)) }},
		{"txt timeout", func() { e.dns.failTXT(testDomain, context.DeadlineExceeded) }},
		{"new id, fetch fails", func() {
			e.dns.setID(testDomain, "id2")
			broken.Lock()
			broke = true
			broken.Unlock()
		}},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			step.dns()
			e.clock.advance(time.Hour)
			if got, err := e.get(t, testDomain); got != p || err != nil {
				t.Fatalf("Get = %+v, %v; want the cached policy", got, err)
			}
		})
	}
	e.wantRequests(t, 2) // the first fetch, and the new id's

	t.Run("expired", func(t *testing.T) {
		e.clock.advance(24 * time.Hour)
		_, err := e.get(t, testDomain)
		var se *Error
		if !errors.As(err, &se) || !se.Temporary || !errors.Is(err, ErrStatus) {
			t.Fatalf("Get = %v, want the temporary 500 now that the cache expired", err)
		}
		e.dns.removeTXT(testDomain)
		if got, err := e.get(t, testDomain); got != nil || err != nil {
			t.Fatalf("Get without TXT = %+v, %v; want nil, nil", got, err)
		}
	})
}

var netDNSNotFound = net.DNSError{Err: "no such host", Name: "_mta-sts." + testDomain, IsNotFound: true}

func TestGetNoPolicy(t *testing.T) {
	tests := []struct {
		name   string
		domain string
		dns    func(d *fakeDNS)
	}{
		{"nxdomain", testDomain, func(d *fakeDNS) { d.removeTXT(testDomain) }},
		{"nodata", testDomain, func(d *fakeDNS) { d.setTXT(testDomain) }},
		{"not an sts record", testDomain, func(d *fakeDNS) { d.setTXT(testDomain, "v=spf1 -all", "hello") }},
		{"two sts records", testDomain, func(d *fakeDNS) { d.setTXT(testDomain, "v=STSv1; id=a;", "v=STSv1; id=b;") }},
		{"invalid record", testDomain, func(d *fakeDNS) { d.setTXT(testDomain, "v=STSv1; id=;") }},
		{"record without id", testDomain, func(d *fakeDNS) { d.setTXT(testDomain, "v=STSv1;") }},
		{"net dns not found", testDomain, func(d *fakeDNS) {
			d.failTXT(testDomain, fmt.Errorf("lookup: %w", &netDNSNotFound))
		}},
		{"address literal", "[192.0.2.1]", func(*fakeDNS) {}},
		{"bare address", "192.0.2.1", func(*fakeDNS) {}},
		{"empty", "", func(*fakeDNS) {}},
		{"not a name", "exa mple.test", func(*fakeDNS) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, serve(enforce))
			tt.dns(e.dns)
			p, err := e.get(t, tt.domain)
			if p != nil || err != nil {
				t.Fatalf("Get = %+v, %v; want nil, nil", p, err)
			}
			e.wantRequests(t, 0)
		})
	}
}

func TestGetFailures(t *testing.T) {
	slow := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		// Never answer: returning would send an empty 200 that a client
		// still waiting could read as a (wrongly typed) policy.
		panic(http.ErrAbortHandler)
	}
	status := func(code int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", code) }
	}
	typed := func(ct, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", ct)
			w.Write([]byte(body))
		}
	}
	big := enforce + "x-padding: " + strings.Repeat("x", 200) + "\r\n"
	tests := []struct {
		name      string
		domain    string
		handler   http.HandlerFunc
		setup     func(e *env)
		temporary bool
		reason    string
		is        error // a sentinel the error wraps, or nil
		requests  int
	}{
		{name: "404", handler: status(404), reason: ReasonFetchError, is: ErrStatus, requests: 1},
		{name: "403", handler: status(403), reason: ReasonFetchError, is: ErrStatus, requests: 1},
		{name: "503", handler: status(503), temporary: true, reason: ReasonFetchError, is: ErrStatus, requests: 1},
		{name: "429", handler: status(429), temporary: true, reason: ReasonFetchError, is: ErrStatus, requests: 1},
		{name: "204", handler: status(204), reason: ReasonFetchError, is: ErrStatus, requests: 1},
		{name: "html", handler: typed("text/html", enforce), reason: ReasonInvalid, is: ErrContentType, requests: 1},
		{name: "no content type", handler: typed("", enforce), reason: ReasonInvalid, is: ErrContentType, requests: 1},
		{name: "invalid policy", handler: serve("version: STSv1\nmode: enforce\nmax_age: 86400\n"),
			reason: ReasonInvalid, is: ErrInvalidPolicy, requests: 1},
		{name: "too large with length", handler: serve(big), setup: func(e *env) { e.f.MaxBody = 200 },
			reason: ReasonInvalid, is: ErrTooLarge, requests: 1},
		{name: "too large chunked", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			for range 10 {
				w.Write([]byte(big[:100]))
				w.(http.Flusher).Flush()
			}
		}, setup: func(e *env) { e.f.MaxBody = 200 }, reason: ReasonInvalid, is: ErrTooLarge, requests: 1},
		{name: "too large by default", handler: serve(enforce + strings.Repeat("x: y\n", 64<<10/5)),
			reason: ReasonInvalid, is: ErrTooLarge, requests: 1},
		{name: "slow server", handler: slow, setup: func(e *env) { e.f.Timeout = 200 * time.Millisecond },
			temporary: true, reason: ReasonFetchError, is: context.DeadlineExceeded, requests: 1},
		{name: "certificate for another name", domain: "other.test", handler: serve(enforce), setup: func(e *env) {
			e.dns.setID("other.test", "x1")
			e.dns.ip["mta-sts.other.test"] = []netip.Addr{loopback}
		}, temporary: true, reason: ReasonWebPKI},
		{name: "certificate from another CA", handler: serve(enforce), setup: func(e *env) {
			e.f.RootCAs = newCA(t).pool
		}, temporary: true, reason: ReasonWebPKI},
		{name: "txt servfail", handler: serve(enforce), setup: func(e *env) {
			e.dns.failTXT(testDomain, servfail("_mta-sts."+testDomain))
		}, temporary: true, reason: ReasonFetchError},
		{name: "policy host nxdomain", handler: serve(enforce), setup: func(e *env) {
			delete(e.dns.ip, policyHost)
		}, reason: ReasonFetchError},
		{name: "policy host servfail", handler: serve(enforce), setup: func(e *env) {
			e.dns.ipErr[policyHost] = servfail(policyHost)
		}, temporary: true, reason: ReasonFetchError},
		{name: "policy host without address", handler: serve(enforce), setup: func(e *env) {
			e.dns.ip[policyHost] = nil
		}, temporary: true, reason: ReasonFetchError},
		{name: "connection refused", handler: serve(enforce), setup: func(e *env) {
			e.f.Port = closedPort(t)
		}, temporary: true, reason: ReasonFetchError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.handler)
			if tt.setup != nil {
				tt.setup(e)
			}
			domain := cmpOr(tt.domain, testDomain)
			start := time.Now()
			p, err := e.get(t, domain)
			var se *Error
			if p != nil || !errors.As(err, &se) {
				t.Fatalf("Get = %+v, %v; want an *Error", p, err)
			}
			if se.Temporary != tt.temporary || se.Reason != tt.reason {
				t.Errorf("Get error %v: temporary %v, reason %s; want %v, %s",
					err, se.Temporary, se.Reason, tt.temporary, tt.reason)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Get error %v does not wrap %v", err, tt.is)
			}
			if tt.domain == "" {
				e.wantRequests(t, tt.requests)
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("Get took %v", took)
			}
			t.Logf("%v", err)
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestGetRedirectNotFollowed(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == policyPath {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
			return
		}
		serve(enforce)(w, r)
	})
	p, err := e.get(t, testDomain)
	var se *Error
	if p != nil || !errors.As(err, &se) || se.Temporary || se.Reason != ReasonFetchError || !errors.Is(err, ErrStatus) {
		t.Fatalf("Get = %+v, %v; want a permanent status error", p, err)
	}
	if !strings.Contains(err.Error(), "302") {
		t.Errorf("error %q does not name the status", err)
	}
	if n := e.srv.count("/elsewhere"); n != 0 {
		t.Errorf("the redirect was followed %d times", n)
	}
}

func TestGetAcceptsCharset(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "Text/Plain; charset=utf-8")
		w.Write([]byte(enforce))
	})
	if p := e.mustGet(t, testDomain); p.Mode != ModeEnforce {
		t.Errorf("Get = %+v", p)
	}
}

func TestGetModeNone(t *testing.T) {
	e := newEnv(t, serve("version: STSv1\nmode: none\nmax_age: 86400\n"))
	p := e.mustGet(t, testDomain)
	if p.Mode != ModeNone || p.Matches("mx1.example.test") {
		t.Errorf("Get = %+v, want mode none matching nothing", p)
	}
	e.mustGet(t, testDomain)
	e.wantRequests(t, 1)
}

func TestGetMaxAgeZero(t *testing.T) {
	e := newEnv(t, serve("version: STSv1\nmode: testing\nmx: mx1.example.test\nmax_age: 0\n"))
	for i := 1; i <= 2; i++ {
		if p := e.mustGet(t, testDomain); p.MaxAge != 0 {
			t.Fatalf("Get = %+v", p)
		}
		e.wantRequests(t, i) // a policy expired when fetched is not cached
	}
}

func TestGetCacheBound(t *testing.T) {
	e := newEnv(t, serve(enforce))
	e.f.CacheSize = 2
	for _, d := range []string{"a.test", "b.test", "c.test"} {
		e.dns.setID(d, "id1")
		e.dns.ip["mta-sts."+d] = []netip.Addr{loopback}
	}
	e.mustGet(t, "a.test")
	e.clock.advance(time.Hour)
	e.mustGet(t, "b.test")
	e.clock.advance(time.Hour)
	e.mustGet(t, "c.test") // a.test, expiring first, makes room
	e.wantRequests(t, 3)
	e.mustGet(t, "c.test")
	e.mustGet(t, "b.test")
	e.wantRequests(t, 3)
	e.mustGet(t, "a.test")
	e.wantRequests(t, 4)
	e.f.mu.Lock()
	n := len(e.f.cache)
	e.f.mu.Unlock()
	if n != 2 {
		t.Errorf("cache holds %d policies, want 2", n)
	}
}

func TestGetConcurrent(t *testing.T) {
	e := newEnv(t, serve(enforce))
	var wg sync.WaitGroup
	errs := make(chan error, 8*20)
	for range 8 {
		wg.Go(func() {
			for range 20 {
				p, err := e.f.Get(context.Background(), testDomain)
				if err != nil || p == nil || p.ID != "id1" {
					errs <- fmt.Errorf("Get = %+v, %v", p, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := e.srv.requests(); n < 1 || n > 8 {
		t.Errorf("policy fetched %d times by 8 goroutines", n)
	}
}

func TestGetCanceled(t *testing.T) {
	e := newEnv(t, serve(enforce))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p, err := e.f.Get(ctx, testDomain)
	var se *Error
	if p != nil || !errors.As(err, &se) || !se.Temporary {
		t.Fatalf("Get with a canceled context = %+v, %v; want a temporary error", p, err)
	}
}

func TestGetWithoutTXTLookuper(t *testing.T) {
	p, err := (&Fetcher{}).Get(context.Background(), testDomain)
	var se *Error
	if p != nil || !errors.As(err, &se) || !se.Temporary {
		t.Fatalf("Get = %+v, %v; want a temporary error", p, err)
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"example.test", "example.test", true},
		{"Example.TEST.", "example.test", true},
		{"bücher.test", "xn--bcher-kva.test", true},
		{"BÜCHER.test", "xn--bcher-kva.test", true},
		{"", "", false},
		{".", "", false},
		{"a..test", "", false},
		{"192.0.2.1", "", false},
		{"2001:db8::1", "", false},
		{"[192.0.2.1]", "", false},
		{"exa mple.test", "", false},
		{"\xff.test", "", false},
	}
	for _, tt := range tests {
		got, ok := normalize(tt.in)
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("normalize(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
