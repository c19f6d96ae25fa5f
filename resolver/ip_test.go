package resolver

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/miekg/dns"
	"github.com/mtad/mtad/internal/testdns"
)

const ipZone = `
$ORIGIN example.test.
@          IN SOA ns admin 1 3600 600 86400 60
dual       IN A    127.0.0.2
dual       IN AAAA ::2
www        IN CNAME dual
v4         IN A    127.0.0.3
halfbroken IN A    127.0.0.4
halfbroken IN AAAA ::4
v6broken   IN AAAA ::5
broken     IN A    127.0.0.6
`

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func TestLookupIP(t *testing.T) {
	s := testdns.Start(t, ipZone)
	s.SetRcode("halfbroken.example.test", dns.TypeAAAA, dns.RcodeServerFailure)
	s.SetRcode("v6broken.example.test", dns.TypeAAAA, dns.RcodeServerFailure)
	s.SetRcode("broken.example.test", dns.TypeNone, dns.RcodeServerFailure)
	r := newResolver(t, Config{}, s.Addr)
	tests := []struct {
		name  string
		host  string
		order IPOrder
		want  []netip.Addr
	}{
		{"ipv4 then ipv6", "dual.example.test", IPv4ThenIPv6, addrs("127.0.0.2", "::2")},
		{"ipv6 then ipv4", "dual.example.test", IPv6ThenIPv4, addrs("::2", "127.0.0.2")},
		{"ipv4 only", "dual.example.test", IPv4Only, addrs("127.0.0.2")},
		{"ipv6 only", "dual.example.test", IPv6Only, addrs("::2")},
		{"cname", "www.example.test", IPv4ThenIPv6, addrs("127.0.0.2", "::2")},
		{"one family nodata", "v4.example.test", IPv6ThenIPv4, addrs("127.0.0.3")},
		{"one family failing", "halfbroken.example.test", IPv6ThenIPv4, addrs("127.0.0.4")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.LookupIP(context.Background(), tt.host, tt.order)
			if err != nil {
				t.Fatalf("LookupIP(%q, %v): %v", tt.host, tt.order, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("LookupIP(%q, %v) = %v, want %v", tt.host, tt.order, got, tt.want)
			}
		})
	}
}

func TestLookupIPErrors(t *testing.T) {
	s := testdns.Start(t, ipZone)
	s.SetRcode("v6broken.example.test", dns.TypeAAAA, dns.RcodeServerFailure)
	s.SetRcode("broken.example.test", dns.TypeNone, dns.RcodeServerFailure)
	r := newResolver(t, Config{}, s.Addr)
	tests := []struct {
		name      string
		host      string
		order     IPOrder
		temporary bool
		code      int
		enhanced  string
		sentinel  error
	}{
		{"nxdomain", "nope.example.test", IPv4ThenIPv6, false, 550, "5.1.2", ErrNoSuchDomain},
		{"no address of the family", "v4.example.test", IPv6Only, false, 550, "5.1.2", ErrNoAddress},
		{"no address at all", "example.test", IPv4ThenIPv6, false, 550, "5.1.2", ErrNoAddress},
		{"nodata and servfail", "v6broken.example.test", IPv4ThenIPv6, true, 451, "4.4.3", ErrServerFailure},
		{"servfail on both", "broken.example.test", IPv4ThenIPv6, true, 451, "4.4.3", ErrServerFailure},
		{"invalid order", "dual.example.test", IPOrder(9), true, 451, "4.4.3", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.LookupIP(context.Background(), tt.host, tt.order)
			if got != nil {
				t.Errorf("LookupIP(%q) = %v with an error", tt.host, got)
			}
			wantError(t, err, tt.temporary, tt.code, tt.enhanced, tt.sentinel, tt.host)
		})
	}
}

func TestLookupIPLiteral(t *testing.T) {
	s := testdns.Start(t, ipZone)
	r := newResolver(t, Config{}, s.Addr)
	tests := []struct {
		host string
		want string
	}{
		{"127.0.0.1", "127.0.0.1"},
		{"[127.0.0.1]", "127.0.0.1"},
		{"[IPv6:::1]", "::1"},
		{"[ipv6:2001:db8::1]", "2001:db8::1"},
		{"::1", "::1"},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			got, err := r.LookupIP(context.Background(), tt.host, IPv4Only)
			if err != nil {
				t.Fatalf("LookupIP(%q): %v", tt.host, err)
			}
			if want := addrs(tt.want); !slices.Equal(got, want) {
				t.Errorf("LookupIP(%q) = %v, want %v", tt.host, got, want)
			}
		})
	}
	if n := s.Queries(); n != 0 {
		t.Errorf("%d queries for IP literals, want none", n)
	}
}

func TestParseLiteralRejects(t *testing.T) {
	for _, host := range []string{"example.test", "[127.0.0.1", "[IPv6:127.0.0.1]", "fe80::1%eth0", "[]", ""} {
		if addr, ok := parseLiteral(host); ok {
			t.Errorf("parseLiteral(%q) = %v, want not a literal", host, addr)
		}
	}
}

func TestLookupIPAuthenticated(t *testing.T) {
	s := testdns.Start(t, ipZone+"mx.secure.test. 300 IN A 127.0.0.9\n")
	s.SetAuthenticated("secure.test")
	s.SetRcode("halfbroken.example.test", dns.TypeAAAA, dns.RcodeServerFailure)
	r := newResolver(t, Config{}, s.Addr)
	tests := []struct {
		host string
		want bool
	}{
		{"mx.secure.test", true},
		{"dual.example.test", false},
		{"127.0.0.1", false},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			res, err := r.LookupIPFull(context.Background(), tt.host, IPv4ThenIPv6)
			if err != nil {
				t.Fatalf("LookupIPFull: %v", err)
			}
			if res.Authenticated != tt.want {
				t.Errorf("Authenticated = %v, want %v", res.Authenticated, tt.want)
			}
		})
	}
}

func TestParseIPOrder(t *testing.T) {
	tests := []struct {
		in   string
		want IPOrder
		ok   bool
	}{
		{"ipv4_only", IPv4Only, true},
		{"ipv6_only", IPv6Only, true},
		{"ipv4_then_ipv6", IPv4ThenIPv6, true},
		{"ipv6_then_ipv4", IPv6ThenIPv4, true},
		{"IPv4_only", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseIPOrder(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("ParseIPOrder(%q) = %v, %v", tt.in, got, err)
			}
			var o IPOrder
			if err := o.UnmarshalText([]byte(tt.in)); tt.ok && (err != nil || o.String() != tt.in) {
				t.Errorf("UnmarshalText(%q): %v, String() = %q", tt.in, err, o)
			}
		})
	}
}
