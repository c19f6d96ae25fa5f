package submission

import (
	"crypto/tls"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// byeTimeout bounds the write of the 421 sent when a connection is closed
// by Shutdown, so a client that does not read cannot hold it up.
const byeTimeout = 5 * time.Second

// trackedConn is a client connection as the Server tracks it for Shutdown:
// busy while a transaction is open, from an accepted MAIL to the end of
// DATA, RSET or a new EHLO. It is the TCP connection: under TLS, go-smtp
// talks to a *tls.Conn over it, and Close here closes both at once
// without waiting on a TLS close_notify.
type trackedConn struct {
	net.Conn
	srv         *Server
	implicitTLS bool // from ServeTLS: nothing may be written in clear
	// slot is the key of the connection slot of the client's address
	// that c holds (Limits.ConnectionsPerIP), "" if none. Set before c is
	// shared; given back once, by the first Close.
	slot    string
	release sync.Once
	// done is closed by the first Close: a wait on the connection's
	// goroutine (session.pause) ends there.
	done      chan struct{}
	closeDone sync.Once

	// readFailed is set by the first read that fails: the client went
	// away or timed out (see Read).
	readFailed atomic.Bool

	// bulk is set while a message body is received: reads from the socket
	// then fill a read-ahead buffer, one of dataBuffers (see Read).
	bulk atomic.Bool
	// The fields below are touched by the connection's reading goroutine
	// only (go-smtp's, which runs Data for DATA).
	//
	// ahead holds bytes read from the socket and not yet handed on,
	// ahead[aheadPos:aheadEnd]; nil when there are none.
	ahead              *[]byte
	aheadPos, aheadEnd int
	aheadErr           error // the error of the read that filled ahead, given after its bytes
	// capture, when set, is a message to read from the socket at the next
	// Read (fastdata.go); prefix is handed on before anything else, and
	// endless has every Read return bytes without a line end.
	capture *dataCapture
	prefix  []byte
	endless bool
	// last is the last byte Read handed on: a capture runs only after a
	// line end (fastdata.go).
	last byte

	mu      sync.Mutex // guards busy, closing and tls
	busy    bool
	closing bool      // told 421, closed or logged out: no new transaction
	tls     *tls.Conn // the TLS layer over Conn, once its handshake is done
}

// trackedOf returns the trackedConn under nc, a connection go-smtp holds
// (ours, or a *tls.Conn over ours); nil if there is none.
func trackedOf(nc net.Conn) *trackedConn {
	if t, ok := nc.(*tls.Conn); ok {
		nc = t.NetConn()
	}
	tc, _ := nc.(*trackedConn)
	return tc
}

// Close stops tracking c, gives back its connection slot and closes it;
// it may be called more than once. Every way a connection ends comes here
// (go-smtp closes its *tls.Conn, which closes this one): the slot goes
// back before the socket closes, so a client that saw the close may
// connect again at once.
func (c *trackedConn) Close() error {
	c.srv.removeConn(c)
	if c.slot != "" {
		c.release.Do(func() { c.srv.cfg.Limits.Store.Release(c.slot) })
	}
	c.closeDone.Do(func() { close(c.done) })
	return c.Conn.Close()
}

// Read reads from the socket, through a read-ahead buffer (one of
// dataBuffers, held only while it has bytes in it, so idle connections
// cost nothing) while a body is received (bulk). go-smtp reads through a
// 4 KiB bufio.Reader, so a body
// would take a read system call every 4 KiB; with the read-ahead it takes
// one per 32 KiB, or per segment the client's writes arrive in. Bytes
// read ahead are always handed on first and in order, whatever bulk says
// by then, so the stream go-smtp sees is the socket's. Bulk is off outside
// a body (with BDAT, from the first chunk to the end of the last), so what
// a client sends in clear after STARTTLS is not read ahead: go-smtp
// discards it (RFC 3207 section 4.2, TestSTARTTLSResets).
// Only a client that pipelines STARTTLS and more behind a message's end
// gets that "more" read ahead and fed to the TLS handshake, which fails
// on it: never read as a command.
//
// Read marks the first failed read. go-smtp v0.25.1 ends a BDAT chunk that
// the client cut short, by closing the connection, as if it were whole:
// it copies the chunk from an io.LimitReader, which reports a short read
// at EOF as success. session.Data checks readFailed before it journals,
// so such a message is dropped, not delivered truncated.
func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.readOn(p)
	if n > 0 {
		c.last = p[n-1]
	}
	return n, err
}

func (c *trackedConn) readOn(p []byte) (int, error) {
	if cp := c.capture; cp != nil {
		c.capture = nil
		// go-smtp asks for bytes with its reader at the start of a line
		// only if what it was last handed ends one; after a "." or ".\r"
		// it had buffered, it is in the middle of a dot, and reads on.
		if c.last == '\n' {
			if err := cp.run(c); err != nil {
				return 0, err
			}
		}
	}
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	if c.endless {
		for i := range p {
			p[i] = 'x'
		}
		return len(p), nil
	}
	if c.ahead == nil && c.aheadErr == nil && (!c.bulk.Load() || len(p) >= dataBuffer) {
		return c.read(p)
	}
	b, err := c.nextRaw(0)
	if err != nil {
		return 0, err
	}
	n := copy(p, b)
	c.consumed(n)
	return n, nil
}

// nextRaw returns the next bytes of the stream, not yet handed on: what
// was read ahead, else a read from the socket (with a deadline timeout
// away, if not 0) into a read-ahead buffer. consumed says how many were
// used; the rest is handed on later.
func (c *trackedConn) nextRaw(timeout time.Duration) ([]byte, error) {
	if c.ahead != nil {
		return (*c.ahead)[c.aheadPos:c.aheadEnd], nil
	}
	if err := c.aheadErr; err != nil {
		c.aheadErr = nil
		return nil, err
	}
	if timeout > 0 {
		c.Conn.SetReadDeadline(time.Now().Add(timeout))
	}
	bp := dataBuffers.Get().(*[]byte)
	m, err := c.read(*bp)
	if m == 0 {
		dataBuffers.Put(bp)
		if err == nil {
			err = io.ErrNoProgress
		}
		return nil, err
	}
	c.ahead, c.aheadPos, c.aheadEnd, c.aheadErr = bp, 0, m, err
	return (*bp)[:m], nil
}

// consumed marks n bytes of the read-ahead handed on, and lets the buffer
// go when they were the last (an error read with them stays in aheadErr).
func (c *trackedConn) consumed(n int) {
	c.aheadPos += n
	if c.aheadPos >= c.aheadEnd {
		dataBuffers.Put(c.ahead)
		c.ahead = nil
	}
}

func (c *trackedConn) read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.readFailed.Store(true)
	}
	return n, err
}

// closed is closed once c is; nil (never ready) for a nil c.
func (c *trackedConn) closed() <-chan struct{} {
	if c == nil {
		return nil
	}
	return c.done
}

// begin opens a transaction; false when the connection is closing or the
// server draining. Runs on the connection's goroutine (session.Mail).
func (c *trackedConn) begin() bool {
	if c == nil {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing || c.srv.draining.Load() {
		return false
	}
	c.busy = true
	return true
}

// end closes a transaction. While the server drains, the connection is
// told 421 and closed here, after go-smtp wrote the reply that ended the
// transaction. Runs on the connection's goroutine (session.Reset), under
// go-smtp's connection lock: it must not call into go-smtp.
func (c *trackedConn) end() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.busy = false
	bye := c.srv.draining.Load() && !c.closing
	c.closing = c.closing || bye
	c.mu.Unlock()
	if bye {
		c.bye(c.srv.errShutdown)
	}
}

// setTLS records the TLS layer over c once its handshake is done, so that
// a 421 goes through it. Runs on the connection's goroutine.
func (c *trackedConn) setTLS(t *tls.Conn) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.tls = t
	c.mu.Unlock()
}

// startedTLS is STARTTLS done: go-smtp ended the session, and with it a
// transaction open before STARTTLS (without a Reset), so this is end too.
// Runs on the connection's goroutine (session.Logout), not under
// go-smtp's connection lock.
func (c *trackedConn) startedTLS(t *tls.Conn) {
	c.setTLS(t)
	c.end()
}

// finish marks a connection that go-smtp is closing (session.Logout).
func (c *trackedConn) finish() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.busy, c.closing = false, true
	c.mu.Unlock()
}

// drain is Shutdown's request to c: idle, it is told 421 and closed now
// (on a goroutine bounded by byeTimeout, so one slow client does not hold
// up the others); busy, end does it when the transaction ends.
func (c *trackedConn) drain() {
	c.mu.Lock()
	bye := !c.busy && !c.closing
	c.closing = c.closing || bye
	c.mu.Unlock()
	if bye {
		go c.bye(c.srv.errShutdown)
	}
}

// bye writes e (a 421) and closes c. Callers make sure it runs once.
func (c *trackedConn) bye(e *smtp.SMTPError) {
	if w := c.replyWriter(); w != nil {
		c.SetWriteDeadline(time.Now().Add(byeTimeout))
		io.WriteString(w, replyLine(e.Code, e.EnhancedCode, e.Message))
	}
	c.Close()
}

// replyWriter is where a reply to the client goes: the TLS layer once its
// handshake is done, else the connection itself. It is nil on an implicit
// TLS connection whose handshake may still run (no session yet): a reply
// in clear would be garbage to the client, and writing through TLS would
// wait for that handshake, so such a connection is closed without one.
// During a STARTTLS handshake the 421 goes out in clear and breaks the
// handshake, which is as good as closing.
func (c *trackedConn) replyWriter() io.Writer {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.tls != nil:
		return c.tls
	case c.implicitTLS:
		return nil
	}
	return c.Conn
}
