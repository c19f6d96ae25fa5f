package maildir

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/mtad/mtad/messages"
)

// peekSize is how much of the body Deliver reads ahead to see how its
// first line ends, and the size of its read buffer.
const peekSize = 32 << 10

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

// Deliver writes the body read from body, size bytes exactly, with a
// Return-Path and a Delivered-To header line in front, into the mailbox of
// each recipient, and returns one reply per recipient in order. See the
// package documentation for what each reply means and what the error
// holds. It blocks on disk and may be called concurrently.
//
// body is read once, into the first copy; later copies are read back from
// that copy's file. A body that fails to read, or reads short or long of
// size, gives the recipients not yet served 451 4.3.0, Class journal.
func (s *Store) Deliver(ctx context.Context, from string, rcpts []Rcpt, body io.Reader, size int64) ([]messages.Reply, error) {
	replies := make([]messages.Reply, len(rcpts))
	if reply, err := s.refuseAll(from); err != nil {
		for i := range replies {
			replies[i] = reply
		}
		return replies, err
	}
	br := bufio.NewReaderSize(body, peekSize)
	first, _ := br.Peek(peekSize) // a read error comes back when the body is copied
	d := &delivery{store: s, from: from, stream: &exactReader{r: br, left: size}, size: size,
		crlf: endsCRLF(first), host: s.hostname(), seen: make(map[string]messages.Reply)}
	defer d.close()
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
	store    *Store
	from     string
	stream   *exactReader // the body, until the first copy read it
	streamed bool         // a copy has read (some of) stream
	readErr  error        // why reading stream failed, a *readError
	size     int64
	copy     *os.File // a complete, synced copy to read the body back from
	copyOff  int64    // where the body starts in copy
	crlf     bool
	host     string
	seen     map[string]messages.Reply // mailbox directory -> its reply
	skipped  int                       // recipients not attempted because ctx was done
}

// body returns a reader of the body for the next copy: the stream for the
// first, then the first complete copy.
func (d *delivery) body() (io.Reader, error) {
	switch {
	case d.copy != nil:
		return io.NewSectionReader(d.copy, d.copyOff, d.size), nil
	case d.readErr != nil:
		return nil, d.readErr
	case d.streamed:
		return nil, errBodyGone
	}
	d.streamed = true
	return d.stream, nil
}

// keep takes f, a complete copy whose body starts at off, as the source of
// later copies, or closes it when there is one already.
func (d *delivery) keep(f *os.File, off int) {
	if f == nil {
		return
	}
	if d.copy != nil {
		f.Close()
		return
	}
	d.copy, d.copyOff = f, int64(off)
}

func (d *delivery) close() {
	if d.copy != nil {
		d.copy.Close()
	}
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
	body, err := d.body()
	if err != nil {
		return classify(err), err
	}
	head := header(d.from, addr, d.crlf)
	f, cleanup, err := writeMessage(mbox, d.host, head, body, d.size)
	d.keep(f, len(head))
	if re := (*readError)(nil); errors.As(err, &re) {
		d.readErr = re
	}
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
// without a line end in its first peekSize bytes is taken as CRLF, the form
// mtad stores.
func endsCRLF(body []byte) bool {
	i := bytes.IndexByte(body, '\n')
	return i < 0 || (i > 0 && body[i-1] == '\r')
}

// exactReader reads a body that must be left bytes long. Every failure,
// its own or the underlying reader's, is a *readError, so that a copy that
// failed for its source is told from one that failed for the disk.
type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case e.left < 0:
		return n, &readError{errors.New("body longer than its size")}
	case err == io.EOF && e.left > 0:
		return n, &readError{fmt.Errorf("body %d bytes short of its size: %w", e.left, io.ErrUnexpectedEOF)}
	case err != nil && err != io.EOF:
		return n, &readError{err}
	}
	return n, err
}
