package resolver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mtad/mtad/internal/testdns"
)

// newResolver returns a Resolver for the given nameservers, with a short
// timeout so failure tests end quickly.
func newResolver(t *testing.T, cfg Config, nameservers ...string) *Resolver {
	t.Helper()
	cfg.Nameservers = nameservers
	cfg.Timeout = cmp.Or(cfg.Timeout, 2*time.Second)
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

// silentServer returns the address of a bound UDP socket on loopback that
// never answers.
func silentServer(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}

// wantError checks that err is an *Error with the given classification,
// that it matches sentinel (when not nil) and that it names name.
func wantError(t *testing.T, err error, temporary bool, code int, enhanced string, sentinel error, name string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	if e.Temporary != temporary || e.Code != code || e.Enhanced != enhanced {
		t.Errorf("error %q: temporary %v, %d %s; want %v, %d %s",
			err, e.Temporary, e.Code, e.Enhanced, temporary, code, enhanced)
	}
	if sentinel != nil && !errors.Is(err, sentinel) {
		t.Errorf("error %q does not match %q", err, sentinel)
	}
	if msg := err.Error(); !strings.Contains(msg, name) || strings.HasSuffix(msg, ".") {
		t.Errorf("error %q should name %q and not end in a period", msg, name)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		servers []string // want, when no error
		errWith string   // want an error containing this
	}{
		{"ip", Config{Nameservers: []string{"127.0.0.1"}}, []string{"127.0.0.1:53"}, ""},
		{"ip and port", Config{Nameservers: []string{"127.0.0.1:5353"}}, []string{"127.0.0.1:5353"}, ""},
		{"ipv6", Config{Nameservers: []string{"::1", "[::1]", "[::1]:5353"}},
			[]string{"[::1]:53", "[::1]:53", "[::1]:5353"}, ""},
		{"host name", Config{Nameservers: []string{"127.0.0.1", "dns.example"}}, nil, `"dns.example"`},
		{"bad ip", Config{Nameservers: []string{"300.1.1.1"}}, nil, `"300.1.1.1"`},
		{"port 0", Config{Nameservers: []string{"127.0.0.1:0"}}, nil, `"127.0.0.1:0"`},
		{"negative timeout", Config{Nameservers: []string{"127.0.0.1"}, Timeout: -1}, nil, "timeout"},
		{"negative attempts", Config{Nameservers: []string{"127.0.0.1"}, Attempts: -1}, nil, "attempts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(tt.cfg)
			if tt.errWith != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errWith) {
					t.Fatalf("New: error %v, want one naming %s", err, tt.errWith)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if !slices.Equal(r.servers, tt.servers) {
				t.Errorf("servers %v, want %v", r.servers, tt.servers)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	r := newResolver(t, Config{Timeout: defaultTimeout}, "127.0.0.1")
	if r.timeout != defaultTimeout || r.attempts != defaultAttempts || r.cache == nil || r.cache.max != defaultCacheSize {
		t.Errorf("timeout %v, attempts %d, cache %v; want the defaults", r.timeout, r.attempts, r.cache)
	}
	if r := newResolver(t, Config{CacheSize: -1}, "127.0.0.1"); r.cache != nil {
		t.Error("CacheSize -1 should turn the cache off")
	}
}

func TestNewReadsResolvConf(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string
		servers []string // nil: want an error
	}{
		{"nameservers", "search example.test\nnameserver 127.0.0.1\nnameserver ::1\n", []string{"127.0.0.1:53", "[::1]:53"}},
		{"none", "search example.test\n", nil},
	}
	old := resolvConf
	t.Cleanup(func() { resolvConf = old })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resolvConf = filepath.Join(dir, tt.name)
			if err := os.WriteFile(resolvConf, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			r, err := New(Config{})
			switch {
			case tt.servers == nil && err == nil:
				t.Fatalf("New: no error for %q", tt.content)
			case tt.servers != nil && err != nil:
				t.Fatalf("New: %v", err)
			case tt.servers != nil && !slices.Equal(r.servers, tt.servers):
				t.Errorf("servers %v, want %v", r.servers, tt.servers)
			}
		})
	}
}

func TestTimeoutIsTemporary(t *testing.T) {
	r := newResolver(t, Config{Timeout: 100 * time.Millisecond}, silentServer(t))
	_, err := r.LookupMX(context.Background(), "example.test")
	wantError(t, err, true, 451, "4.4.3", os.ErrDeadlineExceeded, "example.test")
}

func TestCanceledContextIsTemporary(t *testing.T) {
	r := newResolver(t, Config{}, silentServer(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := r.LookupIP(ctx, "mx.example.test", IPv4ThenIPv6)
	wantError(t, err, true, 451, "4.4.3", context.Canceled, "mx.example.test")
}

func TestSecondNameserverWhenFirstSilent(t *testing.T) {
	s := testdns.Start(t, "example.test. 300 IN MX 10 mx.example.test.\n")
	r := newResolver(t, Config{Timeout: 100 * time.Millisecond, Attempts: 1}, silentServer(t), s.Addr)
	mxs, err := r.LookupMX(context.Background(), "example.test")
	if err != nil {
		t.Fatalf("LookupMX: %v", err)
	}
	if want := []MX{{Host: "mx.example.test", Pref: 10}}; !slices.Equal(mxs, want) {
		t.Errorf("LookupMX = %v, want %v", mxs, want)
	}
}

func TestTruncatedAnswerRetriedOverTCP(t *testing.T) {
	// 300 A records are about 4.8 kB: more than the 4096-byte EDNS0 buffer.
	var zone strings.Builder
	for i := range 300 {
		fmt.Fprintf(&zone, "many.example.test. 300 IN A 127.0.%d.%d\n", i/250, i%250+1)
	}
	s := testdns.Start(t, zone.String())
	r := newResolver(t, Config{}, s.Addr)
	addrs, err := r.LookupIP(context.Background(), "many.example.test", IPv4Only)
	if err != nil {
		t.Fatalf("LookupIP: %v", err)
	}
	if len(addrs) != 300 {
		t.Errorf("%d addresses, want 300", len(addrs))
	}
	if got := s.Queries(); got != 2 {
		t.Errorf("%d queries, want 2 (UDP truncated, then TCP)", got)
	}
}
