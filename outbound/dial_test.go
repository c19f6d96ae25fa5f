package outbound

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mtad/mtad/internal/testpki"
)

func greeting554(t *testing.T) *rawServer {
	return newRawServer(t, "554 5.7.1 raw.test no service for you\r\n", func(string) string { return "221 bye\r\n" })
}

func ehlo550(t *testing.T) *rawServer {
	return newRawServer(t, "220 raw.test ESMTP\r\n", func(cmd string) string {
		if strings.HasPrefix(cmd, "EHLO") {
			return "550 5.7.1 not you\r\n"
		}
		return "221 bye\r\n"
	})
}

func TestDialFallsToNextTarget(t *testing.T) {
	tests := []struct {
		name  string
		first func(t *testing.T) Target
	}{
		{"refused", closedTarget},
		{"greeting 554", func(t *testing.T) Target { return greeting554(t).target }},
		{"EHLO 550", func(t *testing.T) Target { return ehlo550(t).target }},
		{"greeting 421", func(t *testing.T) Target {
			return newRawServer(t, "421 4.3.2 busy\r\n", func(string) string { return "" }).target
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSink(t, nil)
			c := dialT(t, testOpts(), tt.first(t), s.target)
			if c.Target() != s.target {
				t.Errorf("connected to %v, want %v", c.Target(), s.target)
			}
			got, err := c.Deliver(context.Background(), newTx("a@x.test"))
			if err != nil {
				t.Fatal(err)
			}
			checkReplies(t, got, []want{ok250})
		})
	}
}

func TestDialFailure(t *testing.T) {
	tests := []struct {
		name      string
		targets   func(t *testing.T) []Target
		temporary bool
		code      int
		stage     string
		class     string
	}{{
		name: "all 5xx is permanent",
		targets: func(t *testing.T) []Target {
			return []Target{greeting554(t).target, ehlo550(t).target}
		},
		code: 550, stage: StageEHLO, class: "ehlo",
	}, {
		name: "one refused is temporary",
		targets: func(t *testing.T) []Target {
			return []Target{closedTarget(t), greeting554(t).target}
		},
		temporary: true, stage: StageConnect, class: ClassConnection,
	}, {
		name: "EHLO 4xx is temporary",
		targets: func(t *testing.T) []Target {
			return []Target{newRawServer(t, "220 raw.test\r\n", func(string) string {
				return "451 4.3.0 later\r\n"
			}).target}
		},
		temporary: true, code: 451, stage: StageEHLO, class: "ehlo",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			targets := tt.targets(t)
			c, err := Dial(context.Background(), targets, testOpts())
			var e *Error
			if c != nil || !errors.As(err, &e) {
				t.Fatalf("Dial = %v, %v; want an *Error", c, err)
			}
			if e.Temporary != tt.temporary || e.Code != tt.code || e.Stage != tt.stage || e.Class != tt.class {
				t.Errorf("error = %+v", e)
			}
			if e.Reply().Temporary() != tt.temporary {
				t.Errorf("Reply() = %v, temporary %v", e.Reply(), !tt.temporary)
			}
			for _, target := range targets {
				if !strings.Contains(err.Error(), target.String()) {
					t.Errorf("error %q does not name %s", err, target)
				}
			}
		})
	}
}

func TestDialNoTargets(t *testing.T) {
	_, err := Dial(context.Background(), nil, testOpts())
	var e *Error
	if !errors.Is(err, ErrNoTargets) || !errors.As(err, &e) || !e.Temporary {
		t.Fatalf("Dial() = %v, want temporary ErrNoTargets", err)
	}
}

// A listener that accepts and never speaks.
func silent(t *testing.T) *rawServer {
	return newRawServer(t, "", func(string) string { return "" })
}

func TestGreetingTimeout(t *testing.T) {
	opts := testOpts()
	opts.Timeouts.Greeting = 100 * time.Millisecond
	start := time.Now()
	_, err := Dial(context.Background(), []Target{silent(t).target}, opts)
	var e *Error
	if !errors.As(err, &e) || !e.Temporary || e.Class != ClassTimeout || e.Stage != StageGreeting {
		t.Fatalf("Dial = %v, want a temporary timeout at greeting", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Dial took %v", d)
	}
}

func TestDialCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := Dial(ctx, []Target{silent(t).target, silent(t).target}, testOpts())
	var e *Error
	if !errors.As(err, &e) || e.Class != ClassCanceled || !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial = %v, want canceled", err)
	}
	if strings.Contains(e.Message, "2 target(s)") {
		t.Errorf("Dial went on to the next target after cancel: %v", err)
	}
}

func TestHELOFallback(t *testing.T) {
	rs := newRawServer(t, "220 raw.test ESMTP\r\n", func(cmd string) string {
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			return "502 5.5.1 what\r\n"
		case strings.HasPrefix(cmd, "HELO"):
			return "250 raw.test\r\n"
		}
		return "221 bye\r\n"
	})
	c := dialT(t, testOpts(), rs.target)
	if ext := c.Extensions(); len(ext) != 0 {
		t.Errorf("extensions after HELO = %v", ext)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	want := []string{"EHLO client.test", "HELO client.test", "QUIT"}
	eventually(t, "QUIT", func() bool { return len(rs.commands()) == len(want) })
	if got := rs.commands(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("server saw %q, want %q", got, want)
	}
	if c.Alive() || c.Close() != nil {
		t.Error("Close is not final and idempotent")
	}
}

func TestExtensionsAndLocalAddr(t *testing.T) {
	s := newSink(t, func(srv *smtp.Server) { srv.MaxMessageBytes = 4096 })
	opts := testOpts()
	opts.LocalAddr = netip.MustParseAddr("127.0.0.1")
	c := dialT(t, opts, s.target)
	ext := c.Extensions()
	if ext["SIZE"] != "4096" || !hasKey(ext, "PIPELINING") || !hasKey(ext, "8BITMIME") {
		t.Errorf("extensions = %v", ext)
	}
	if !c.Offers("PIPELINING") || c.Offers("pipelining") || c.Offers("XNOSUCH") {
		t.Errorf("Offers disagrees with extensions %v", ext)
	}
	if c.LocalAddr().Addr() != opts.LocalAddr || c.LocalAddr().Port() == 0 {
		t.Errorf("local address = %v", c.LocalAddr())
	}
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }

func TestImplicitTLS(t *testing.T) {
	cert, roots := testCert(t, "sink.test")
	s := newSink(t, func(srv *smtp.Server) { srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}} })
	t.Run("verified", func(t *testing.T) {
		opts := testOpts()
		opts.ImplicitTLS, opts.TLSConfig = true, &tls.Config{RootCAs: roots}
		c := dialT(t, opts, s.target)
		got, err := c.Deliver(context.Background(), newTx("a@x.test"))
		if err != nil {
			t.Fatal(err)
		}
		checkReplies(t, got, []want{ok250})
		if st, ok := c.TLS(); !ok || !c.Verified() || st.ServerName != "sink.test" {
			t.Errorf("TLS() = %v, %v; Verified() = %v", st.ServerName, ok, c.Verified())
		}
	})
	t.Run("TLSRequire is met, no STARTTLS", func(t *testing.T) {
		opts := testOpts()
		opts.ImplicitTLS, opts.STARTTLS, opts.TLSConfig = true, TLSRequire, &tls.Config{RootCAs: roots}
		c := dialT(t, opts, s.target)
		if _, ok := c.TLS(); !ok || !c.Verified() {
			t.Errorf("TLS() ok = %v, Verified() = %v", ok, c.Verified())
		}
	})
	t.Run("VerifyPeer rejects", func(t *testing.T) {
		opts := testOpts()
		opts.ImplicitTLS, opts.TLSConfig = true, &tls.Config{InsecureSkipVerify: true}
		opts.VerifyPeer = func(tls.ConnectionState) error {
			return &Error{Code: 550, Enhanced: "5.7.5", Class: "dane", Message: "no match"}
		}
		_, err := Dial(context.Background(), []Target{s.target}, opts)
		var e *Error
		if !errors.As(err, &e) || e.Temporary || e.Class != "dane" || e.Stage != StageConnect {
			t.Fatalf("Dial = %v, want the permanent dane error at connect", err)
		}
	})
	t.Run("unknown authority", func(t *testing.T) {
		opts := testOpts()
		opts.ImplicitTLS = true
		_, err := Dial(context.Background(), []Target{s.target}, opts)
		var e *Error
		if !errors.As(err, &e) || !e.Temporary || e.Class != ClassTLS {
			t.Fatalf("Dial = %v, want a temporary tls error", err)
		}
	})
}

// testCert makes a self-signed certificate for host and a pool that trusts it.
// testCert is a certificate for host and the pool that trusts it (a CA of
// its own, so two calls do not trust each other).
func testCert(t *testing.T, host string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	ca := testpki.NewCA(t)
	return ca.Issue(host), ca.Pool
}

func TestErrorTextAndReply(t *testing.T) {
	tests := []struct {
		name      string
		e         *Error
		text      string
		replyText string
	}{{
		name: "server reply",
		e: &Error{Temporary: false, Code: 550, Enhanced: "5.1.1", Message: "no such user",
			Stage: StageRcpt, Class: "rcpt", Target: "mx.test[192.0.2.1]:25"},
		text:      "outbound: rcpt at mx.test[192.0.2.1]:25: 550 5.1.1 no such user",
		replyText: "no such user",
	}, {
		name: "network failure",
		e: &Error{Temporary: true, Message: "timed out after 5s", Stage: StageData, Class: ClassTimeout,
			Target: "mx.test[192.0.2.1]:25"},
		text:      "outbound: data at mx.test[192.0.2.1]:25: timed out after 5s",
		replyText: "data at mx.test[192.0.2.1]:25: timed out after 5s",
	}, {
		name:      "temporary error with a 5xx code replies temporary",
		e:         &Error{Temporary: true, Code: 554, Message: "x", Stage: StageGreeting, Class: "greeting"},
		text:      "outbound: greeting: 554 x",
		replyText: "x",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.e.Error(); got != tt.text {
				t.Errorf("Error() = %q, want %q", got, tt.text)
			}
			r := tt.e.Reply()
			if r.Text != tt.replyText || r.Temporary() != tt.e.Temporary || r.Class != tt.e.Class {
				t.Errorf("Reply() = %+v", r)
			}
		})
	}
}
