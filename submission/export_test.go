package submission

import (
	"errors"
	"net/netip"
	"testing"
)

// The wrappers must behave as the functions they stand for.
func TestExportedHelpers(t *testing.T) {
	if got, err := CheckAddress("a b@example.com", false); err != nil || got != `"a b"@example.com` {
		t.Errorf("CheckAddress = %q, %v", got, err)
	}
	if _, err := CheckAddress("nodomain", true); !errors.Is(err, ErrAddressSyntax) {
		t.Errorf("CheckAddress(nodomain) = %v, want ErrAddressSyntax", err)
	}
	if got := RcptKey("Bob@Example.COM"); got != "Bob@example.com" {
		t.Errorf("RcptKey = %q", got)
	}
	if got := string(NormalizeEOL([]byte("X: y\r\n\na\rb\n"))); got != "X: y\r\n\r\na\r\nb\r\n" {
		t.Errorf("NormalizeEOL = %q", got)
	}
	b := []byte("a\r\n")
	if got := NormalizeEOL(b); &got[0] != &b[0] {
		t.Error("NormalizeEOL copied a clean buffer")
	}
	if got := AddressLiteral(netip.MustParseAddr("2001:db8::1")); got != "[IPv6:2001:db8::1]" {
		t.Errorf("AddressLiteral = %q", got)
	}
}
