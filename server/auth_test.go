package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"github.com/mtad/mtad/internal/testpki"
	"github.com/mtad/mtad/internal/testsink"
)

// An authenticated user relays from an untrusted address; a wrong password
// gets 535 5.7.8.
func TestSubmissionAuth(t *testing.T) {
	ca := testpki.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePEM(t, certFile, keyFile, ca.Issue("mtad.test"))
	hash, err := bcrypt.GenerateFromPassword([]byte("pa55word"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	sink := testsink.Start(t)
	s, dir := startNode(t, relayConfig(sink.Addr, "1s")+fmt.Sprintf(`
[server.tls]
certificate = %q
private-key = %q
[session]
trusted-networks = ["10.99.0.0/16"]
[session.auth]
users = { "app" = %q }
fail-delay = "10ms"
`, certFile, keyFile, hash))
	dial := func() *smtp.Client {
		c, err := smtp.DialStartTLS(s.Addrs()[0].String(), &tls.Config{RootCAs: ca.Pool, ServerName: "mtad.test"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	err = dial().Auth(sasl.NewPlainClient("", "app", "wrong"))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 535 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 8}) {
		t.Errorf("wrong password: %v, want 535 5.7.8", err)
	}
	c := dial()
	if err := c.Auth(sasl.NewPlainClient("", "app", "pa55word")); err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail("app@sender.test", []string{"r@remote.test"}, strings.NewReader(message("auth"))); err != nil {
		t.Fatalf("relaying after AUTH: %v", err)
	}
	waitFor(t, "delivery", 10*time.Second, func() bool { return eventFor(events(t, dir), "delivered", "r@remote.test") != nil })
	if tx := txTo(sink, "r@remote.test"); tx == nil || !strings.Contains(string(tx.Data), "ESMTPSA") {
		t.Errorf("Received does not say ESMTPSA: %+v", tx)
	}
}
