package resolver

import (
	"context"
	"strings"

	"github.com/miekg/dns"
)

// TXTResult is the outcome of LookupTXT.
type TXTResult struct {
	// Records holds one string per TXT record: its character-strings
	// joined without separator (RFC 7208 section 3.3, RFC 8461 section
	// 3.1), as the bytes on the wire.
	Records []string
	// Authenticated reports that every response used had the AD bit.
	Authenticated bool
}

// LookupTXT returns the TXT records at name, such as
// "_mta-sts.example.com", following CNAMEs. A name that exists without
// TXT records gives an empty result and no error. The error is an *Error:
// permanent 550 5.1.2 (ErrNoSuchDomain) when the name does not exist,
// temporary 451 4.4.3 when the DNS failed.
func (r *Resolver) LookupTXT(ctx context.Context, name string) (TXTResult, error) {
	fqdn, err := normalize(name)
	if err != nil {
		return TXTResult{}, notFound(name, err)
	}
	ans, err := r.lookup(ctx, dns.Fqdn(fqdn), dns.TypeTXT)
	switch {
	case err != nil:
		return TXTResult{}, temporary(fqdn, err)
	case ans.nxdomain:
		return TXTResult{}, notFound(fqdn, ErrNoSuchDomain)
	}
	res := TXTResult{Authenticated: ans.authenticated}
	for _, rr := range ans.records {
		res.Records = append(res.Records, unescapeTXT(strings.Join(rr.(*dns.TXT).Txt, "")))
	}
	return res, nil
}

// unescapeTXT undoes the presentation escapes miekg/dns applies to
// character-strings it unpacks: `\"` and `\\` for quote and backslash,
// `\DDD` (decimal) for bytes outside printable ASCII.
func unescapeTXT(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		if d, ok := decimalByte(s[i+1:]); ok {
			b.WriteByte(d)
			i += 3
			continue
		}
		b.WriteByte(s[i+1])
		i++
	}
	return b.String()
}

// decimalByte reads a byte written as three decimal digits at the start
// of s.
func decimalByte(s string) (byte, bool) {
	if len(s) < 3 || !isDigit(s[0]) || !isDigit(s[1]) || !isDigit(s[2]) {
		return 0, false
	}
	n := int(s[0]-'0')*100 + int(s[1]-'0')*10 + int(s[2]-'0')
	return byte(n), n <= 255
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
