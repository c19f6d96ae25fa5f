package submission

import (
	"io"

	"github.com/emersion/go-smtp"
	"net"
	"sync"
	"time"
)

// byeTimeout bounds the write of the 421 sent when a connection is closed
// by Shutdown, so a client that does not read cannot hold it up.
const byeTimeout = 5 * time.Second

// trackedConn is a client connection as the Server tracks it for Shutdown:
// busy while a transaction is open, from an accepted MAIL to the end of
// DATA, RSET or a new EHLO.
type trackedConn struct {
	net.Conn
	srv *Server

	mu      sync.Mutex // guards busy and closing
	busy    bool
	closing bool // told 421, closed or logged out: no new transaction
}

// Close stops tracking c and closes it; it may be called more than once.
func (c *trackedConn) Close() error {
	c.srv.removeConn(c)
	return c.Conn.Close()
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

// bye writes 421 4.3.2 and closes c. Callers make sure it runs once.
func (c *trackedConn) bye(e *smtp.SMTPError) {
	c.SetWriteDeadline(time.Now().Add(byeTimeout))
	io.WriteString(c.Conn, replyLine(e.Code, e.EnhancedCode, e.Message))
	c.Close()
}
