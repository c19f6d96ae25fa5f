package outbound

// maxPipelined is the most recipients sent in one pipelined group. The
// group is written whole before any reply is read, so its replies must fit
// in the socket buffers, or a server that stops reading while its replies
// back up would stall both sides until the deadline (RFC 2920 section 3.1
// warns of this). A larger transaction goes lock-step. RFC 5321 section
// 4.5.3.1.8 has servers take at least 100 recipients.
const maxPipelined = 100

// pipelining reports whether tx goes as one pipelined group (RFC 2920):
// the server offers PIPELINING and tx has a recipient that can be sent.
func (c *Conn) pipelining(tx Tx) bool {
	if c.lockStep || !c.has("PIPELINING") || len(tx.Rcpts) > maxPipelined {
		return false
	}
	for _, r := range tx.Rcpts {
		if !badAddr(r.Addr) {
			return true
		}
	}
	return false
}

// sendPipelined writes MAIL, every RCPT and DATA in one write, then reads
// the replies in order (RFC 2920 section 3.1: DATA ends the group). The
// replies mean what they mean in lock-step, except that they all arrive:
//
//   - after a rejected MAIL, every recipient has MAIL's reply and the RCPT
//     replies are read only to reach DATA's;
//   - a 354 to DATA with nothing to deliver (MAIL or every RCPT rejected)
//     gets a lone "." (RFC 2920 section 3.1: the client "SHOULD send a
//     single dot"), whose reply is read and ignored; the transaction failed
//     and RSET follows;
//   - a rejected DATA with recipients accepted applies to them, as in
//     lock-step, and otherwise is expected and ignored.
//
// Deadlines: the write and MAIL's reply have Timeouts.MailFrom, each RCPT
// reply Timeouts.RcptTo from the reply before it, and DATA's reply, the
// body and the final reply(s) share Timeouts.Data, so the group as a whole
// is bounded by their sum, as lock-step is.
func (t *txn) sendPipelined() (bool, *Error) {
	c := t.c
	mailErr, e := t.envelopeReplies(func() error {
		rset := c.queueEnvelope(t.tx)
		c.wire.queue("DATA")
		if err := c.wire.flush(); err != nil {
			return err
		}
		return c.mailReply(rset)
	})
	if e != nil {
		return false, e
	}
	if mailErr == nil && len(t.accepted) > 0 {
		return t.data(t.read354)
	}
	return false, t.abandonData()
}

// queueEnvelope queues the start of a pipelined group: the RSET a failed
// transaction left pending (reporting whether there was one), MAIL and
// the RCPT of each recipient with a usable address.
func (c *Conn) queueEnvelope(tx Tx) (rset bool) {
	rset = c.queueReset()
	c.wire.queue(c.mailLine(tx))
	for _, r := range tx.Rcpts {
		if !badAddr(r.Addr) {
			c.wire.queue(c.rcptLine(r))
		}
	}
	return rset
}

// mailReply reads the reply to the queued RSET, if there was one, then
// MAIL's.
func (c *Conn) mailReply(rset bool) error {
	if rset {
		if err := c.readReset(); err != nil {
			return err
		}
	}
	_, err := c.wire.reply(250)
	return err
}

// envelopeReplies runs mail, the step that ends with MAIL's reply, under
// the MAIL timeout, then reads the RCPT replies. A refused MAIL fails
// every recipient (mailErr); a fatal error ends the transaction (e).
func (t *txn) envelopeReplies(mail func() error) (mailErr, e *Error) {
	c := t.c
	mailErr = c.step(t.ctx, StageMail, c.opts.Timeouts.MailFrom, mail)
	if mailErr != nil {
		t.fill(mailErr.Reply())
		if mailErr.fatal() {
			return mailErr, mailErr
		}
	}
	return mailErr, t.rcptReplies(mailErr != nil)
}

// rcptReplies reads the reply to each RCPT sent. After a rejected MAIL
// (mailFailed) they change nothing, unless one ends the connection.
func (t *txn) rcptReplies(mailFailed bool) *Error {
	c := t.c
	for i, r := range t.tx.Rcpts {
		if badAddr(r.Addr) {
			if !mailFailed {
				t.set(i, badRcpt)
			}
			continue
		}
		e := c.step(t.ctx, StageRcpt, c.opts.Timeouts.RcptTo, func() error {
			_, err := c.wire.reply(25)
			return err
		})
		switch {
		case e != nil && e.fatal():
			if !mailFailed {
				t.set(i, e.Reply())
			}
			return e
		case mailFailed:
		case e == nil:
			t.accepted = append(t.accepted, i)
		default:
			t.set(i, e.Reply())
		}
	}
	return nil
}

// read354 reads the reply to the pipelined DATA.
func (t *txn) read354() error {
	_, err := t.c.wire.reply(354)
	return err
}

// abandonData reads the reply to a pipelined DATA when there is nothing to
// deliver. A 354 gets a lone "."; the server, having no recipient, rejects
// the empty message (and were it to take it, it would reach no one). It
// returns an *Error only when the connection died.
func (t *txn) abandonData() *Error {
	c := t.c
	e := c.step(t.ctx, StageData, c.opts.Timeouts.Data, func() error {
		if err := t.read354(); err != nil {
			return err
		}
		_, err := c.wire.cmd(250, ".")
		return err
	})
	if e != nil && e.fatal() {
		return e
	}
	return nil
}
