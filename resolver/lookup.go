package resolver

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/miekg/dns"
	"golang.org/x/net/idna"
)

// answer is the outcome of a lookup after CNAMEs.
type answer struct {
	records       []dns.RR // of the type asked, at the end of the chain
	nxdomain      bool     // the name at the end of the chain does not exist
	authenticated bool     // every response on the way had the AD bit
}

// lookup resolves name (a lower-case FQDN) and qtype, following CNAMEs in
// each response and asking again for a chain's target when a response
// stops at a CNAME, up to maxCNAME links in all.
func (r *Resolver) lookup(ctx context.Context, name string, qtype uint16) (answer, error) {
	ans := answer{authenticated: true}
	for links := 0; ; {
		m, err := r.query(ctx, name, qtype)
		if err != nil {
			return answer{}, err
		}
		ans.authenticated = ans.authenticated && m.AuthenticatedData
		records, end, n := walk(m.Answer, name, qtype)
		if links += n; links > maxCNAME {
			return answer{}, ErrCNAMEChain
		}
		if len(records) > 0 || end == name || m.Rcode == dns.RcodeNameError {
			ans.records, ans.nxdomain = records, m.Rcode == dns.RcodeNameError
			return ans, nil
		}
		name = strings.ToLower(end)
	}
}

// walk follows the CNAME chain from name through rrs and returns the
// records of qtype at its end, the name it ended at and the links taken.
// It stops after maxCNAME+1 links, so a loop ends.
func walk(rrs []dns.RR, name string, qtype uint16) ([]dns.RR, string, int) {
	links := 0
	for ; links <= maxCNAME; links++ {
		if found := owned(rrs, name, qtype); len(found) > 0 {
			return found, name, links
		}
		cname := owned(rrs, name, dns.TypeCNAME)
		if len(cname) == 0 {
			break
		}
		name = cname[0].(*dns.CNAME).Target
	}
	return nil, name, links
}

// owned returns the records of rrs with owner name and type qtype.
func owned(rrs []dns.RR, name string, qtype uint16) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		h := rr.Header()
		if h.Rrtype == qtype && strings.EqualFold(h.Name, name) {
			out = append(out, rr)
		}
	}
	return out
}

// normalize returns name lower-case, without a trailing dot and in ASCII
// (IDNA A-labels for a name with non-ASCII characters).
func normalize(name string) (string, error) {
	name = strings.TrimSuffix(name, ".")
	if !utf8.ValidString(name) {
		return "", ErrInvalidName
	}
	if !isASCII(name) {
		ascii, err := idna.Lookup.ToASCII(name)
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrInvalidName, err)
		}
		name = ascii
	}
	if _, ok := dns.IsDomainName(name); !ok || name == "" {
		return "", ErrInvalidName
	}
	return strings.ToLower(name), nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
