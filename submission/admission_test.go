package submission

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mtad/mtad/limits"
)

const (
	tooManyFromIP = "421 4.7.0 Too many connections from your address, try again later"
	rateLimitedAt = "451 4.7.1 Rate limit exceeded, try again in "
)

// otherIP is a second loopback address to dial from: Linux routes all of
// 127.0.0.0/8 to the loopback interface.
const otherIP = "127.0.0.2"

// dialFrom connects to addr from the local address from ("" for any),
// without reading anything.
func dialFrom(t *testing.T, addr, from string) *rawClient {
	t.Helper()
	d := net.Dialer{Timeout: waitFor}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawClient{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// rawFrom is harness.raw dialing from the local address from.
func (h *harness) rawFrom(from string, ehlo bool) *rawClient {
	h.t.Helper()
	c := dialFrom(h.t, h.addr, from)
	c.expect("", "220 mx.test ESMTP")
	if ehlo {
		c.expect("EHLO client.test", "250-")
	}
	return c
}

// refusedWith dials addr from from and checks that the server says want
// and closes the connection.
func refusedWith(t *testing.T, addr, from, want string) {
	t.Helper()
	c := dialFrom(t, addr, from)
	if got := c.closed(); len(got) != 2 || got[0] != want || got[1] != "" {
		t.Fatalf("connection got %q, want %q and a close", got, want)
	}
}

// greeted dials addr until a connection is greeted 220, and returns it
// open: a connection slot freed by a close on another goroutine shows up
// after a while.
func greeted(t *testing.T, addr string) *rawClient {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		c := dialFrom(t, addr, "")
		r, err := c.reply()
		if err == nil && strings.HasPrefix(r, "220 ") {
			return c
		}
		c.conn.Close()
		if time.Now().After(deadline) {
			t.Fatalf("no connection served; last reply %q, %v", r, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// mail sends MAIL FROM:<from> and returns the reply, after an RSET when it
// opened a transaction.
func (c *rawClient) mail(from string) string {
	c.t.Helper()
	r := c.cmd("MAIL FROM:<" + from + ">")
	if strings.HasPrefix(r, "250 ") {
		c.expect("RSET", "250 ")
	}
	return r
}

// expectRateLimited checks that r is the 451 4.7.1 of a rate of one MAIL
// every perMsg, at most perMsg away.
func expectRateLimited(t *testing.T, r string, perMsg time.Duration) {
	t.Helper()
	m := regexp.MustCompile(`^451 4\.7\.1 Rate limit exceeded, try again in (\d+) seconds?$`).FindStringSubmatch(r)
	if m == nil {
		t.Fatalf("got %q, want %q...", r, rateLimitedAt)
	}
	if n, _ := strconv.Atoi(m[1]); n < 1 || time.Duration(n)*time.Second > perMsg {
		t.Errorf("%q: retry in %s s, want 1 to %v", r, m[1], perMsg.Seconds())
	}
}

func TestConnectionsPerIP(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.ConnectionsPerIP = 2
	h := start(t, cfg)
	a := h.raw(true)
	h.raw(false)
	refusedWith(t, h.addr, "", tooManyFromIP)
	h.rawFrom(otherIP, true).transaction("a@sender.example", []string{"b@local.test"}, "\r\n")

	// The slot goes back before the socket closes: once the client sees
	// the close, it may connect again.
	a.expect("QUIT", "221 ")
	a.closed()
	h.raw(true)
	refusedWith(t, h.addr, "", tooManyFromIP)

	logs := h.logs.String()
	if !strings.Contains(logs, `level=INFO msg="connection refused: too many connections from address" remote_ip=127.0.0.1 max=2`) {
		t.Errorf("no info log of the refusal with remote_ip in:\n%s", logs)
	}
}

// TestConnectionSlotReleased ends a connection in every way one ends and
// checks that its slot came back exactly once: with another connection of
// the address holding a slot throughout (on a second server sharing the
// Store), exactly one new connection is served, and the next refused.
func TestConnectionSlotReleased(t *testing.T) {
	pki := newTestPKI(t)
	tests := []struct {
		name string
		cfg  func(*Config)
		// end opens a connection from 127.0.0.1 to h2 (tlsAddr is its
		// implicit TLS listener) and ends it; it returns how many
		// connections h2 still tracks then.
		end func(t *testing.T, h2 *harness, tlsAddr string) int
	}{
		{"client quits", nil, func(t *testing.T, h2 *harness, _ string) int {
			h2.raw(true).expect("QUIT", "221 ")
			return 0
		}},
		{"client drops", nil, func(t *testing.T, h2 *harness, _ string) int {
			h2.raw(true).conn.Close()
			return 0
		}},
		{"client drops in DATA", nil, func(t *testing.T, h2 *harness, _ string) int {
			c := h2.raw(true)
			c.expect("MAIL FROM:<a@sender.example>", "250 ")
			c.expect("RCPT TO:<b@local.test>", "250 ")
			c.expect("DATA", "354 ")
			c.send("Subject: cut\r\n")
			c.conn.Close()
			return 0
		}},
		{"too many errors", nil, func(t *testing.T, h2 *harness, _ string) int {
			// go-smtp closes the connection, then closes it again as
			// its read loop ends: two Close calls.
			c := h2.raw(true)
			for range 4 {
				c.send("FOO\r\n")
			}
			c.closed()
			return 0
		}},
		{"idle timeout", func(cfg *Config) { cfg.ReadTimeout = 50 * time.Millisecond },
			func(t *testing.T, h2 *harness, _ string) int {
				c := h2.raw(false)
				if got := c.closed(); len(got) < 1 || !strings.HasPrefix(got[0], "421 4.4.2 ") {
					t.Fatalf("idle connection got %q, want 421 4.4.2", got)
				}
				return 0
			}},
		{"server shuts down", nil, func(t *testing.T, h2 *harness, _ string) int {
			c := h2.raw(true)
			h2.stop()
			if got := c.closed(); len(got) < 1 || got[0] != bye {
				t.Fatalf("got %q, want %q", got, bye)
			}
			return 0
		}},
		{"shutdown deadline in a transaction", nil, func(t *testing.T, h2 *harness, _ string) int {
			c := h2.raw(true)
			c.expect("MAIL FROM:<a@sender.example>", "250 ")
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			if err := h2.srv.Shutdown(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("Shutdown = %v, want %v", err, context.Canceled)
			}
			c.closed()
			return 0
		}},
		{"refused by MaxConnections", func(cfg *Config) { cfg.MaxConnections = 1 },
			func(t *testing.T, h2 *harness, _ string) int {
				h2.rawFrom(otherIP, true) // h2's one connection
				refusedWith(t, h2.addr, "", "421 4.7.0 Too many connections, try again later")
				return 1
			}},
		{"implicit TLS quits", nil, func(t *testing.T, h2 *harness, tlsAddr string) int {
			h2.rawTLS(tlsAddr, pki.client, true).expect("QUIT", "221 ")
			return 0
		}},
		{"implicit TLS handshake fails", nil, func(t *testing.T, h2 *harness, tlsAddr string) int {
			c := dialFrom(t, tlsAddr, "")
			c.send("EHLO not.tls\r\n")
			c.closed()
			return 0
		}},
		{"STARTTLS then drop", nil, func(t *testing.T, h2 *harness, _ string) int {
			c := h2.raw(true)
			c.startTLS(pki.client, "")
			c.expect("EHLO client.test", "250-")
			c.conn.Close()
			return 0
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := limits.NewMemory()
			cfg := pki.tlsConfig()
			cfg.Limits = Limits{ConnectionsPerIP: 2, Store: store}
			h := start(t, cfg)
			h.raw(true) // holds a slot throughout
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			h2 := start(t, cfg)
			tlsAddr := h2.serveTLS()

			left := tc.end(t, h2, tlsAddr)
			// Every Close done: h2 forgot the connection (Close does
			// that with the release), and h2's Shutdown waited for
			// go-smtp's own Close calls.
			waitConns(t, h2.srv, left)
			h2.stop()

			greeted(t, h.addr)
			refusedWith(t, h.addr, "", tooManyFromIP)
		})
	}
}

func TestMessagesPerIP(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.MessagesPerIP = limits.Rate{N: 3, Per: time.Minute}
	h := start(t, cfg)
	c := h.raw(true)
	// Refused for another reason before the limit: not counted.
	c.expect("MAIL FROM:<not an address>", "501 ")
	c.expect("MAIL FROM:<a@sender.example>", "250 ")
	c.expect("MAIL FROM:<a@sender.example>", "503 ") // nested
	c.expect("RCPT TO:<b@local.test>", "250 ")
	c.expect("DATA", "354 ")
	c.send("Subject: one\r\n\r\nx\r\n.\r\n")
	c.expect("", "250 ")
	for _, from := range []string{"b@sender.example", ""} {
		if r := c.mail(from); !strings.HasPrefix(r, "250 ") {
			t.Fatalf("MAIL FROM:<%s> = %q, want 250", from, r)
		}
	}
	expectRateLimited(t, c.mail("c@sender.example"), 20*time.Second)

	// The session goes on, and stays limited.
	c.expect("NOOP", "250 ")
	c.expect("RCPT TO:<b@local.test>", "502 5.5.1 ") // no transaction
	expectRateLimited(t, c.mail("d@sender.example"), 20*time.Second)
	expectRateLimited(t, h.raw(true).mail("d@sender.example"), 20*time.Second)

	other := h.rawFrom(otherIP, true)
	if r := other.transaction("a@sender.example", []string{"b@local.test"}, "\r\n"); !strings.HasPrefix(r, "250 ") {
		t.Errorf("message from %s = %q, want 250", otherIP, r)
	}
	checkAccepted(t, h, 2)

	logs := h.logs.String()
	if !strings.Contains(logs, `level=INFO msg="mail refused: rate limit" remote_ip=127.0.0.1 limit=remote_ip rate=3/1m from=c@sender.example`) {
		t.Errorf("no info log of the refusal with remote_ip in:\n%s", logs)
	}
}

func TestMessagesPerSender(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.MessagesPerSender = limits.Rate{N: 2, Per: time.Minute}
	h := start(t, cfg)
	c := h.raw(true)
	for _, tc := range []struct {
		from string
		want string
	}{
		{"a@sender.example", "250 "},
		{"a@sender.example", "250 "},
		{"A@Sender.Example", "451 "}, // the same sender
		{"b@sender.example", "250 "},
		{"", "250 "},
		{"", "250 "},
		{"", "451 "},
		{"b@sender.example", "250 "},
	} {
		r := c.mail(tc.from)
		if tc.want == "451 " {
			expectRateLimited(t, r, 30*time.Second)
		} else if !strings.HasPrefix(r, tc.want) {
			t.Fatalf("MAIL FROM:<%s> = %q, want %q", tc.from, r, tc.want)
		}
	}
	// A sender's budget is the same from any address.
	other := h.rawFrom(otherIP, true)
	expectRateLimited(t, other.mail("a@sender.example"), 30*time.Second)
	other.expect("MAIL FROM:<c@sender.example>", "250 ")
}

func TestLimitsExempt(t *testing.T) {
	cfg := testConfig()
	cfg.Limits = Limits{
		ConnectionsPerIP:  1,
		MessagesPerIP:     limits.Rate{N: 1, Per: time.Hour},
		MessagesPerSender: limits.Rate{N: 1, Per: time.Hour},
		Exempt:            []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	}
	h := start(t, cfg)
	var cs []*rawClient
	for range 3 {
		cs = append(cs, h.raw(true))
	}
	for _, c := range cs {
		for range 3 {
			if r := c.mail("a@sender.example"); !strings.HasPrefix(r, "250 ") {
				t.Fatalf("exempt MAIL = %q, want 250", r)
			}
		}
	}
	// Not exempt: limited, and exempt clients did not count.
	other := h.rawFrom(otherIP, true)
	refusedWith(t, h.addr, otherIP, tooManyFromIP)
	other.expect("MAIL FROM:<a@sender.example>", "250 ")
	other.expect("RSET", "250 ")
	expectRateLimited(t, other.cmd("MAIL FROM:<b@sender.example>"), time.Hour)
}

// TestMessagesPerUser drives takeMessage directly: no AUTH yet to set
// session.authenticated over the wire.
func TestMessagesPerUser(t *testing.T) {
	srv := New(Config{Limits: Limits{MessagesPerUser: limits.Rate{N: 1, Per: time.Minute}}}, nil, nil)
	sess := func(user, ip string) *session {
		return &session{srv: srv, log: slog.New(slog.DiscardHandler), ip: netip.MustParseAddr(ip), authenticated: user}
	}
	alice := sess("alice", "192.0.2.1")
	if err := alice.takeMessage("a@sender.example"); err != nil {
		t.Fatalf("first message of alice: %v", err)
	}
	var se *smtp.SMTPError
	if err := sess("alice", "192.0.2.2").takeMessage("b@sender.example"); !errors.As(err, &se) || se.Code != 451 || se.EnhancedCode != (smtp.EnhancedCode{4, 7, 1}) {
		t.Errorf("second message of alice, from elsewhere: %v, want 451 4.7.1", err)
	}
	if err := sess("bob", "192.0.2.1").takeMessage("a@sender.example"); err != nil {
		t.Errorf("first message of bob: %v", err)
	}
	for range 3 {
		if err := sess("", "192.0.2.1").takeMessage("a@sender.example"); err != nil {
			t.Errorf("unauthenticated: %v", err)
		}
	}
}

func TestRateLimitedText(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "try again in 1 second"},
		{time.Nanosecond, "try again in 1 second"},
		{time.Second, "try again in 1 second"},
		{1500 * time.Millisecond, "try again in 2 seconds"},
		{20 * time.Second, "try again in 20 seconds"},
	} {
		e := rateLimited(tc.d)
		if got := replyLine(e.Code, e.EnhancedCode, e.Message); got != "451 4.7.1 Rate limit exceeded, "+tc.want+"\r\n" {
			t.Errorf("rateLimited(%v) = %q, want ... %q", tc.d, got, tc.want)
		}
	}
}

// TestBurstRate: a limit of N per Per lets N through at once, then one
// every Per/N, counted with the Store's explicit clock.
func TestBurstRate(t *testing.T) {
	m := limits.NewMemory()
	r := burstRate(limits.Rate{N: 3, Per: time.Minute})
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		if ok, _ := m.Take("k", r, t0); !ok {
			t.Fatalf("event %d of 3 refused", i+1)
		}
	}
	ok, at := m.Take("k", r, t0)
	if d := at.Sub(t0); ok || d < 20*time.Second-time.Nanosecond || d > 20*time.Second {
		t.Fatalf("4th event = %v, %v; want refused until +20s", ok, at.Sub(t0))
	}
	if ok, _ := m.Take("k", r, at); !ok {
		t.Error("event at retryAt refused")
	}
	if huge := (limits.Rate{N: 1 << 62, Per: time.Second}); burstRate(huge) != huge {
		t.Errorf("burstRate(%v) = %v, want it unchanged", huge, burstRate(huge))
	}
}
