package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// Network bounds of the injector.
const (
	dialTimeout       = 10 * time.Second
	commandTimeout    = time.Minute
	submissionTimeout = 2 * time.Minute // the 250 after the data waits for a synced journal write
	maxDialFailures   = 5               // in a row, then the session gives up
	redialPause       = 200 * time.Millisecond
)

// injector sends the messages of a plan to target over conc concurrent
// SMTP sessions. Each session keeps its connection for transaction after
// transaction (MAIL, RCPT..., DATA; RSET only after a refusal) and takes
// the next message id from a shared counter, so the run ends when the ids
// below limit run out or ctx ends.
type injector struct {
	l      *ledger
	gen    *generator
	target string
	conc   int
	limit  int          // ids 0..limit-1 are sent
	next   atomic.Int64 // next message id to send
}

// inject runs the injection phase of every message of l's plan to its end
// and records its start and end in l.
func inject(ctx context.Context, l *ledger, target string, conc int) {
	injectN(ctx, l, target, conc, l.plan.n)
}

// injectN is inject for the first n messages of the plan only; the rest
// are left to the caller (a probe, say).
func injectN(ctx context.Context, l *ledger, target string, conc, n int) {
	in := &injector{l: l, gen: newGenerator(l.plan), target: target, conc: conc, limit: min(n, l.plan.n)}
	l.injectStart.Store(l.clock.now())
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() { in.session(ctx) })
	}
	wg.Wait()
	l.injectEnd.Store(l.clock.now())
}

// take hands out the next message id; ok is false when none are left.
func (in *injector) take() (id int, ok bool) {
	id = int(in.next.Add(1) - 1)
	return id, id < in.limit
}

// session is one client connection's loop, redialling after a broken
// connection. It runs on its own goroutine, owned by inject.
func (in *injector) session(ctx context.Context) {
	var c *client
	defer func() {
		if c != nil {
			c.quit()
		}
	}()
	buf := make([]byte, 0, in.l.plan.size+minSize)
	slots := make([]int, 0, in.l.plan.rcpts)
	for ctx.Err() == nil {
		if c == nil {
			if c = in.connect(ctx); c == nil {
				return
			}
		}
		id, ok := in.take()
		if !ok {
			return
		}
		if err := in.send(c.Client, id, buf, slots); err != nil {
			c.close()
			c = nil
		}
	}
}

// connect dials the target until it answers EHLO; it gives up (nil) after
// maxDialFailures failures in a row or when ctx ends.
func (in *injector) connect(ctx context.Context) *client {
	for i := range maxDialFailures {
		if i > 0 && !pause(ctx, redialPause) {
			break
		}
		c, err := in.dial(ctx)
		if err == nil {
			return c
		}
		in.l.connFailures.Add(1)
		in.l.noteError(fmt.Errorf("connect to %s: %w", in.target, err))
	}
	return nil
}

// client is an SMTP client whose connection is closed when the run's
// context ends, which unblocks any command in flight.
type client struct {
	*smtp.Client
	stop func() bool // unregisters the context hook
}

func (in *injector) dial(ctx context.Context) (*client, error) {
	d := net.Dialer{Timeout: dialTimeout}
	conn, err := d.DialContext(ctx, "tcp", in.target)
	if err != nil {
		return nil, err
	}
	c := &client{Client: smtp.NewClient(conn)}
	c.CommandTimeout = commandTimeout
	c.SubmissionTimeout = submissionTimeout
	c.stop = context.AfterFunc(ctx, func() { conn.Close() })
	if err := c.Hello(ehloName); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// quit ends the session politely; the server's answer does not matter.
func (c *client) quit() {
	_ = c.Quit()
	c.close()
}

// close drops the connection.
func (c *client) close() {
	c.stop()
	_ = c.Close()
}

// send runs one transaction for message id and records its outcome. A
// refusal is an outcome; the error returned means the connection is no
// longer usable.
func (in *injector) send(c *smtp.Client, id int, buf []byte, slots []int) error {
	in.l.injected.Add(1)
	if err := c.Mail(senderAddr, &smtp.MailOptions{Size: int64(in.l.plan.size)}); err != nil {
		return in.refused(c, err)
	}
	slots, err := in.rcpts(c, id, slots[:0])
	if err != nil {
		return in.refused(c, err)
	}
	if len(slots) == 0 {
		in.l.rejected.Add(1)
		return c.Reset()
	}
	sent := time.Now() // X-Bench-Sent: just before DATA
	msg, err := in.gen.build(buf, id, sent)
	if err != nil {
		return in.refused(c, err)
	}
	if err := in.data(c, msg); err != nil {
		return in.refused(c, err)
	}
	in.l.accept(id, slots)
	return nil
}

// rcpts sends the RCPTs of message id and returns the accepted slots. Its
// error is a broken connection; refused recipients are only counted.
func (in *injector) rcpts(c *smtp.Client, id int, slots []int) ([]int, error) {
	p := in.l.plan
	for j := range p.rcpts {
		slot := id*p.rcpts + j
		err := c.Rcpt(p.addr(slot), nil)
		var se *smtp.SMTPError
		switch {
		case err == nil:
			in.l.rcptsAccepted.Add(1)
			slots = append(slots, slot)
		case errors.As(err, &se):
			in.l.rcptsRejected.Add(1)
		default:
			return slots, err
		}
	}
	return slots, nil
}

// data sends DATA, the message and the final dot, and waits for the reply.
func (in *injector) data(c *smtp.Client, msg []byte) error {
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	return w.Close()
}

// refused counts a failed transaction. An SMTP reply is a rejection, after
// which RSET makes sure no transaction is left open (RFC 5321 section
// 4.1.1.5: RSET is always allowed); anything else is an error and breaks the
// connection.
func (in *injector) refused(c *smtp.Client, err error) error {
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		in.l.errors.Add(1)
		in.l.noteError(err)
		return err
	}
	in.l.rejected.Add(1)
	in.l.noteRejection(se)
	return c.Reset()
}

// pause waits for d or the end of ctx; it reports whether to go on.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
