package tlsrpt

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strings"
)

// Errors of ParseTXT, reached with errors.Is. ErrNoRecord and
// ErrMultipleRecords both mean the domain does not do TLSRPT.
var (
	ErrNoRecord        = errors.New("tlsrpt: no TLSRPT record")
	ErrMultipleRecords = errors.New("tlsrpt: more than one TLSRPT record")
	ErrSyntax          = errors.New("tlsrpt: bad TLSRPT record")
)

const version = "v=TLSRPTv1"

// ParseTXT parses the TXT records at _smtp._tls.<domain> (RFC 8460
// section 3) and returns the rua URIs of the one TLSRPT record among them,
// each a mailto: or https: URI as written. Records that do not start with
// "v=TLSRPTv1" and a field delimiter are discarded (ErrNoRecord when none
// is left, ErrMultipleRecords when more than one is). The record must have
// exactly one rua field with at least one URI; other fields are ignored
// when they are name=value pairs.
func ParseTXT(records []string) (rua []string, err error) {
	var found []string
	var other string
	for _, r := range records {
		if rest, ok := strings.CutPrefix(r, version); ok && (rest == "" || strings.HasPrefix(trimWSP(rest), ";")) {
			found = append(found, rest)
		} else if strings.HasPrefix(r, "v=") {
			other = r
		}
	}
	switch {
	case len(found) > 1:
		return nil, ErrMultipleRecords
	case len(found) == 0 && other != "":
		v, _, _ := strings.Cut(other, ";")
		return nil, fmt.Errorf("%w: version %q", ErrNoRecord, trimWSP(v))
	case len(found) == 0:
		return nil, ErrNoRecord
	}
	return parseFields(found[0])
}

// parseFields parses what follows the version: *(field-delim field)
// [field-delim], field-delim = *WSP ";" *WSP.
func parseFields(rest string) ([]string, error) {
	var rua []string
	seen := false
	for i, f := range strings.Split(rest, ";") {
		f = trimWSP(f)
		if i == 0 || f == "" {
			continue // before the first delimiter; an empty or trailing field
		}
		name, value, ok := strings.Cut(f, "=")
		if !ok || !extName(name) || value == "" {
			return nil, fmt.Errorf("%w: field %q is not name=value", ErrSyntax, f)
		}
		if name != "rua" {
			continue // an extension (RFC 8460 section 3: unknown fields are ignored)
		}
		if seen {
			return nil, fmt.Errorf("%w: more than one rua field", ErrSyntax)
		}
		seen = true
		var err error
		if rua, err = parseRUA(value); err != nil {
			return nil, err
		}
	}
	if !seen {
		return nil, fmt.Errorf("%w: no rua field", ErrSyntax)
	}
	return rua, nil
}

// parseRUA parses tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri).
func parseRUA(value string) ([]string, error) {
	var rua []string
	for u := range strings.SplitSeq(value, ",") {
		u = trimWSP(u)
		if err := checkURI(u); err != nil {
			return nil, err
		}
		rua = append(rua, u)
	}
	return rua, nil
}

// checkURI accepts a mailto: URI with at least one address and an https:
// URI with a host: the two the RFC defines (section 3).
func checkURI(u string) error {
	for i := 0; i < len(u); i++ {
		if u[i] <= ' ' || u[i] >= 0x7f {
			return fmt.Errorf("%w: rua %q has a space, control or non-ASCII character", ErrSyntax, u)
		}
	}
	p, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("%w: rua %q: %w", ErrSyntax, u, err)
	}
	switch strings.ToLower(p.Scheme) {
	case "mailto":
		if _, err := mailtoAddrs(p); err != nil {
			return fmt.Errorf("%w: rua %q: %w", ErrSyntax, u, err)
		}
	case "https":
		if p.Host == "" || p.Opaque != "" || p.User != nil {
			return fmt.Errorf("%w: rua %q is not an https URL with a host", ErrSyntax, u)
		}
	default:
		return fmt.Errorf("%w: rua %q is neither mailto: nor https:", ErrSyntax, u)
	}
	return nil
}

// mailtoAddrs returns the addresses of a mailto: URI (RFC 6068 section 2:
// percent-encoded, separated by commas), each with a local part and a
// domain, in ASCII; header fields after "?" are ignored.
func mailtoAddrs(p *url.URL) ([]string, error) {
	to, err := url.PathUnescape(p.Opaque)
	if err != nil {
		return nil, err
	}
	var addrs []string
	for a := range strings.SplitSeq(to, ",") {
		parsed, err := mail.ParseAddress(a)
		if err != nil || parsed.Address != a || !isASCII(a) {
			return nil, fmt.Errorf("%q is not an address", a)
		}
		addrs = append(addrs, a)
	}
	return addrs, nil
}

// extName matches tlsrpt-ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT /
// "_" / "-" / "."), which rua also matches.
func extName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '-' && c != '.') {
			return false
		}
	}
	return true
}

func trimWSP(s string) string { return strings.Trim(s, " \t") }
