package submission

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mtad/mtad/messages"
)

// waitFor bounds every wait on the server in these tests.
const waitFor = 10 * time.Second

// fakeAcceptor records messages. It can be told to fail, and to hold
// AcceptBody until released. It keeps every body it was given, aborted or
// not, to check what the session streamed.
type fakeAcceptor struct {
	mu        sync.Mutex
	next      messages.MsgID
	msgs      []acceptedMsg
	bodies    []*fakeBody
	fail      error         // returned by AcceptBody while set
	hold      chan struct{} // when set, AcceptBody waits until it is closed
	entered   chan struct{} // when set, AcceptBody signals on it as it starts
	hashed    bool          // keep a digest of each body, and its first 4 KiB
	failWrite error         // returned by every body's Write while set
}

type acceptedMsg struct {
	env  messages.Envelope
	body []byte
}

// fakeBody is a BodyWriter that keeps the body, or its digest and size.
// The acceptor's mutex guards it, as the test reads it while sessions run.
type fakeBody struct {
	mu       *sync.Mutex
	a        *fakeAcceptor
	id       messages.MsgID
	buf      bytes.Buffer
	hash     hash.Hash // nil: keep the bytes in buf; else its first 4 KiB only
	size     int64
	writes   int
	maxWrite int
	aborted  bool
}

func (b *fakeBody) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.a.failWrite; err != nil {
		return 0, err
	}
	b.writes++
	b.maxWrite = max(b.maxWrite, len(p))
	b.size += int64(len(p))
	if b.hash == nil {
		return b.buf.Write(p)
	}
	if keep := 4<<10 - b.buf.Len(); keep > 0 {
		b.buf.Write(p[:min(keep, len(p))])
	}
	return b.hash.Write(p)
}

func (b *fakeBody) Abort() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.aborted = true
}

func (a *fakeAcceptor) NextID() messages.MsgID {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.next++
	return a.next
}

func (a *fakeAcceptor) NewBody(id messages.MsgID) BodyWriter {
	a.mu.Lock()
	defer a.mu.Unlock()
	b := &fakeBody{mu: &a.mu, a: a, id: id}
	if a.hashed {
		b.hash = sha256.New()
	}
	a.bodies = append(a.bodies, b)
	return b
}

func (a *fakeAcceptor) AcceptBody(env *messages.Envelope, body BodyWriter) error {
	b := body.(*fakeBody)
	if err := a.wait(); err != nil {
		b.Abort()
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if b.id != env.ID || b.size != env.Size {
		return fmt.Errorf("body of %v (%d bytes) accepted for %v (%d bytes)", b.id, b.size, env.ID, env.Size)
	}
	a.msgs = append(a.msgs, acceptedMsg{env: *env, body: bytes.Clone(b.buf.Bytes())})
	return nil
}

func (a *fakeAcceptor) Accept(env *messages.Envelope, body []byte) error {
	b := a.NewBody(env.ID)
	b.Write(body)
	return a.AcceptBody(env, b)
}

// wait holds AcceptBody as holdNext asked, and returns the failure it
// should report.
func (a *fakeAcceptor) wait() error {
	a.mu.Lock()
	hold, entered := a.hold, a.entered
	a.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if hold != nil {
		<-hold
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.fail
}

// aborted returns how many bodies were aborted, and how many were started.
func (a *fakeAcceptor) aborted() (aborted, started int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, b := range a.bodies {
		if b.aborted {
			aborted++
		}
	}
	return aborted, len(a.bodies)
}

func (a *fakeAcceptor) setFail(err error) {
	a.mu.Lock()
	a.fail = err
	a.mu.Unlock()
}

// holdNext makes Accept block until the returned release is called; the
// returned channel receives once per Accept that started.
func (a *fakeAcceptor) holdNext() (entered <-chan struct{}, release func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.hold = make(chan struct{})
	a.entered = make(chan struct{}, 16)
	var once sync.Once
	hold := a.hold
	return a.entered, func() { once.Do(func() { close(hold) }) }
}

func (a *fakeAcceptor) messages() []acceptedMsg {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]acceptedMsg(nil), a.msgs...)
}

func testConfig() Config {
	return Config{
		Hostname:       "mx.test",
		MaxMessageSize: 10000,
		MaxRecipients:  3,
		TrustedNetworks: []netip.Prefix{
			netip.MustParsePrefix("127.0.0.0/8"),
			netip.MustParsePrefix("::1/128"),
		},
		LocalDomains: []string{"Local.Test"},
		ReadTimeout:  waitFor,
		WriteTimeout: waitFor,
	}
}

// untrustedConfig is testConfig with loopback outside TrustedNetworks. No
// traffic goes to 10.99.0.0/16: it is only a prefix.
func untrustedConfig() Config {
	cfg := testConfig()
	cfg.TrustedNetworks = []netip.Prefix{netip.MustParsePrefix("10.99.0.0/16")}
	return cfg
}

type harness struct {
	t    *testing.T
	srv  *Server
	acc  *fakeAcceptor
	addr string
	logs *syncBuffer

	served   chan struct{} // closed when Serve returned
	serveErr error
}

func start(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{t: t, acc: &fakeAcceptor{}, logs: &syncBuffer{}, served: make(chan struct{})}
	log := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.srv = New(cfg, h.acc, log)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = l.Addr().String()
	go func() {
		h.serveErr = h.srv.Serve(l)
		close(h.served)
	}()
	t.Cleanup(h.stop)
	return h
}

// stop shuts the server down unless the test did.
func (h *harness) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
		h.t.Errorf("Shutdown: %v", err)
	}
	h.waitServed()
}

func (h *harness) waitServed() {
	select {
	case <-h.served:
		// ErrServerClosed: shut down before the goroutine reached Serve.
		if h.serveErr != nil && !errors.Is(h.serveErr, smtp.ErrServerClosed) {
			h.t.Errorf("Serve returned %v, want nil", h.serveErr)
		}
	case <-time.After(waitFor):
		h.t.Error("Serve did not return after Shutdown")
	}
}

// client dials with go-smtp's client and says EHLO.
func (h *harness) client() *smtp.Client {
	h.t.Helper()
	c, err := smtp.Dial(h.addr)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.test"); err != nil {
		h.t.Fatal(err)
	}
	return c
}

// rawClient speaks SMTP byte by byte.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

// raw dials and reads the greeting; with ehlo it also says EHLO.
func (h *harness) raw(ehlo bool) *rawClient {
	h.t.Helper()
	conn, err := net.Dial("tcp", h.addr)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { conn.Close() })
	c := &rawClient{t: h.t, conn: conn, r: bufio.NewReader(conn)}
	c.expect("", "220 mx.test ESMTP")
	if ehlo {
		c.expect("EHLO client.test", "250-")
	}
	return c
}

func (c *rawClient) send(s string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(waitFor))
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// reply reads one reply, all its lines, joined by "\n".
func (c *rawClient) reply() (string, error) {
	c.conn.SetReadDeadline(time.Now().Add(waitFor))
	var lines []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return strings.Join(lines, "\n"), err
		}
		line = strings.TrimSuffix(line, "\r\n")
		lines = append(lines, line)
		if len(line) < 4 || line[3] != '-' {
			return strings.Join(lines, "\n"), nil
		}
	}
}

// cmd sends line (unless empty) and returns the reply.
func (c *rawClient) cmd(line string) string {
	c.t.Helper()
	if line != "" {
		c.send(line + "\r\n")
	}
	r, err := c.reply()
	if err != nil {
		c.t.Fatalf("after %q: %v (read %q)", line, err, r)
	}
	return r
}

// expect sends line and fails unless the reply starts with prefix.
func (c *rawClient) expect(line, prefix string) string {
	c.t.Helper()
	r := c.cmd(line)
	if !strings.HasPrefix(r, prefix) {
		c.t.Fatalf("%q: got %q, want %q...", line, r, prefix)
	}
	return r
}

// transaction runs MAIL, RCPT for each rcpt, DATA and the body (given
// without its terminating ".") and returns the reply to the body.
func (c *rawClient) transaction(from string, rcpts []string, body string) string {
	c.t.Helper()
	c.expect("MAIL FROM:<"+from+">", "250 ")
	for _, r := range rcpts {
		c.expect("RCPT TO:<"+r+">", "250 ")
	}
	c.expect("DATA", "354 ")
	c.send(body + ".\r\n")
	return c.cmd("")
}

// closed waits until the server closed the connection, with the replies
// read on the way.
func (c *rawClient) closed() []string {
	c.t.Helper()
	var replies []string
	for {
		r, err := c.reply()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.t.Fatalf("connection still open after %q", replies)
			}
			return append(replies, r)
		}
		replies = append(replies, r)
	}
}

// bodyAfterReceived strips the Received header that the server prepends.
func bodyAfterReceived(t *testing.T, body []byte) string {
	t.Helper()
	s := string(body)
	if !strings.HasPrefix(s, "Received: ") {
		t.Fatalf("body does not start with Received: %q", s)
	}
	// The header has two continuation lines.
	for i := 0; i < 3; i++ {
		_, s, _ = strings.Cut(s, "\r\n")
	}
	return s
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
