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

// Read marks the first failed read. go-smtp v0.25.1 ends a BDAT chunk that
// the client cut short, by closing the connection, as if it were whole:
// it copies the chunk from an io.LimitReader, which reports a short read
// at EOF as success. session.Data checks readFailed before it journals,
// so such a message is dropped, not delivered truncated.
func (c *trackedConn) Read(p []byte) (int, error) {
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
