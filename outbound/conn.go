package outbound

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

const (
	maxGreeting  = 64 << 10         // bytes read at most for the greeting
	quitTimeout  = 10 * time.Second // QUIT on Close, at most
	abortTimeout = time.Second      // QUIT after a failed open, best effort
)

// Conn is one open session. It is not safe for concurrent use: one
// goroutine (the connection actor's worker) calls its methods in turn.
type Conn struct {
	target Target
	opts   Options
	tcp    net.Conn // deadlines, and the hard close when ctx is done
	nc     net.Conn // the TCP connection, or TLS over it
	wire   *wire    // every command and reply after the greeting
	local  netip.AddrPort
	ext    map[string]string
	dead   *Error // why the connection cannot be used; nil while alive

	greeting bytes.Buffer // what was read for the greeting; the wire reads it first

	tlsState *tls.ConnectionState // nil for plaintext
	verified bool                 // see Verified

	authMech string // the SASL mechanism used, or ""

	lockStep bool // never pipeline (tests and the benchmark)
	// resetPending: the last transaction failed and its RSET goes out in
	// front of the next pipelined one (queueReset, readReset).
	resetPending bool
}

func newConn(tcp net.Conn, t Target, o Options) *Conn {
	c := &Conn{target: t, opts: o, tcp: tcp, nc: tcp}
	if a, ok := tcp.LocalAddr().(*net.TCPAddr); ok {
		ap := a.AddrPort()
		c.local = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return c
}

// Target returns the target this session is connected to.
func (c *Conn) Target() Target { return c.target }

// LocalAddr returns the local end of the connection.
func (c *Conn) LocalAddr() netip.AddrPort { return c.local }

// Extensions returns the EHLO keywords, upper-cased, with their parameters
// ("SIZE" -> "10240000"): after STARTTLS, those of the EHLO that followed
// it. It is empty after a HELO fallback.
func (c *Conn) Extensions() map[string]string { return maps.Clone(c.ext) }

// Offers reports whether the server offered the EHLO keyword (upper case),
// without the copy Extensions makes.
func (c *Conn) Offers(keyword string) bool { return c.has(keyword) }

// Alive reports whether Deliver may still be called.
func (c *Conn) Alive() bool { return c.dead == nil }

// Close says QUIT, waiting a short time for the reply, and closes the
// connection. It is idempotent; after it Alive is false.
func (c *Conn) Close() error {
	if c.dead != nil {
		return nil
	}
	d := min(quitTimeout, c.opts.Timeouts.MailFrom)
	e := c.step(context.Background(), StageQuit, d, func() error {
		_, err := c.wire.cmd(221, "QUIT")
		return err
	})
	c.kill(&Error{Temporary: true, Stage: StageQuit, Class: ClassConnection,
		Target: c.target.String(), Message: "connection closed", Err: ErrClosed})
	if e != nil {
		return e
	}
	return nil
}

// open takes a fresh connection up to a successful EHLO, STARTTLS and
// the EHLO after it per Options.STARTTLS, then AUTH when Options.Auth asks
// for it: TLS comes before AUTH, whose mechanisms are read from the last
// EHLO.
func (c *Conn) open(ctx context.Context) *Error {
	if c.opts.ImplicitTLS {
		if e := c.implicitTLS(ctx); e != nil {
			return e
		}
	}
	if e := c.step(ctx, StageGreeting, c.opts.Timeouts.Greeting, c.readGreeting); e != nil {
		return e
	}
	if e := c.hello(ctx); e != nil {
		return e
	}
	if e := c.starttls(ctx); e != nil || c.opts.Auth == nil {
		return e
	}
	return c.authenticate(ctx)
}

// readGreeting reads the greeting with a reader bounded to maxGreeting,
// then sets up the wire, which reads from the start of the greeting again
// (and finds it complete). From then on the wire is the only reader.
func (c *Conn) readGreeting() error {
	r := io.TeeReader(io.LimitReader(c.nc, maxGreeting), &c.greeting)
	_, _, err := textproto.NewReader(bufio.NewReader(r)).ReadResponse(220)
	if err != nil {
		return err
	}
	c.wire = newWire(io.MultiReader(&c.greeting, c.nc), c.nc)
	_, err = c.wire.reply(220)
	return err
}

// hello sends EHLO (LHLO) and records the keywords. When the server
// answers EHLO with 500 or 502 it falls back to HELO (RFC 5321 section
// 3.2), with no keywords; go-smtp's client did the same, for LHLO too.
func (c *Conn) hello(ctx context.Context) *Error {
	return c.step(ctx, StageEHLO, c.opts.Timeouts.EHLO, func() error {
		if badAddr(c.opts.Hostname) {
			return errors.New("hostname contains a line break")
		}
		verb := "EHLO "
		if c.opts.LMTP {
			verb = "LHLO "
		}
		msg, err := c.wire.cmd(250, verb+c.opts.Hostname)
		if se := (*smtp.SMTPError)(nil); errors.As(err, &se) && (se.Code == 500 || se.Code == 502) {
			_, err = c.wire.cmd(250, "HELO "+c.opts.Hostname)
			msg = ""
		}
		if err == nil {
			c.ext = keywords(msg)
		}
		return err
	})
}

// reset ends a failed transaction with RSET, then says EHLO again, as
// go-smtp's client did, so the session stays ready for Deliver and Close.
// Any failure here closes the connection.
func (c *Conn) reset(ctx context.Context) *Error {
	e := c.step(ctx, StageRset, c.opts.Timeouts.MailFrom, func() error {
		_, err := c.wire.cmd(250, "RSET")
		return err
	})
	if e == nil {
		e = c.hello(ctx)
	}
	if e != nil {
		return c.kill(e)
	}
	return nil
}

// queueReset queues the RSET a failed transaction left pending; it
// reports whether it did.
func (c *Conn) queueReset() bool {
	if !c.resetPending {
		return false
	}
	c.resetPending = false
	c.wire.queue("RSET")
	return true
}

// readReset reads the reply to a queued RSET, inside a step. Anything but
// 250 leaves the replies that follow in doubt: the error carries no reply
// code, so the step takes it as fatal and closes the connection.
func (c *Conn) readReset() error {
	if _, err := c.wire.reply(250); err != nil {
		return fmt.Errorf("RSET before the transaction: %v: %w", err, net.ErrClosed)
	}
	return nil
}

// step runs one protocol step under its own deadline. A failure that
// leaves the connection unusable closes it.
func (c *Conn) step(ctx context.Context, stage string, d time.Duration, f func() error) *Error {
	err := c.tcp.SetDeadline(time.Now().Add(d))
	if err == nil {
		err = f()
	}
	if err == nil {
		return nil
	}
	e := classify(ctx, stage, d, err)
	e.Target = c.target.String()
	if e.fatal() {
		c.kill(e)
	}
	return e
}

// kill closes the connection for good; the first reason given stays.
func (c *Conn) kill(e *Error) *Error {
	if c.dead == nil {
		c.dead = e
	}
	c.tcp.Close()
	return e
}

// watch closes the TCP connection when ctx is done, which fails the step in
// progress. The returned stop ends the watch; if ctx closed the connection
// after the last step succeeded, stop marks it dead and says so.
func (c *Conn) watch(ctx context.Context, stage string) (stop func() *Error) {
	after := context.AfterFunc(ctx, func() { c.tcp.Close() })
	return func() *Error {
		if after() || c.dead != nil {
			return nil
		}
		e := failure(ctx, stage, 0, net.ErrClosed)
		e.Target = c.target.String()
		return c.kill(e)
	}
}

// abort ends a session that failed to open: QUIT, best effort and without
// waiting (RFC 5321 section 3.1 asks for it even after a 554 greeting).
func (c *Conn) abort() {
	if c.dead == nil {
		c.tcp.SetDeadline(time.Now().Add(abortTimeout))
		io.WriteString(c.nc, "QUIT\r\n")
	}
	c.tcp.Close()
}

// has reports whether the server advertised an EHLO keyword.
func (c *Conn) has(keyword string) bool {
	_, ok := c.ext[keyword]
	return ok
}

// maxSize is the server's SIZE limit (RFC 1870), if it gave one.
func (c *Conn) maxSize() (int64, bool) {
	n, err := strconv.ParseInt(c.ext["SIZE"], 10, 64)
	return n, err == nil && n > 0
}

// keywords reads the EHLO keywords out of the text of its 250 reply: every
// line after the first.
func keywords(msg string) map[string]string {
	ext := map[string]string{}
	lines := strings.Split(msg, "\n")
	for _, line := range lines[1:] {
		kw, params, _ := strings.Cut(line, " ")
		ext[strings.ToUpper(kw)] = params
	}
	return ext
}
