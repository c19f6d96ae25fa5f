package maildir

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/mtad/mtad/messages"
)

// Store is a tree of Maildir mailboxes, <Root>/<domain>/<localpart>/.
// Fields are read-only once Deliver has been called.
type Store struct {
	Root     string // the tree's top directory; must not be empty
	Hostname string // for unique file names; os.Hostname() when empty
}

// Rcpt is one recipient of a delivery.
type Rcpt struct {
	Addr string // local@domain, without angle brackets
}

// Deliver writes body, with a Return-Path and a Delivered-To header line in
// front, into the mailbox of each recipient, and returns one reply per
// recipient in order. See the package documentation for what each reply
// means and what the error holds. It blocks on disk and may be called
// concurrently.
func (s *Store) Deliver(ctx context.Context, from string, rcpts []Rcpt, body []byte) ([]messages.Reply, error) {
	replies := make([]messages.Reply, len(rcpts))
	if reply, err := s.refuseAll(from); err != nil {
		for i := range replies {
			replies[i] = reply
		}
		return replies, err
	}
	d := &delivery{store: s, from: from, body: body, crlf: endsCRLF(body),
		host: s.hostname(), seen: make(map[string]messages.Reply)}
	var errs []error
	for i, r := range rcpts {
		reply, err := d.rcpt(ctx, r.Addr)
		replies[i] = reply
		if err != nil {
			errs = append(errs, err)
		}
	}
	if d.skipped > 0 {
		errs = append(errs, fmt.Errorf("maildir: %d recipients not attempted: %w", d.skipped, context.Cause(ctx)))
	}
	return replies, errors.Join(errs...)
}

// refuseAll returns the reply every recipient gets, and why, when the call
// as a whole cannot be served; a nil error when it can.
func (s *Store) refuseAll(from string) (messages.Reply, error) {
	if s.Root == "" {
		return replyIOError, errNoRoot
	}
	if hasControl(from) { // it would split the Return-Path line
		return replyBadSender, fmt.Errorf("maildir: sender %q has a control character", from)
	}
	return messages.Reply{}, nil
}

func (s *Store) hostname() string {
	if s.Hostname != "" {
		return s.Hostname
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "localhost"
}

// delivery is the state of one Deliver call; it belongs to that call's
// goroutine.
type delivery struct {
	store   *Store
	from    string
	body    []byte
	crlf    bool
	host    string
	seen    map[string]messages.Reply // mailbox directory -> its reply
	skipped int                       // recipients not attempted because ctx was done
}

// rcpt delivers one copy to addr's mailbox, unless this call already did.
func (d *delivery) rcpt(ctx context.Context, addr string) (messages.Reply, error) {
	mbox, ok := d.store.mailboxDir(addr)
	if !ok {
		return replyBadAddress, nil
	}
	if reply, done := d.seen[mbox]; done {
		return reply, nil
	}
	if ctx.Err() != nil {
		d.skipped++
		return replyInterrupted, nil
	}
	reply, err := d.deliverTo(mbox, addr)
	d.seen[mbox] = reply
	if err != nil {
		return reply, &Error{Rcpt: addr, Reply: reply, Err: err}
	}
	return reply, nil
}

// deliverTo writes one copy into the mailbox directory mbox.
func (d *delivery) deliverTo(mbox, addr string) (messages.Reply, error) {
	err := checkMailbox(mbox)
	if errors.Is(err, errNoMailbox) {
		return replyNoMailbox, nil
	}
	if err == nil {
		err = ensureSubdirs(mbox)
	}
	if err != nil {
		return classify(err), err
	}
	head := header(d.from, addr, d.crlf)
	cleanup, err := writeMessage(mbox, d.host, head, d.body)
	if err != nil {
		return classify(err), errors.Join(err, cleanup)
	}
	return replyDelivered, cleanup
}

// header returns the lines Deliver puts in front of the body (RFC 5321
// section 4.4: the reverse-path in angle brackets, "<>" when null).
func header(from, rcpt string, crlf bool) []byte {
	eol := "\n"
	if crlf {
		eol = "\r\n"
	}
	return []byte("Return-Path: <" + from + ">" + eol + "Delivered-To: " + rcpt + eol)
}

// endsCRLF reports whether the body's first line ends with CRLF; a body
// without a line end is taken as CRLF, the form mtad stores.
func endsCRLF(body []byte) bool {
	i := bytes.IndexByte(body, '\n')
	return i < 0 || (i > 0 && body[i-1] == '\r')
}
