package resolver

import (
	"context"
	"slices"
	"testing"

	"github.com/miekg/dns"
	"github.com/mtad/mtad/internal/testdns"
)

const mxZone = `
$ORIGIN example.test.
@             IN SOA ns admin 1 3600 600 86400 60
multi         IN MX  20 mx-b
multi         IN MX  10 MX-A.example.test.
multi         IN MX  30 mx-c
alias         IN CNAME multi
xn--bcher-kva IN MX  10 mx-a
tie           IN MX  10 a
tie           IN MX  10 b
tie           IN MX  20 c
nomx          IN A   127.0.0.2
null          IN MX  0 .
dangling      IN CNAME missing
servfail      IN MX  10 mx-a
refused       IN MX  10 mx-a
loop1         IN CNAME loop2
loop2         IN CNAME loop1
`

var multiMX = []MX{
	{Host: "mx-a.example.test", Pref: 10},
	{Host: "mx-b.example.test", Pref: 20},
	{Host: "mx-c.example.test", Pref: 30},
}

func TestLookupMX(t *testing.T) {
	s := testdns.Start(t, mxZone)
	s.SetRcode("servfail.example.test", dns.TypeMX, dns.RcodeServerFailure)
	s.SetRcode("refused.example.test", dns.TypeMX, dns.RcodeRefused)
	r := newResolver(t, Config{}, s.Addr)
	tests := []struct {
		name   string
		domain string
		want   []MX
	}{
		{"preference order", "multi.example.test", multiMX},
		{"case and trailing dot", "MULTI.Example.Test.", multiMX},
		{"cname at the domain", "alias.example.test", multiMX},
		{"idn", "bücher.example.test", multiMX[:1]},
		{"implicit mx", "nomx.example.test", []MX{{Host: "nomx.example.test", Implicit: true}}},
		{"implicit mx for an empty non-terminal", "test", []MX{{Host: "test", Implicit: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.LookupMX(context.Background(), tt.domain)
			if err != nil {
				t.Fatalf("LookupMX(%q): %v", tt.domain, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("LookupMX(%q) = %v, want %v", tt.domain, got, tt.want)
			}
		})
	}
}

func TestLookupMXErrors(t *testing.T) {
	s := testdns.Start(t, mxZone)
	s.SetRcode("servfail.example.test", dns.TypeMX, dns.RcodeServerFailure)
	s.SetRcode("refused.example.test", dns.TypeMX, dns.RcodeRefused)
	r := newResolver(t, Config{}, s.Addr)
	tests := []struct {
		name      string
		domain    string
		temporary bool
		code      int
		enhanced  string
		sentinel  error
	}{
		{"null mx", "null.example.test", false, 556, "5.1.10", ErrNullMX},
		{"nxdomain", "nope.example.test", false, 550, "5.1.2", ErrNoSuchDomain},
		{"cname to nothing", "dangling.example.test", false, 550, "5.1.2", ErrNoSuchDomain},
		{"invalid name", "bad..example.test", false, 550, "5.1.2", ErrInvalidName},
		{"servfail", "servfail.example.test", true, 451, "4.4.3", ErrServerFailure},
		{"refused", "refused.example.test", true, 451, "4.4.3", ErrServerFailure},
		{"cname loop", "loop1.example.test", true, 451, "4.4.3", ErrCNAMEChain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.LookupMX(context.Background(), tt.domain)
			if got != nil {
				t.Errorf("LookupMX(%q) = %v with an error", tt.domain, got)
			}
			wantError(t, err, tt.temporary, tt.code, tt.enhanced, tt.sentinel, tt.domain)
		})
	}
}

func TestLookupMXShufflesEqualPreferences(t *testing.T) {
	s := testdns.Start(t, mxZone)
	r := newResolver(t, Config{}, s.Addr)
	seen := map[string]bool{}
	for range 200 {
		mxs, err := r.LookupMX(context.Background(), "tie.example.test")
		if err != nil {
			t.Fatalf("LookupMX: %v", err)
		}
		if len(mxs) != 3 || mxs[2].Host != "c.example.test" {
			t.Fatalf("LookupMX = %v, want a and b in some order, then c", mxs)
		}
		seen[mxs[0].Host] = true
		if len(seen) == 2 {
			return
		}
	}
	t.Errorf("after 200 lookups only %v came first", seen)
}

func TestLookupMXAuthenticated(t *testing.T) {
	s := testdns.Start(t, mxZone+"secure.test. 300 IN MX 10 mx.secure.test.\n"+
		"alias.secure.test. 300 IN CNAME multi.example.test.\n")
	s.SetAuthenticated("secure.test")
	r := newResolver(t, Config{}, s.Addr)
	tests := []struct {
		domain string
		want   bool
	}{
		{"secure.test", true},
		{"multi.example.test", false},
		{"alias.secure.test", false}, // the CNAME leaves the secure zone
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			res, err := r.LookupMXFull(context.Background(), tt.domain)
			if err != nil {
				t.Fatalf("LookupMXFull: %v", err)
			}
			if res.Authenticated != tt.want {
				t.Errorf("Authenticated = %v, want %v", res.Authenticated, tt.want)
			}
		})
	}
}
