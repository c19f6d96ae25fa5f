package submission

import (
	"strings"
	"testing"
)

// Reconfigure: a user added by a reload may authenticate in the next
// session, a removed one may not; a new certificate is presented by the
// next handshake, and a session in progress keeps working.
func TestReconfigureUsersAndCertificate(t *testing.T) {
	pki, pki2 := newTestPKI(t), newTestPKI(t)
	cfg := authConfig(t, pki)
	h := start(t, cfg)
	old, _ := h.tlsSession(pki, "127.0.0.1")

	cfg2 := authConfig(t, pki2)
	cfg2.Users = map[string]string{"carol": hashPassword(t, "s3cret")} // alice and bob are gone
	h.srv.Reconfigure(cfg2)

	if r := old.cmd("NOOP"); !strings.HasPrefix(r, "250") {
		t.Errorf("session from before the reload: NOOP %q", r)
	}
	c, _ := h.tlsSession(pki2, "127.0.0.1") // only pki2's CA verifies the new certificate
	if r := c.cmd(plain("", "carol", "s3cret")); !strings.HasPrefix(r, "235 ") {
		t.Errorf("AUTH as the added user: %q, want 235", r)
	}
	c2, _ := h.tlsSession(pki2, "127.0.0.1")
	if r := c2.cmd(plain("", "alice", "secret")); !strings.HasPrefix(r, "535 ") {
		t.Errorf("AUTH as a removed user: %q, want 535", r)
	}
}
