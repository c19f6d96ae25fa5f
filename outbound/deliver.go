package outbound

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-smtp"

	"github.com/mtad/mtad/messages"
)

// Rcpt is one recipient of a transaction.
type Rcpt struct {
	Addr   string
	Notify messages.Notify
	ORcpt  string // "addr-type;address" (xtext decoded), as in messages.Recipient
}

// Tx is one transaction: an envelope and a body.
type Tx struct {
	From  string // reverse-path without brackets; "" is the null reverse-path
	Rcpts []Rcpt

	// Body is the message as stored, read once, as DATA is sent; nil is
	// an empty body. Lines may end in CRLF or bare LF; both are sent as
	// CRLF, dot-stuffed. Size is its size for SIZE= (RFC 1870) and the
	// check against the server's limit; when not 0 it must be exact: a
	// body that reads short or long is treated as a read failure. 0 sends
	// no SIZE= and checks nothing.
	Body io.Reader
	Size int64

	BodyType messages.BodyType
	SMTPUTF8 bool // also implied by a non-ASCII address
	Ret      messages.Ret
	EnvID    string

	// RequireTLS asks for REQUIRETLS (RFC 8689): the transaction goes only
	// over a TLS session whose peer is Verified, to a server that
	// advertises REQUIRETLS, and MAIL carries the parameter. Final delivery
	// (LMTP to the local store) is outside RFC 8689; whether to set it
	// there is the caller's call.
	RequireTLS bool
}

// Deliver runs one transaction and returns one reply per recipient, in
// tx.Rcpts order:
//
//   - a reply to MAIL that rejects applies to every recipient;
//   - a reply to RCPT that rejects is that recipient's; when none was
//     accepted no DATA is sent;
//   - the reply after DATA applies to every accepted recipient; with LMTP
//     each accepted recipient gets its own (RFC 2033 section 4.2);
//   - a transaction the server cannot take as it stands is refused here,
//     before anything is sent: REQUIRETLS over a session that is not TLS,
//     not Verified, or to a server that does not advertise it (550 5.7.30,
//     RFC 8689 section 5), over its SIZE (552 5.3.4), an 8-bit or binary
//     body without 8BITMIME or BDAT (554 5.6.3), SMTPUTF8 needed but not
//     offered (553 5.6.7).
//
// A failed transaction is followed by RSET, so the next one starts clean:
// with a server that pipelines, in front of the next transaction's MAIL (no
// round trip of its own); otherwise at once, with EHLO again.
// Deliver returns a non-nil *Error only when the connection is dead: it
// broke, timed out, got a 421, ctx ended, it was dead already, or reading
// tx.Body failed (Class journal): the message was cut short, so the
// connection is closed without the final dot and the server discards it. Every
// recipient without a definite reply then gets the error's temporary reply.
func (c *Conn) Deliver(ctx context.Context, tx Tx) ([]messages.Reply, error) {
	t := &txn{c: c, ctx: ctx, tx: tx,
		replies: make([]messages.Reply, len(tx.Rcpts)), done: make([]bool, len(tx.Rcpts))}
	if e := t.deliver(); e != nil {
		t.fill(e.Reply())
		return t.replies, e
	}
	t.fill(messages.Reply{Text: "no reply for this recipient", Class: ClassProtocol})
	return t.replies, nil
}

// txn is the state of one Deliver call.
type txn struct {
	c        *Conn
	ctx      context.Context
	tx       Tx
	replies  []messages.Reply
	done     []bool // replies[i] is definite
	accepted []int  // indexes of the recipients accepted at RCPT
}

func (t *txn) deliver() *Error {
	if t.c.dead != nil {
		return &Error{Temporary: true, Stage: StageMail, Class: ClassConnection,
			Target: t.c.target.String(), Message: "connection closed", Err: ErrClosed}
	}
	if len(t.tx.Rcpts) == 0 {
		return nil
	}
	if r, refused := t.c.refuse(t.tx); refused {
		t.fill(r)
		return nil
	}
	stop := t.c.watch(t.ctx, StageData)
	e := t.run()
	if s := stop(); e == nil {
		e = s
	}
	return e
}

// run sends the transaction, then RSET if it failed. It returns an *Error
// only when the connection died.
func (t *txn) run() *Error {
	ok, e := t.send()
	if e != nil && e.fatal() {
		return e
	}
	if !ok {
		if t.c.has("PIPELINING") && !t.c.lockStep {
			// Sent in front of the next transaction's MAIL, in the same
			// write: no round trip of its own.
			t.c.resetPending = true
			return nil
		}
		return t.c.reset(t.ctx)
	}
	return nil
}

// send runs MAIL, RCPT and DATA, pipelined when the server offers it, or
// MAIL, RCPT and BDAT when it also offers CHUNKING. ok
// reports a transaction that ended with a 2xx final reply (for every
// recipient, with LMTP).
func (t *txn) send() (ok bool, e *Error) {
	if t.c.chunked(t.tx) {
		return t.sendChunked() // a pending RSET goes in front of its MAIL
	}
	if t.c.pipelining(t.tx) {
		return t.sendPipelined() // likewise
	}
	if t.c.resetPending {
		t.c.resetPending = false
		if e := t.c.reset(t.ctx); e != nil {
			return false, e
		}
	}
	if e := t.mail(); e != nil {
		return false, e
	}
	if e := t.rcpts(); e != nil {
		return false, e
	}
	if len(t.accepted) == 0 {
		return false, nil
	}
	return t.data(t.c.startData)
}

func (t *txn) mail() *Error {
	c := t.c
	e := c.step(t.ctx, StageMail, c.opts.Timeouts.MailFrom, func() error {
		_, err := c.wire.cmd(250, c.mailLine(t.tx))
		return err
	})
	if e != nil {
		t.fill(e.Reply())
	}
	return e
}

// rcpts sends RCPT for each recipient, stopping only if the connection dies.
func (t *txn) rcpts() *Error {
	c := t.c
	for i, r := range t.tx.Rcpts {
		if badAddr(r.Addr) {
			t.set(i, badRcpt)
			continue
		}
		e := c.step(t.ctx, StageRcpt, c.opts.Timeouts.RcptTo, func() error {
			_, err := c.wire.cmd(25, c.rcptLine(r))
			return err
		})
		if e == nil {
			t.accepted = append(t.accepted, i)
			continue
		}
		t.set(i, e.Reply())
		if e.fatal() {
			return e
		}
	}
	return nil
}

var badRcpt = refusal(553, "5.1.3", ClassAddress, "recipient address cannot be sent")

// startData sends DATA and reads the 354 (lock-step).
func (c *Conn) startData() error {
	_, err := c.wire.cmd(354, "DATA")
	return err
}

// data gets the 354 from start, sends the body and reads the final reply:
// one that applies to every accepted recipient, or with LMTP one per
// accepted recipient (RFC 2033 section 4.2). A 421 closes the connection.
// One deadline, Timeouts.Data, covers it all.
func (t *txn) data(start func() error) (bool, *Error) {
	c := t.c
	var final []lmtpReply // LMTP: the replies that arrived
	var text string
	e := c.step(t.ctx, StageData, c.opts.Timeouts.Data, func() error {
		if err := start(); err != nil {
			return err
		}
		if err := c.wire.body(t.tx.body(), t.tx.Size); err != nil {
			return err
		}
		if c.opts.LMTP {
			return t.readLMTP(&final)
		}
		var err error
		text, err = c.wire.reply(250)
		return err
	})
	if c.opts.LMTP && final != nil {
		return t.lmtpResults(final, e)
	}
	return t.final(text, e)
}

// final gives every accepted recipient the reply to the end of the
// message: text of its 250, or e.
func (t *txn) final(text string, e *Error) (bool, *Error) {
	r := parseReply(250, text, "")
	if e != nil {
		r = e.Reply()
	}
	for _, i := range t.accepted {
		t.set(i, r)
	}
	return e == nil, e
}

// lmtpReply is one recipient's reply after DATA: text of a 2xx, or a
// rejection.
type lmtpReply struct {
	text string
	err  *smtp.SMTPError
}

// readLMTP reads one reply per accepted recipient, in order, into final. It
// returns an error only when a reply is missing.
func (t *txn) readLMTP(final *[]lmtpReply) error {
	*final = make([]lmtpReply, 0, len(t.accepted))
	for range t.accepted {
		text, err := t.c.wire.reply(250)
		se, isReply := err.(*smtp.SMTPError)
		if err != nil && !isReply {
			return err
		}
		*final = append(*final, lmtpReply{text: text, err: se})
	}
	return nil
}

// lmtpResults gives each accepted recipient whose reply arrived that
// reply; the others keep none, and Deliver gives them e's.
func (t *txn) lmtpResults(final []lmtpReply, e *Error) (bool, *Error) {
	ok := e == nil
	for k, r := range final {
		i := t.accepted[k]
		if r.err == nil {
			t.set(i, parseReply(250, r.text, ""))
			continue
		}
		ok = false
		if e421 := t.lmtpReject(i, r.err); e421 != nil && e == nil {
			e = e421
		}
	}
	return ok, e
}

// lmtpReject records one recipient's rejection after DATA; a 421 closes
// the connection and is returned.
func (t *txn) lmtpReject(i int, se *smtp.SMTPError) *Error {
	t.set(i, smtpReply(se, StageData))
	if se.Code != 421 {
		return nil
	}
	e := replyError(StageData, smtpReply(se, StageData), se)
	e.Target = t.c.target.String()
	return t.c.kill(e)
}

func (t *txn) set(i int, r messages.Reply) {
	t.replies[i], t.done[i] = r, true
}

// fill gives r to every recipient without a definite reply.
func (t *txn) fill(r messages.Reply) {
	for i := range t.replies {
		if !t.done[i] {
			t.set(i, r)
		}
	}
}

// refuse checks tx against the server's extensions before anything is
// sent; refused means every recipient gets r.
func (c *Conn) refuse(tx Tx) (r messages.Reply, refused bool) {
	if tx.RequireTLS {
		if gap := c.requireTLSGap(); gap != "" {
			return refusal(550, "5.7.30", ClassTLS, "REQUIRETLS support required: "+gap), true
		}
	}
	if limit, ok := c.maxSize(); ok && tx.size() > limit {
		return refusal(552, "5.3.4", ClassSize, fmt.Sprintf(
			"message size %d exceeds the limit of %d of %s", tx.size(), limit, c.target)), true
	}
	switch {
	case tx.BodyType == messages.BodyBinaryMIME:
		return refusal(554, "5.6.3", ClassUnsupported, "binary body needs BDAT, not supported here"), true
	case tx.BodyType == messages.Body8BitMIME && !c.has("8BITMIME"):
		return refusal(554, "5.6.3", ClassUnsupported, c.target.String()+" does not offer 8BITMIME"), true
	case needsUTF8(tx) && !c.has("SMTPUTF8"):
		return refusal(553, "5.6.7", ClassUnsupported, c.target.String()+" does not offer SMTPUTF8"), true
	case badAddr(tx.From):
		return refusal(553, "5.1.7", ClassAddress, "sender address cannot be sent"), true
	}
	return messages.Reply{}, false
}

func refusal(code int, enhanced, class, text string) messages.Reply {
	return messages.Reply{Code: code, Enhanced: enhanced, Text: text, Class: class}
}

// orcpt splits "type;address". An rfc822 address that is not printable
// ASCII goes as utf-8 (RFC 6533 section 3); an unknown type is left out.
func orcpt(s string) (typ, addr string) {
	typ, addr, ok := strings.Cut(s, ";")
	switch {
	case !ok || addr == "":
		return "", ""
	case strings.EqualFold(typ, "rfc822") && printableASCII(addr):
		return orcptRFC822, addr
	case strings.EqualFold(typ, "rfc822"), strings.EqualFold(typ, "utf-8"):
		return orcptUTF8, addr
	}
	return "", ""
}

// ORCPT address types, spelled as go-smtp's client sent them.
const (
	orcptRFC822 = "RFC822"
	orcptUTF8   = "UTF-8"
)

func (tx Tx) size() int64 { return max(tx.Size, 0) }

func (tx Tx) body() io.Reader {
	if tx.Body == nil {
		return strings.NewReader("")
	}
	return tx.Body
}

func needsUTF8(tx Tx) bool {
	if tx.SMTPUTF8 || !ascii(tx.From) {
		return true
	}
	for _, r := range tx.Rcpts {
		if !ascii(r.Addr) {
			return true
		}
	}
	return false
}

// badAddr reports an address that would break the command line.
func badAddr(s string) bool { return strings.ContainsAny(s, "\r\n\x00") }

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
