package submission

import "net/netip"

// The helpers below are exported for package inject, which admits mail
// posted over HTTP by the same rules as SMTP submission. They are thin
// wrappers: the behaviour is documented, and tested, on the unexported
// functions they call.

// ErrAddressSyntax is the error of CheckAddress for a malformed address.
var ErrAddressSyntax = errAddrSyntax

// CheckAddress validates a mailbox given without brackets, its local part
// unquoted (as go-smtp hands it over), and returns it in the canonical
// form of RFC 5321 4.1.2; see checkAddress. Non-ASCII needs utf8
// (SMTPUTF8).
func CheckAddress(addr string, utf8 bool) (string, error) { return checkAddress(addr, utf8) }

// RcptKey identifies a recipient for duplicate detection: the same
// address with its domain in another case is the same recipient.
func RcptKey(addr string) string { return rcptKey(addr) }

// NormalizeEOL rewrites every bare LF and bare CR in b as CRLF, the SMTP
// smuggling defence of normalizeEOL; it returns b itself when there is
// nothing to rewrite. Bytes other than CR and LF are copied as they are,
// so a prefix that is already CRLF-clean (a Received header) stays put.
func NormalizeEOL(b []byte) []byte { return normalizeEOL(b) }

// AddressLiteral renders ip as the address literal of a Received header:
// [192.0.2.1], [IPv6:2001:db8::1], or "unknown" for the zero Addr.
func AddressLiteral(ip netip.Addr) string { return addressLiteral(ip) }
