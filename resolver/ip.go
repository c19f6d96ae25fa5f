package resolver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// IPOrder says which address families LookupIP asks for, in which order.
// The zero value is IPv4ThenIPv6.
type IPOrder int

// Address family orders.
const (
	IPv4ThenIPv6 IPOrder = iota
	IPv6ThenIPv4
	IPv4Only
	IPv6Only
)

var ipOrderNames = [...]string{"ipv4_then_ipv6", "ipv6_then_ipv4", "ipv4_only", "ipv6_only"}

// ParseIPOrder parses the configuration spelling of an order:
// "ipv4_only", "ipv6_only", "ipv4_then_ipv6" or "ipv6_then_ipv4".
func ParseIPOrder(s string) (IPOrder, error) {
	for i, name := range ipOrderNames {
		if s == name {
			return IPOrder(i), nil
		}
	}
	return 0, fmt.Errorf("unknown ip order %q (want ipv4_only, ipv6_only, ipv4_then_ipv6 or ipv6_then_ipv4)", s)
}

// String returns the configuration spelling of o.
func (o IPOrder) String() string {
	if o < 0 || int(o) >= len(ipOrderNames) {
		return fmt.Sprintf("IPOrder(%d)", int(o))
	}
	return ipOrderNames[o]
}

// UnmarshalText lets configuration decoders read an IPOrder.
func (o *IPOrder) UnmarshalText(b []byte) error {
	v, err := ParseIPOrder(string(b))
	if err == nil {
		*o = v
	}
	return err
}

// families returns the query types for o, in order.
func (o IPOrder) families() []uint16 {
	switch o {
	case IPv4ThenIPv6:
		return []uint16{dns.TypeA, dns.TypeAAAA}
	case IPv6ThenIPv4:
		return []uint16{dns.TypeAAAA, dns.TypeA}
	case IPv4Only:
		return []uint16{dns.TypeA}
	case IPv6Only:
		return []uint16{dns.TypeAAAA}
	}
	return nil
}

// IPResult is the outcome of LookupIPFull.
type IPResult struct {
	Addrs []netip.Addr
	// Authenticated reports that every response used had the AD bit.
	// False for an IP literal and when a family failed.
	Authenticated bool
}

// LookupIP returns the addresses of host in the family order asked for.
// See LookupIPFull.
func (r *Resolver) LookupIP(ctx context.Context, host string, order IPOrder) ([]netip.Addr, error) {
	res, err := r.LookupIPFull(ctx, host, order)
	return res.Addrs, err
}

// LookupIPFull returns the A and AAAA addresses of host, following CNAMEs,
// asking for both families at once when order wants both. An IP literal
// ("192.0.2.1", "[192.0.2.1]", "[IPv6:2001:db8::1]") is returned as is,
// whatever the order. The error is an *Error: permanent 550 5.1.2 when the
// host does not exist or has no address of the families asked, temporary
// 451 4.4.3 when the DNS failed and no family gave an address.
func (r *Resolver) LookupIPFull(ctx context.Context, host string, order IPOrder) (IPResult, error) {
	if addr, ok := parseLiteral(host); ok {
		return IPResult{Addrs: []netip.Addr{addr}}, nil
	}
	name, err := normalize(host)
	if err != nil {
		return IPResult{}, notFound(host, err)
	}
	families := order.families()
	if families == nil {
		return IPResult{}, temporary(name, fmt.Errorf("invalid ip order %d", int(order)))
	}
	results := make([]familyResult, len(families))
	var wg sync.WaitGroup
	for i, qtype := range families {
		wg.Go(func() { results[i] = r.lookupFamily(ctx, dns.Fqdn(name), qtype) })
	}
	wg.Wait()
	return combine(name, results)
}

// familyResult is the outcome of one address family's lookup.
type familyResult struct {
	answer
	addrs []netip.Addr
	err   error
}

func (r *Resolver) lookupFamily(ctx context.Context, name string, qtype uint16) familyResult {
	ans, err := r.lookup(ctx, name, qtype)
	if err != nil {
		return familyResult{err: err}
	}
	res := familyResult{answer: ans}
	for _, rr := range ans.records {
		res.addrs = append(res.addrs, addrOf(rr))
	}
	return res
}

func addrOf(rr dns.RR) netip.Addr {
	switch rr := rr.(type) {
	case *dns.A:
		addr, _ := netip.AddrFromSlice(rr.A)
		return addr.Unmap()
	case *dns.AAAA:
		addr, _ := netip.AddrFromSlice(rr.AAAA)
		return addr
	}
	return netip.Addr{}
}

// combine joins the families' results in order. Addresses win over a
// failure in the other family.
func combine(name string, results []familyResult) (IPResult, error) {
	res := IPResult{Authenticated: true}
	nxdomain := true
	var errs []error
	for _, fr := range results {
		res.Addrs = append(res.Addrs, fr.addrs...)
		res.Authenticated = res.Authenticated && fr.err == nil && fr.authenticated
		nxdomain = nxdomain && fr.nxdomain
		if fr.err != nil {
			errs = append(errs, fr.err)
		}
	}
	switch {
	case len(res.Addrs) > 0:
		return res, nil
	case len(errs) > 0:
		return IPResult{}, temporary(name, errors.Join(errs...))
	case nxdomain:
		return IPResult{}, notFound(name, fmt.Errorf("%w: %w", ErrNoAddress, ErrNoSuchDomain))
	}
	return IPResult{}, notFound(name, ErrNoAddress)
}

// parseLiteral recognizes an IP address, bare or as an RFC 5321 address
// literal ("[192.0.2.1]", "[IPv6:2001:db8::1]").
func parseLiteral(host string) (netip.Addr, bool) {
	s, bracketed := strings.CutPrefix(host, "[")
	if bracketed {
		var ok bool
		if s, ok = strings.CutSuffix(s, "]"); !ok {
			return netip.Addr{}, false
		}
	}
	tagged := len(s) >= 5 && strings.EqualFold(s[:5], "IPv6:")
	if tagged && bracketed {
		s = s[5:]
	}
	addr, err := netip.ParseAddr(s)
	if err != nil || addr.Zone() != "" || (tagged && !addr.Is6()) {
		return netip.Addr{}, false
	}
	return addr, true
}
