package outbound

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mtad/mtad/internal/testpki"
	"github.com/mtad/mtad/messages"
)

// testCA is the test certificate authority of internal/testpki, with the
// names these tests use.
type testCA struct {
	pki   *testpki.CA
	roots *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	ca := testpki.NewCA(t)
	return &testCA{pki: ca, roots: ca.Pool}
}

// issue makes a server certificate for names, DNS names or IP addresses.
func (ca *testCA) issue(t *testing.T, names ...string) tls.Certificate {
	t.Helper()
	return ca.pki.Issue(names...)
}

// tlsFixture holds the certificates of the STARTTLS tests: mx is signed
// by ca for "mx.test", other by ca for "other.test", and self is
// self-signed for "mx.test" and trusted by no one here.
type tlsFixture struct {
	ca                *testCA
	mx, other, self   tls.Certificate
	mxIP              tls.Certificate // signed by ca for 127.0.0.1
	trusted, insecure *tls.Config
}

func newTLSFixture(t *testing.T) *tlsFixture {
	ca := newTestCA(t)
	self, _ := testCert(t, "mx.test")
	return &tlsFixture{ca: ca, mx: ca.issue(t, "mx.test"), other: ca.issue(t, "other.test"),
		self: self, mxIP: ca.issue(t, "127.0.0.1"),
		trusted: &tls.Config{RootCAs: ca.roots}, insecure: &tls.Config{InsecureSkipVerify: true}}
}

// serving sets a STARTTLS sink up with cert (none: no STARTTLS).
func serving(cert *tls.Certificate, more ...func(*smtp.Server)) func(*smtp.Server) {
	return func(srv *smtp.Server) {
		if cert != nil {
			srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}}
		}
		for _, f := range more {
			f(srv)
		}
	}
}

func requireTLSServer(srv *smtp.Server) { srv.EnableREQUIRETLS = true }

// mx is the sink's target under the name its certificate has.
func mx(s *sink) Target { t := s.target; t.Host = "mx.test"; return t }

func tlsOpts(mode TLSMode, cfg *tls.Config) Options {
	opts := testOpts()
	opts.STARTTLS, opts.TLSConfig = mode, cfg
	return opts
}

// transcript returns the lines the sink read and wrote, TLS or not.
func (s *sink) transcript() []string {
	return strings.Split(s.debug.String(), "\r\n")
}

func (s *sink) sawSTARTTLS() bool { return slices.Contains(s.transcript(), "STARTTLS") }

func TestSTARTTLS(t *testing.T) {
	fx := newTLSFixture(t)
	approve := func(st tls.ConnectionState) error {
		if len(st.PeerCertificates) == 0 || st.PeerCertificates[0].Subject.CommonName != "mx.test" {
			return errors.New("not the certificate served")
		}
		return nil
	}
	tests := []struct {
		name       string
		cert       *tls.Certificate
		mode       TLSMode
		cfg        *tls.Config
		verify     func(tls.ConnectionState) error
		noHost     bool // target without a host name: verified against its IP
		wantTLS    bool
		verified   bool
		serverName string
	}{
		{name: "optional, offered", cert: &fx.mx, cfg: fx.trusted, wantTLS: true, verified: true, serverName: "mx.test"},
		{name: "optional, not offered", cfg: fx.trusted},
		{name: "require, offered", cert: &fx.mx, mode: TLSRequire, cfg: fx.trusted, wantTLS: true, verified: true, serverName: "mx.test"},
		{name: "disable, offered", cert: &fx.mx, mode: TLSDisable, cfg: fx.trusted},
		{name: "insecure, VerifyPeer approves", cert: &fx.self, cfg: fx.insecure, verify: approve,
			wantTLS: true, verified: true, serverName: "mx.test"},
		{name: "insecure, no VerifyPeer", cert: &fx.self, cfg: fx.insecure, wantTLS: true, serverName: "mx.test"},
		{name: "verified, and VerifyPeer approves", cert: &fx.mx, cfg: fx.trusted, verify: approve,
			wantTLS: true, verified: true, serverName: "mx.test"},
		{name: "no host name, IP address verified", cert: &fx.mxIP, cfg: fx.trusted, noHost: true,
			wantTLS: true, verified: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := starttlsSink(t, serving(tt.cert))
			opts := tlsOpts(tt.mode, tt.cfg)
			called := 0
			if tt.verify != nil {
				opts.VerifyPeer = func(st tls.ConnectionState) error { called++; return tt.verify(st) }
			}
			target := mx(s)
			if tt.noHost {
				target.Host = ""
			}
			c := dialT(t, opts, target)
			st, ok := c.TLS()
			if ok != tt.wantTLS || c.Verified() != tt.verified {
				t.Fatalf("TLS() ok = %v, Verified() = %v; want %v, %v", ok, c.Verified(), tt.wantTLS, tt.verified)
			}
			if ok && (st.Version < tls.VersionTLS12 || !st.HandshakeComplete || st.ServerName != tt.serverName) {
				t.Errorf("TLS state: version %x, complete %v, server name %q", st.Version, st.HandshakeComplete, st.ServerName)
			}
			if wantCalls := map[bool]int{true: 1}[tt.verify != nil && ok]; called != wantCalls {
				t.Errorf("VerifyPeer called %d times, want %d", called, wantCalls)
			}
			offered := tt.cert != nil
			if s.sawSTARTTLS() != (offered && tt.mode != TLSDisable) {
				t.Errorf("STARTTLS sent = %v", s.sawSTARTTLS())
			}
			// The keywords are those of the last EHLO: none after TLS.
			if hasKey(c.Extensions(), "STARTTLS") != (offered && !ok) {
				t.Errorf("extensions = %v", c.Extensions())
			}
			checkTLSDeliveries(t, s, c, ok)
		})
	}
}

// checkTLSDeliveries runs a failed transaction (RSET and EHLO follow),
// then a good one, and checks both went over TLS or not, as wantTLS says.
func checkTLSDeliveries(t *testing.T, s *sink, c *Conn, wantTLS bool) {
	t.Helper()
	s.script(func(s *sink) { s.rcptErr["no@x.test"] = e550 })
	for _, tx := range []Tx{newTx("no@x.test"), newTx("a@x.test")} {
		if _, err := c.Deliver(context.Background(), tx); err != nil {
			t.Fatal(err)
		}
	}
	txs := s.transactions()
	if len(txs) != 2 || !slices.Equal(received(txs[1]), []string{"a@x.test"}) {
		t.Fatalf("sink saw %+v", txs)
	}
	for i, tx := range txs {
		if tx.TLS != wantTLS {
			t.Errorf("transaction %d: TLS %v, want %v", i, tx.TLS, wantTLS)
		}
	}
	if _, ok := c.TLS(); ok != wantTLS || !c.Alive() {
		t.Errorf("after RSET: TLS %v, alive %v", ok, c.Alive())
	}
}

// rawTLSServer is a raw server whose EHLO reply offers STARTTLS (or, with
// ehlo, those keyword lines) and that answers STARTTLS with starttls.
func rawTLSServer(t *testing.T, ehlo, starttls string) *rawServer {
	if ehlo == "" {
		ehlo = "250-PIPELINING\r\n250 STARTTLS\r\n"
	}
	return newRawServer(t, "220 raw.test ESMTP\r\n", func(cmd string) string {
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			return "250-raw.test\r\n" + ehlo
		case strings.HasPrefix(cmd, "HELO"):
			return "250 raw.test\r\n"
		case cmd == "STARTTLS":
			return starttls
		case cmd == "QUIT":
			return "221 bye\r\n"
		}
		return ""
	})
}

func TestSTARTTLSFailure(t *testing.T) {
	fx := newTLSFixture(t)
	daneErr := &Error{Code: 550, Enhanced: "5.7.5", Class: "dane", Message: "no TLSA record matches"}
	errPolicy := errors.New("policy says no")
	type result struct {
		temporary bool
		code      int
		enhanced  string
		class     string
	}
	tempTLS := result{temporary: true, enhanced: "4.7.0", class: ClassTLS}
	tests := []struct {
		name    string
		target  dialTo
		opts    Options
		want    result
		is      error                // errors.Is, when set
		as      func(err error) bool // errors.As of what crypto/tls said, when set
		timeout bool                 // the message says it timed out
		msg     string               // in the message, when set
		cmds    []string             // what the raw server read, QUIT aside, when set
	}{{
		name:   "require, not offered",
		target: rawTLS("250 8BITMIME\r\n", ""),
		opts:   tlsOpts(TLSRequire, fx.trusted),
		want:   result{code: 550, enhanced: "5.7.10", class: ClassTLS},
		is:     ErrTLSNotOffered,
		cmds:   []string{"EHLO client.test"},
	}, {
		name: "require, HELO only",
		target: func(t *testing.T) (Target, func() []string) {
			return raw(newRawServer(t, "220 raw.test\r\n", func(cmd string) string {
				if strings.HasPrefix(cmd, "EHLO") {
					return "502 5.5.1 what\r\n"
				}
				return "250 raw.test\r\n"
			}))
		},
		opts: tlsOpts(TLSRequire, fx.trusted),
		want: result{code: 550, enhanced: "5.7.10", class: ClassTLS},
		is:   ErrTLSNotOffered,
		cmds: []string{"EHLO client.test", "HELO client.test"},
	}, {
		name:   "require, untrusted certificate",
		target: tlsSink(serving(&fx.self)),
		opts:   tlsOpts(TLSRequire, fx.trusted),
		want:   tempTLS,
		as:     func(err error) bool { var ue x509.UnknownAuthorityError; return errors.As(err, &ue) },
	}, {
		name:   "optional, untrusted certificate: no plaintext fallback",
		target: tlsSink(serving(&fx.self)),
		opts:   tlsOpts(TLSOptional, fx.trusted),
		want:   tempTLS,
		as:     func(err error) bool { var ve *tls.CertificateVerificationError; return errors.As(err, &ve) },
	}, {
		name:   "certificate for another name",
		target: tlsSink(serving(&fx.other)),
		opts:   tlsOpts(TLSOptional, fx.trusted),
		want:   tempTLS,
		as:     func(err error) bool { var he x509.HostnameError; return errors.As(err, &he) },
	}, {
		name:   "TLS 1.1 server: MinVersion raised to TLS 1.2",
		target: tlsSink(oldTLS(fx.mx)),
		opts:   tlsOpts(TLSOptional, &tls.Config{RootCAs: fx.ca.roots, MinVersion: tls.VersionTLS10}),
		want:   tempTLS,
	}, {
		name:   "VerifyPeer rejects with a permanent dane error",
		target: tlsSink(serving(&fx.self)),
		opts:   withVerify(tlsOpts(TLSOptional, fx.insecure), func(tls.ConnectionState) error { return daneErr }),
		want:   result{code: 550, enhanced: "5.7.5", class: "dane"},
	}, {
		name:   "VerifyPeer rejects with a plain error",
		target: tlsSink(serving(&fx.mx)),
		opts:   withVerify(tlsOpts(TLSRequire, fx.trusted), func(tls.ConnectionState) error { return errPolicy }),
		want:   tempTLS,
		is:     errPolicy,
	}, {
		name:   "require, STARTTLS 454",
		target: rawTLS("", "454 4.7.0 TLS not available\r\n"),
		opts:   tlsOpts(TLSRequire, fx.trusted),
		want:   result{temporary: true, code: 454, enhanced: "4.7.0", class: ClassTLS},
	}, {
		name:   "require, STARTTLS 554",
		target: rawTLS("", "554 5.7.3 no TLS for you\r\n"),
		opts:   tlsOpts(TLSRequire, fx.trusted),
		want:   result{code: 554, enhanced: "5.7.3", class: ClassTLS},
	}, {
		name:   "optional, STARTTLS 421",
		target: rawTLS("", "421 4.3.2 going down\r\n"),
		opts:   tlsOpts(TLSOptional, fx.trusted),
		want:   result{temporary: true, code: 421, enhanced: "4.3.2", class: ClassTLS},
	}, {
		name:   "optional, 250 to STARTTLS",
		target: rawTLS("", "250 sure\r\n"),
		opts:   tlsOpts(TLSOptional, fx.trusted),
		want:   tempTLS,
	}, {
		name:   "optional, data after the 220",
		target: rawTLS("", "220 2.0.0 go ahead\r\n250 2.0.0 injected\r\n"),
		opts:   tlsOpts(TLSOptional, fx.trusted),
		want:   tempTLS,
		msg:    "data after the 220 reply to STARTTLS",
	}, {
		name:    "handshake timeout",
		target:  rawTLS("", "220 2.0.0 go ahead\r\n"),
		opts:    withTLSTimeout(tlsOpts(TLSOptional, fx.trusted), 100*time.Millisecond),
		want:    tempTLS,
		timeout: true,
	}, {
		name:    "no reply to STARTTLS",
		target:  rawTLS("", ""),
		opts:    withTLSTimeout(tlsOpts(TLSRequire, fx.trusted), 100*time.Millisecond),
		want:    tempTLS,
		timeout: true,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, commands := tt.target(t)
			start := time.Now()
			c, err := Dial(context.Background(), []Target{target}, tt.opts)
			var e *Error
			if c != nil || !errors.As(err, &e) {
				t.Fatalf("Dial = %v, %v; want an *Error", c, err)
			}
			got := result{e.Temporary, e.Code, e.Enhanced, e.Class}
			if got != tt.want || e.Stage != StageSTARTTLS {
				t.Errorf("error = %+v\nwant %+v at stage starttls", e, tt.want)
			}
			if r := e.Reply(); r.Temporary() != tt.want.temporary || r.Enhanced != tt.want.enhanced || r.Class != tt.want.class {
				t.Errorf("Reply() = %+v", r)
			}
			if !strings.Contains(err.Error(), target.String()) {
				t.Errorf("error %q does not name the target", err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
			if tt.as != nil && !tt.as(err) {
				t.Errorf("error %v does not wrap what crypto/tls said", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not say %q", err, tt.msg)
			}
			if tt.timeout && (!strings.Contains(err.Error(), "timed out") || time.Since(start) > 2*time.Second) {
				t.Errorf("error %v after %v, want a timeout after 100ms", err, time.Since(start))
			}
			if tt.cmds != nil {
				// QUIT aside: Dial sends it after a failure without waiting.
				got := slices.DeleteFunc(commands(), func(c string) bool { return c == "QUIT" })
				if !slices.Equal(got, tt.cmds) {
					t.Errorf("server read %q, want %q", got, tt.cmds)
				}
			}
		})
	}
	if daneErr.Stage != "" || daneErr.Target != "" {
		t.Errorf("VerifyPeer's error was changed: %+v", daneErr)
	}
}

// oldTLS serves cert with TLS 1.0 and 1.1 only.
func oldTLS(cert tls.Certificate) func(*smtp.Server) {
	return func(srv *smtp.Server) {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert},
			MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	}
}

func withVerify(o Options, f func(tls.ConnectionState) error) Options { o.VerifyPeer = f; return o }

func withTLSTimeout(o Options, d time.Duration) Options { o.TLSTimeout = d; return o }

// dialTo starts a server and returns its target, and for a raw server what
// it read.
type dialTo func(t *testing.T) (Target, func() []string)

func raw(rs *rawServer) (Target, func() []string) { return rs.target, rs.commands }

func rawTLS(ehlo, starttls string) dialTo {
	return func(t *testing.T) (Target, func() []string) { return raw(rawTLSServer(t, ehlo, starttls)) }
}

func tlsSink(setup func(*smtp.Server)) dialTo {
	return func(t *testing.T) (Target, func() []string) { return mx(starttlsSink(t, setup)), nil }
}

// Dial leaves a target that lacks STARTTLS under TLSRequire for the next
// one; when every target lacks it, the error is permanent.
func TestSTARTTLSRequiredNextTarget(t *testing.T) {
	fx := newTLSFixture(t)
	noTLS := func() Target { return rawTLSServer(t, "250 8BITMIME\r\n", "").target }
	good := starttlsSink(t, serving(&fx.mx))
	c := dialT(t, tlsOpts(TLSRequire, fx.trusted), noTLS(), mx(good))
	if _, ok := c.TLS(); !ok || c.Target() != mx(good) {
		t.Errorf("connected to %v, TLS %v; want %v over TLS", c.Target(), ok, mx(good))
	}
	for _, tt := range []struct {
		name      string
		targets   []Target
		temporary bool
	}{
		{"none offers it", []Target{noTLS(), noTLS()}, false},
		{"one is down", []Target{noTLS(), closedTarget(t)}, true},
	} {
		_, err := Dial(context.Background(), tt.targets, tlsOpts(TLSRequire, fx.trusted))
		var e *Error
		if !errors.As(err, &e) || e.Temporary != tt.temporary || e.Reply().Temporary() != tt.temporary {
			t.Errorf("%s: Dial = %v, want temporary %v", tt.name, err, tt.temporary)
		}
	}
}

// A server that refuses STARTTLS under TLSOptional: the session goes on in
// plaintext on the same connection, and REQUIRETLS is refused there.
func TestSTARTTLSRefusedOptional(t *testing.T) {
	rs := newRawServer(t, "220 raw.test ESMTP\r\n", func(cmd string) string {
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			return "250-raw.test\r\n250-STARTTLS\r\n250 REQUIRETLS\r\n"
		case cmd == "STARTTLS":
			return "454 4.7.0 TLS not available\r\n"
		case cmd == "DATA":
			return "354 go ahead\r\n"
		case cmd == "QUIT":
			return "221 bye\r\n"
		case strings.HasPrefix(cmd, "MAIL"), strings.HasPrefix(cmd, "RCPT"), cmd == ".":
			return "250 2.0.0 ok\r\n"
		}
		return "" // the body
	})
	c := dialT(t, testOpts(), rs.target)
	if _, ok := c.TLS(); ok || c.Verified() || !c.Alive() {
		t.Fatalf("TLS %v, verified %v, alive %v; want a live plaintext session", ok, c.Verified(), c.Alive())
	}
	tx := newTx("a@x.test")
	tx.RequireTLS = true
	got, err := c.Deliver(context.Background(), tx)
	if err != nil {
		t.Fatal(err)
	}
	checkReplies(t, got, []want{{550, "5.7.30", ClassTLS}})
	if got, err = c.Deliver(context.Background(), newTx("a@x.test")); err != nil {
		t.Fatal(err)
	}
	checkReplies(t, got, []want{ok250})
	cmds := rs.commands()
	if len(cmds) < 3 || cmds[1] != "STARTTLS" || cmds[2] != "MAIL FROM:<sender@example.org>" {
		t.Errorf("server read %q, want EHLO, STARTTLS, then the one MAIL", cmds)
	}
}

// REQUIRETLS (RFC 8689): MAIL carries it only over a verified TLS session
// to a server that advertises it; otherwise nothing is sent and every
// recipient gets 550 5.7.30.
func TestREQUIRETLS(t *testing.T) {
	fx := newTLSFixture(t)
	approve := func(tls.ConnectionState) error { return nil }
	refused := want{550, "5.7.30", ClassTLS}
	tests := []struct {
		name    string
		setup   func(*smtp.Server)
		opts    Options
		require bool
		want    want
		why     string // in the refusal
	}{
		{"verified and advertised", serving(&fx.mx, requireTLSServer), tlsOpts(TLSOptional, fx.trusted), true, ok250, ""},
		{"verified by VerifyPeer", serving(&fx.self, requireTLSServer),
			withVerify(tlsOpts(TLSOptional, fx.insecure), approve), true, ok250, ""},
		{"not asked for", serving(&fx.mx, requireTLSServer), tlsOpts(TLSOptional, fx.trusted), false, ok250, ""},
		{"plaintext", serving(nil, requireTLSServer), tlsOpts(TLSOptional, fx.trusted), true, refused, "is not TLS"},
		{"STARTTLS disabled", serving(&fx.mx, requireTLSServer), tlsOpts(TLSDisable, fx.trusted), true, refused, "is not TLS"},
		{"not verified", serving(&fx.self, requireTLSServer), tlsOpts(TLSOptional, fx.insecure), true, refused, "not verified"},
		{"not advertised", serving(&fx.mx), tlsOpts(TLSOptional, fx.trusted), true, refused, "does not offer REQUIRETLS"},
	}
	for _, tt := range tests {
		forBothModes(t, tt.name, func(t *testing.T, lockStep bool) {
			s := starttlsSink(t, tt.setup)
			c := dialT(t, tt.opts, mx(s))
			c.lockStep = lockStep
			tx := newTx("a@x.test", "b@x.test")
			tx.RequireTLS = tt.require
			got, err := c.Deliver(context.Background(), tx)
			if err != nil {
				t.Fatal(err)
			}
			checkReplies(t, got, []want{tt.want, tt.want})
			txs := s.transactions()
			if tt.want != ok250 {
				if len(txs) != 0 {
					t.Errorf("MAIL sent: %+v", txs)
				}
				if text := got[0].Text; !strings.HasPrefix(text, "REQUIRETLS support required: ") || !strings.Contains(text, tt.why) {
					t.Errorf("refusal text %q", text)
				}
				checkReplies(t, deliverOne(t, c), []want{ok250}) // the session is still good
				return
			}
			if len(txs) != 1 || txs[0].Mail.RequireTLS != tt.require {
				t.Errorf("sink saw %+v, want one MAIL with REQUIRETLS %v", txs, tt.require)
			}
		})
	}
}

func deliverOne(t *testing.T, c *Conn) []messages.Reply {
	t.Helper()
	got, err := c.Deliver(context.Background(), newTx("next@x.test"))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// After STARTTLS the keywords are those of the EHLO that follows it
// (RFC 3207 section 4.2): REQUIRETLS appears, STARTTLS goes.
func TestSTARTTLSRereadsExtensions(t *testing.T) {
	fx := newTLSFixture(t)
	s := starttlsSink(t, serving(&fx.mx, requireTLSServer))
	c := dialT(t, tlsOpts(TLSOptional, fx.trusted), mx(s))
	if ext := c.Extensions(); hasKey(ext, "STARTTLS") || !hasKey(ext, "REQUIRETLS") {
		t.Errorf("extensions after STARTTLS = %v", ext)
	}
	var hellos []string
	for _, line := range s.transcript() {
		if line == "EHLO client.test" || line == "STARTTLS" {
			hellos = append(hellos, line)
		}
	}
	if want := []string{"EHLO client.test", "STARTTLS", "EHLO client.test"}; !slices.Equal(hellos, want) {
		t.Errorf("server read %q, want %q", hellos, want)
	}
}

// AUTH follows STARTTLS and the EHLO after it: this server offers AUTH
// only over TLS.
func TestSTARTTLSThenAuth(t *testing.T) {
	fx := newTLSFixture(t)
	s := starttlsSink(t, serving(&fx.mx))
	s.script(func(s *sink) { s.auth = &sinkAuth{mechs: []string{"PLAIN"}} })
	opts := authOpts(Auth{Username: testUser, Password: testPass})
	opts.TLSConfig = fx.trusted
	c := dialT(t, opts, mx(s))
	if _, ok := c.TLS(); !ok || c.AuthMechanism() != MechPlain {
		t.Fatalf("TLS %v, AuthMechanism %q", ok, c.AuthMechanism())
	}
	var seen []string
	for _, line := range s.transcript() {
		if verb, _, _ := strings.Cut(line, " "); verb == "EHLO" || verb == "STARTTLS" || verb == "AUTH" {
			seen = append(seen, verb)
		}
	}
	if want := []string{"EHLO", "STARTTLS", "EHLO", "AUTH"}; !slices.Equal(seen, want) {
		t.Errorf("server read %q, want %q", seen, want)
	}
	checkReplies(t, deliverOne(t, c), []want{ok250})

	opts.STARTTLS = TLSDisable
	_, err := Dial(context.Background(), []Target{mx(s)}, opts)
	if !errors.Is(err, ErrNoMechanism) {
		t.Errorf("Dial without STARTTLS = %v, want ErrNoMechanism (AUTH is offered only over TLS)", err)
	}
}

func TestTLSModeCheck(t *testing.T) {
	for m, want := range map[TLSMode]string{TLSOptional: "optional", TLSRequire: "require", TLSDisable: "disable", 9: "TLSMode(9)"} {
		if m.String() != want {
			t.Errorf("TLSMode(%d).String() = %q, want %q", m, m, want)
		}
	}
	opts := testOpts()
	opts.STARTTLS = 9
	_, err := Dial(context.Background(), []Target{closedTarget(t)}, opts)
	var e *Error
	if !errors.As(err, &e) || !e.Temporary || e.Stage != StageSTARTTLS || !strings.Contains(e.Message, "bad configuration") {
		t.Errorf("Dial with an unknown mode = %v, want a temporary configuration error", err)
	}
}
