package submission

import (
	"errors"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-smtp"
)

var (
	errAddrSyntax = errors.New("bad address syntax")
	errAddrUTF8   = errors.New("non-ASCII address without SMTPUTF8")
)

// Limits of RFC 5321 4.5.3.1.
const (
	maxLocalPart = 64
	maxDomain    = 255
	maxLabel     = 63
)

// addressError maps a check error to its reply.
func addressError(err error, syntax *smtp.SMTPError) *smtp.SMTPError {
	if errors.Is(err, errAddrUTF8) {
		return errNeedsUTF8
	}
	return syntax
}

// checkReversePath is checkAddress that also allows the null reverse-path.
func checkReversePath(addr string, utf8 bool) (string, error) {
	if addr == "" {
		return "", nil
	}
	return checkAddress(addr, utf8)
}

// checkAddress validates a mailbox as go-smtp hands it over (brackets and
// source route gone, a quoted local part unquoted) and returns it in the
// canonical form of RFC 5321 4.1.2: the local part as a dot-string when it
// is one, else quoted. Non-ASCII needs SMTPUTF8 (RFC 6531). An address with
// more than one "@" is refused: go-smtp's unquoting makes "a@b"@c and
// a@b@c the same string.
func checkAddress(addr string, utf8OK bool) (string, error) {
	if !utf8OK && !isASCII(addr) {
		return "", errAddrUTF8
	}
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || strings.Contains(domain, "@") || !validDomain(domain, utf8OK) {
		return "", errAddrSyntax
	}
	local, ok = canonicalLocal(local)
	if !ok {
		return "", errAddrSyntax
	}
	return local + "@" + domain, nil
}

// rcptKey identifies a recipient for duplicate detection: the local part is
// case-sensitive (RFC 5321 2.4), the domain is not.
func rcptKey(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	return addr[:i+1] + strings.ToLower(addr[i+1:])
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// canonicalLocal returns l as a dot-string if it is one, else as a
// quoted-string (RFC 5321 4.1.2, RFC 6531 3.3 for UTF-8).
func canonicalLocal(l string) (string, bool) {
	if l == "" || len(l) > maxLocalPart || !utf8.ValidString(l) {
		return "", false
	}
	if isDotString(l) {
		return l, true
	}
	return quoteLocal(l)
}

func isDotString(l string) bool {
	for _, atom := range strings.Split(l, ".") {
		if atom == "" || strings.IndexFunc(atom, notAtext) >= 0 {
			return false
		}
	}
	return true
}

func notAtext(r rune) bool {
	switch {
	case r >= utf8.RuneSelf:
		return !unicode.IsGraphic(r)
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return false
	}
	return !strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r)
}

// quoteLocal quotes l: qtextSMTP, with quoted-pairSMTP for '"' and '\'.
func quoteLocal(l string) (string, bool) {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range l {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
		case r < ' ' || r == 0x7f || (r >= utf8.RuneSelf && !unicode.IsGraphic(r)):
			return "", false
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String(), true
}

// validDomain reports whether d is a Domain or an address-literal of
// RFC 5321 4.1.2. With utf8OK a label may be a U-label (checked loosely:
// letters, marks, digits and hyphens). The top-level label may not be all
// digits (RFC 3696 2), so a bare IP address is not a domain.
func validDomain(d string, utf8OK bool) bool {
	if strings.HasPrefix(d, "[") {
		return validAddressLiteral(d)
	}
	if d == "" || len(d) > maxDomain || !utf8.ValidString(d) {
		return false
	}
	labels := strings.Split(d, ".")
	for _, l := range labels {
		if !validLabel(l, utf8OK) {
			return false
		}
	}
	return strings.IndexFunc(labels[len(labels)-1], notDigit) >= 0
}

func validLabel(l string, utf8OK bool) bool {
	if l == "" || len(l) > maxLabel || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for _, r := range l {
		ldh := r == '-' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
		uLabel := utf8OK && r >= utf8.RuneSelf && unicode.In(r, unicode.L, unicode.M, unicode.N)
		if !ldh && !uLabel {
			return false
		}
	}
	return true
}

func notDigit(r rune) bool { return r < '0' || r > '9' }

// validAddressLiteral accepts [IPv4] and [IPv6:addr] (RFC 5321 4.1.3); the
// General-address-literal has no use here.
func validAddressLiteral(d string) bool {
	inner, ok := strings.CutSuffix(strings.TrimPrefix(d, "["), "]")
	if !ok {
		return false
	}
	if len(inner) > 5 && strings.EqualFold(inner[:5], "IPv6:") {
		ip, err := netip.ParseAddr(inner[5:])
		return err == nil && ip.Is6() && ip.Zone() == ""
	}
	ip, err := netip.ParseAddr(inner)
	return err == nil && ip.Is4()
}
