package submission

import (
	"context"
	"encoding/base64"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"
)

const (
	replyAuthOK      = "235 2.7.0 Authentication successful"
	replyAuthInvalid = "535 5.7.8 Authentication credentials invalid"
	replyAuthLocked  = "454 4.7.0 Too many authentication failures, try again later"
	replyAuthNeedTLS = "538 5.7.11 Encryption required for requested authentication mechanism"
)

func hashPassword(t *testing.T, pass string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// authConfig is pki's TLS config with loopback untrusted and two users,
// alice (password "secret") and bob ("hunter2"), a short failure delay
// and a lockout that the tests that do not test it do not reach.
func authConfig(t *testing.T, pki *testPKI) Config {
	cfg := untrustedConfig()
	cfg.TLSConfig = pki.server
	cfg.Users = map[string]string{"alice": hashPassword(t, "secret"), "bob": hashPassword(t, "hunter2")}
	cfg.AuthFailDelay = 10 * time.Millisecond
	cfg.AuthLockout = AuthLockout{Failures: 100, Window: time.Hour, Duration: time.Hour}
	return cfg
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func plain(identity, user, pass string) string {
	return "AUTH PLAIN " + b64(identity+"\x00"+user+"\x00"+pass)
}

// tlsSession dials h from ip, runs STARTTLS and says EHLO again; it
// returns the client and the EHLO reply over TLS.
func (h *harness) tlsSession(pki *testPKI, ip string) (*rawClient, string) {
	h.t.Helper()
	c := h.rawFrom(ip, true)
	c.startTLS(pki.client, "")
	return c, c.expect("EHLO client.test", "250-")
}

const authLine = "\n250-AUTH PLAIN LOGIN\n"

// TestAuthInClear: AUTH is neither offered nor taken in clear, on a
// server that offers it over TLS.
func TestAuthInClear(t *testing.T) {
	pki := newTestPKI(t)
	h := start(t, authConfig(t, pki))
	c := h.raw(false)
	if ehlo := c.cmd("EHLO client.test"); strings.Contains(ehlo, "AUTH") {
		t.Errorf("AUTH offered in clear: %q", ehlo)
	}
	for _, cmd := range []string{plain("", "alice", "secret"), "AUTH LOGIN", "AUTH LOGIN " + b64("alice")} {
		if r := c.cmd(cmd); r != replyAuthNeedTLS {
			t.Errorf("%q in clear: %q, want %q", cmd, r, replyAuthNeedTLS)
		}
	}
	c.expect("MAIL FROM:<a@sender.example>", "250 ")
	c.expect("RCPT TO:<b@remote.example>", "554 5.7.1 ")
	if !strings.Contains(h.logs.String(), "relay denied") {
		t.Error("no relay denied in the log")
	}
}

// TestAuthOffered: TLS sessions offer AUTH PLAIN LOGIN, whether after
// STARTTLS or on implicit TLS, when there are users; never without users.
func TestAuthOffered(t *testing.T) {
	pki := newTestPKI(t)
	t.Run("after STARTTLS", func(t *testing.T) {
		h := start(t, authConfig(t, pki))
		if _, ehlo := h.tlsSession(pki, "127.0.0.1"); !strings.Contains(ehlo, authLine) {
			t.Errorf("EHLO %q does not offer AUTH PLAIN LOGIN", ehlo)
		}
	})
	t.Run("implicit TLS", func(t *testing.T) {
		h := start(t, authConfig(t, pki))
		if ehlo := h.rawTLS(h.serveTLS(), pki.client, false).cmd("EHLO client.test"); !strings.Contains(ehlo, authLine) {
			t.Errorf("EHLO %q does not offer AUTH PLAIN LOGIN", ehlo)
		}
	})
	t.Run("no users", func(t *testing.T) {
		h := start(t, pki.tlsConfig())
		c, ehlo := h.tlsSession(pki, "127.0.0.1")
		if strings.Contains(ehlo, "AUTH") {
			t.Errorf("AUTH offered without users: %q", ehlo)
		}
		c.expect(plain("", "alice", "secret"), "502 5.7.0 ")
	})
	t.Run("only invalid users", func(t *testing.T) {
		cfg := pki.tlsConfig()
		cfg.Users = map[string]string{"alice": "secret", "": hashPassword(t, "x")}
		h := start(t, cfg)
		if _, ehlo := h.tlsSession(pki, "127.0.0.1"); strings.Contains(ehlo, "AUTH") {
			t.Errorf("AUTH offered without valid users: %q", ehlo)
		}
	})
}

// TestAuthPlainRelay: a client outside TrustedNetworks may not relay;
// after AUTH PLAIN over STARTTLS with go-smtp's client it may, and its
// message says so.
func TestAuthPlainRelay(t *testing.T) {
	pki := newTestPKI(t)
	h := start(t, authConfig(t, pki))
	conn, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := smtp.NewClientStartTLS(conn, pki.client)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("a@sender.example", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("b@remote.example", nil); !isCode(err, 554) {
		t.Fatalf("RCPT before AUTH: %v, want 554", err)
	}
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "alice", "secret")); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	if err := c.Mail("a@sender.example", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("b@remote.example", nil); err != nil {
		t.Fatalf("RCPT after AUTH: %v", err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "Subject: relayed\r\n\r\nx\r\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	msg := checkAccepted(t, h, 1)[0]
	if msg.env.Source != "authenticated" || msg.env.Rcpts[0].Addr != "b@remote.example" {
		t.Errorf("envelope %+v", msg.env)
	}
	checkProto(t, msg, "ESMTPSA")
	logs := h.logs.String()
	if !strings.Contains(logs, `msg="auth succeeded" remote_ip=127.0.0.1 user=alice mechanism=PLAIN`) {
		t.Errorf("no success in the log:\n%s", logs)
	}
	if strings.Contains(logs, "secret") {
		t.Error("the password is in the log")
	}
}

func isCode(err error, code int) bool {
	se, ok := err.(*smtp.SMTPError)
	return ok && se.Code == code
}

// TestAuthSuccess runs the accepted forms of AUTH, each with its exact
// replies.
func TestAuthSuccess(t *testing.T) {
	pki := newTestPKI(t)
	tests := []struct {
		name  string
		steps [][2]string // command or response, reply
	}{
		{"PLAIN", [][2]string{{plain("", "alice", "secret"), replyAuthOK}}},
		{"PLAIN with identity", [][2]string{{plain("alice", "alice", "secret"), replyAuthOK}}},
		{"PLAIN without initial response", [][2]string{
			{"AUTH PLAIN", "334 "},
			{b64("\x00bob\x00hunter2"), replyAuthOK},
		}},
		{"LOGIN", [][2]string{
			{"AUTH LOGIN", "334 " + b64("Username:")},
			{b64("alice"), "334 " + b64("Password:")},
			{b64("secret"), replyAuthOK},
		}},
		{"LOGIN with initial response", [][2]string{
			{"AUTH LOGIN " + b64("bob"), "334 " + b64("Password:")},
			{b64("hunter2"), replyAuthOK},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, authConfig(t, pki))
			c, _ := h.tlsSession(pki, "127.0.0.1")
			for _, s := range tt.steps {
				if r := c.cmd(s[0]); r != s[1] {
					t.Fatalf("%q: %q, want %q", s[0], r, s[1])
				}
			}
			if r := c.transaction("a@sender.example", []string{"b@remote.example"}, "x\r\n"); !strings.HasPrefix(r, "250 ") {
				t.Fatalf("DATA: %q", r)
			}
			if env := checkAccepted(t, h, 1)[0].env; env.Source != "authenticated" {
				t.Errorf("Source %q", env.Source)
			}
		})
	}
}

// TestAuthLoginClient: go-smtp's LOGIN client (initial response, then
// "Password:") gets through.
func TestAuthLoginClient(t *testing.T) {
	pki := newTestPKI(t)
	h := start(t, authConfig(t, pki))
	c, err := smtp.DialTLS(h.serveTLS(), pki.client)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewLoginClient("alice", "secret")); err != nil {
		t.Fatalf("AUTH LOGIN: %v", err)
	}
	if !strings.Contains(h.logs.String(), "user=alice mechanism=LOGIN") {
		t.Error("no LOGIN success in the log")
	}
}

// TestAuthFailure: wrong passwords and unknown users get 535 5.7.8 (the
// delay is not measured), the session is not authenticated, and it may
// try again.
func TestAuthFailure(t *testing.T) {
	pki := newTestPKI(t)
	long := strings.Repeat("s", maxPasswordLen)
	tests := []struct {
		name  string
		steps [][2]string
	}{
		{"PLAIN wrong password", [][2]string{{plain("", "alice", "hunter2"), replyAuthInvalid}}},
		{"PLAIN unknown user", [][2]string{{plain("", "mallory", "secret"), replyAuthInvalid}}},
		{"PLAIN user name case", [][2]string{{plain("", "Alice", "secret"), replyAuthInvalid}}},
		{"PLAIN empty password", [][2]string{{plain("", "alice", ""), replyAuthInvalid}}},
		{"PLAIN other identity", [][2]string{{plain("bob", "alice", "secret"), replyAuthInvalid}}},
		{"PLAIN beyond 72 bytes", [][2]string{{plain("", "carol", long+"x"), replyAuthInvalid}}},
		{"LOGIN wrong password", [][2]string{
			{"AUTH LOGIN", "334 " + b64("Username:")},
			{b64("alice"), "334 " + b64("Password:")},
			{b64("Secret"), replyAuthInvalid},
		}},
		{"LOGIN unknown user", [][2]string{
			{"AUTH LOGIN " + b64("mallory"), "334 " + b64("Password:")},
			{b64("secret"), replyAuthInvalid},
		}},
		{"PLAIN malformed", [][2]string{{"AUTH PLAIN " + b64("alice secret"), "501 5.5.2 Malformed authentication response"}}},
		{"unknown mechanism", [][2]string{{"AUTH CRAM-MD5", "504 5.7.4 "}}},
		{"cancelled", [][2]string{{"AUTH LOGIN", "334 "}, {"*", "501 "}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := authConfig(t, pki)
			cfg.Users["carol"] = hashPassword(t, long)
			h := start(t, cfg)
			c, _ := h.tlsSession(pki, "127.0.0.1")
			for _, s := range tt.steps {
				if r := c.cmd(s[0]); !strings.HasPrefix(r, s[1]) {
					t.Fatalf("%q: %q, want %q", s[0], r, s[1])
				}
			}
			c.expect("MAIL FROM:<a@sender.example>", "250 ")
			c.expect("RCPT TO:<b@remote.example>", "554 5.7.1 ")
			c.expect("RSET", "250 ")
			c.expect(plain("", "alice", "secret"), replyAuthOK)
		})
	}
}

// TestAuthFailureLog: a failure is logged with the user, never the
// password.
func TestAuthFailureLog(t *testing.T) {
	pki := newTestPKI(t)
	h := start(t, authConfig(t, pki))
	c, _ := h.tlsSession(pki, "127.0.0.1")
	c.expect(plain("", "mallory", "letmein"), replyAuthInvalid)
	logs := h.logs.String()
	if !strings.Contains(logs, `msg="auth failed" remote_ip=127.0.0.1 user=mallory mechanism=PLAIN locked_out=false`) {
		t.Errorf("no failure in the log:\n%s", logs)
	}
	if strings.Contains(logs, "letmein") {
		t.Error("the password is in the log")
	}
}

// TestAuthLockout: after Failures failures an address is refused AUTH,
// even with the right password, on the session that failed and on new
// ones; another address is not.
func TestAuthLockout(t *testing.T) {
	pki := newTestPKI(t)
	cfg := authConfig(t, pki)
	cfg.AuthLockout = AuthLockout{Failures: 3, Window: time.Hour, Duration: time.Hour}
	h := start(t, cfg)
	c, _ := h.tlsSession(pki, "127.0.0.1")
	c.expect(plain("", "alice", "wrong1"), replyAuthInvalid)
	c.expect(plain("", "mallory", "wrong2"), replyAuthInvalid)
	c2, _ := h.tlsSession(pki, "127.0.0.1")
	c2.expect(plain("", "bob", "wrong3"), replyAuthInvalid) // the third, on another connection
	c.expect(plain("", "alice", "secret"), replyAuthLocked)
	c.expect("AUTH LOGIN", replyAuthLocked)
	c.expect("MAIL FROM:<a@sender.example>", "250 ")
	c.expect("RCPT TO:<b@remote.example>", "554 5.7.1 ")

	c3, _ := h.tlsSession(pki, "127.0.0.1")
	c3.expect(plain("", "bob", "hunter2"), replyAuthLocked)

	other, _ := h.tlsSession(pki, "127.0.0.2")
	other.expect(plain("", "alice", "secret"), replyAuthOK)

	logs := h.logs.String()
	if !strings.Contains(logs, "user=bob mechanism=PLAIN locked_out=true") || !strings.Contains(logs, "auth refused: too many failures") {
		t.Errorf("no lockout in the log:\n%s", logs)
	}
}

// TestAuthAgain: AUTH after AUTH, or inside a transaction, is 503.
func TestAuthAgain(t *testing.T) {
	pki := newTestPKI(t)
	h := start(t, authConfig(t, pki))
	c, _ := h.tlsSession(pki, "127.0.0.1")
	c.expect(plain("", "alice", "secret"), replyAuthOK)
	c.expect(plain("", "bob", "hunter2"), "503 5.5.1 Already authenticated")
	c.expect("RSET", "250 ")
	c.expect("AUTH LOGIN", "503 5.5.1 Already authenticated")

	c2, _ := h.tlsSession(pki, "127.0.0.1")
	c2.expect("MAIL FROM:<a@sender.example>", "250 ")
	c2.expect(plain("", "alice", "secret"), "503 5.5.1 AUTH not permitted during a mail transaction")
	c2.expect("RSET", "250 ")
	c2.expect(plain("", "alice", "secret"), replyAuthOK)
}

// TestAuthImplicitTLS: AUTH on an implicit TLS listener lets the client
// relay.
func TestAuthImplicitTLS(t *testing.T) {
	pki := newTestPKI(t)
	h := start(t, authConfig(t, pki))
	c := h.rawTLS(h.serveTLS(), pki.client, true)
	c.expect(plain("", "bob", "hunter2"), replyAuthOK)
	if r := c.transaction("a@sender.example", []string{"b@remote.example"}, "x\r\n"); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("DATA: %q", r)
	}
	msg := checkAccepted(t, h, 1)[0]
	if msg.env.Source != "authenticated" {
		t.Errorf("Source %q", msg.env.Source)
	}
	checkProto(t, msg, "ESMTPSA")
}

// TestAuthDelayShutdown: Shutdown does not wait out the delay of a failed
// AUTH: the connection closes and Shutdown returns at once.
func TestAuthDelayShutdown(t *testing.T) {
	pki := newTestPKI(t)
	cfg := authConfig(t, pki)
	cfg.AuthFailDelay = 10 * waitFor
	h := start(t, cfg)
	c, _ := h.tlsSession(pki, "127.0.0.1")
	c.send(plain("", "alice", "wrong") + "\r\n")
	deadline := time.Now().Add(waitFor)
	for !strings.Contains(h.logs.String(), "auth failed") {
		if time.Now().After(deadline) {
			t.Fatal("AUTH did not fail")
		}
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitFor)
	defer cancel()
	if err := waitErr(t, shutdownAsync(h.srv, ctx)); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if got := c.closed(); len(got) < 1 || got[0] != bye {
		t.Errorf("read %q, want %q then close", got, bye)
	}
}

func TestValidateUsers(t *testing.T) {
	good := hashPassword(t, "secret")
	tests := []struct {
		name  string
		users map[string]string
		err   string // "" for none, else a part of the error
	}{
		{"none", nil, ""},
		{"bcrypt", map[string]string{"alice": good, "bob": strings.Replace(good, "$2a$", "$2b$", 1)}, ""},
		{"empty name", map[string]string{"": good}, "empty name"},
		{"clear text", map[string]string{"alice": "secret"}, `user "alice": password hash is not bcrypt`},
		{"truncated", map[string]string{"alice": good[:20]}, `user "alice"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateUsers(tt.users)
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("error %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("error %v, want one with %q", err, tt.err)
			case err != nil && strings.Contains(err.Error(), "secret"):
				t.Errorf("error %v shows the hash", err)
			}
		})
	}
}

// TestVerifyLongPassword: bcrypt ignores what goes beyond 72 bytes, verify
// does not.
func TestVerifyLongPassword(t *testing.T) {
	long := strings.Repeat("s", maxPasswordLen)
	cfg := Config{Users: map[string]string{"carol": hashPassword(t, long)}, AuthLockout: DefaultAuthLockout}
	a := newAuthenticator(cfg, nil)
	if err := bcrypt.CompareHashAndPassword(a.users.Load().hashes["carol"], []byte(long+"x")); err != nil {
		t.Fatalf("bcrypt no longer ignores the tail (%v): this test is moot", err)
	}
	if !a.verify("carol", long) || a.verify("carol", long+"x") {
		t.Errorf("verify %d bytes %v, %d bytes %v; want true, false", len(long), a.verify("carol", long), len(long)+1, a.verify("carol", long+"x"))
	}
	if a.verify("nobody", long) {
		t.Error("unknown user verified")
	}
}

// TestDummyHashCost: an unknown user's password is checked at the highest
// cost among the users, so it takes as long as a known user's.
func TestDummyHashCost(t *testing.T) {
	h5, err := bcrypt.GenerateFromPassword([]byte("x"), bcrypt.MinCost+1)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Users: map[string]string{"a": hashPassword(t, "x"), "b": string(h5)}}
	a := newAuthenticator(cfg, nil)
	if c, err := bcrypt.Cost(a.users.Load().dummy); err != nil || c != bcrypt.MinCost+1 {
		t.Errorf("dummy cost %d, %v; want %d", c, err, bcrypt.MinCost+1)
	}
}
