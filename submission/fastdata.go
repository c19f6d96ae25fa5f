package submission

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"time"

	"github.com/emersion/go-smtp"
)

// A message sent with DATA is read here, from the socket, rather than
// through go-smtp's reader, which takes it a byte at a time through a 4
// KiB bufio.Reader and counts line lengths in a second pass: that was a
// sixth of the CPU of a busy submission listener (go-smtp v0.25.1; its
// pull request #312, open, would speed it up).
//
// How it stays go-smtp's protocol:
//
//   - receive arms a capture and reads one byte through go-smtp's reader.
//     If go-smtp has bytes buffered (a client that sent the body before
//     the 354), the byte comes from there and trackedConn is not asked:
//     the capture is disarmed and the message read through go-smtp as
//     before. If what it had buffered was only a "." or ".\r" (which its
//     reader drops), it asks trackedConn for more in the middle of a dot:
//     trackedConn sees that the last byte it handed on was not a line end
//     and reads as usual, and the message goes through go-smtp too.
//     Otherwise go-smtp's buffer is empty and asks trackedConn to
//     read, which runs the capture first: it reads the body from the
//     socket, dot by dot as go-smtp would (scan), into the message, up to
//     and including the ".CRLF" that ends it; then it hands go-smtp that
//     ".CRLF" and, after it, what the client sent next. go-smtp's reader
//     starts at the beginning of a line, takes the ".CRLF" for the end of
//     the message, and the session goes on from the next command.
//   - go-smtp's limits hold as they would: the message size
//     (MaxMessageBytes, counted on the body as go-smtp delivers it: a
//     body of that size or more is refused) and the line length
//     (MaxLineLength, counted on every byte of the message, dots and
//     end included, as its lineLimitReader does). Over the size, the
//     rest of the message is read and dropped and the reply is 552, as
//     go-smtp does. Over the line length, go-smtp is handed bytes without
//     a line end until its own lineLimitReader fails, so it replies and
//     closes the connection as it always does.
//   - Where the two differ, both refuse the message: a read from the
//     socket that holds the end of the message and, after it, a line over
//     the limit is refused whole by go-smtp (its lineLimitReader counts
//     the read before its reader sees the end), while the capture takes
//     the message and go-smtp then fails on the long line and closes the
//     connection. A read that holds a line over the limit replies 500
//     even if the message was over the size before it in the same read,
//     where go-smtp, reading 4 KiB at a time, might reply 552; it closes
//     the connection either way.
//   - Only plain-text sessions with DATA are captured: under TLS
//     trackedConn sees records, not SMTP, and with BDAT go-smtp copies
//     chunks itself, in bulk, while Data runs on another goroutine.
//
// TestFastDataMatchesGoSMTP runs the same streams through both readers;
// BenchmarkData measures both (5 KiB: 56 against 72 us a transaction, 100
// KiB: 94 against 428 us, client included).

// dataCapture is one message read from the socket by trackedConn.Read.
type dataCapture struct {
	w         io.Writer // the message, as go-smtp would have delivered it
	max       int64     // MaxMessageBytes; 0: no limit
	lineLimit int       // MaxLineLength; 0: no limit
	timeout   time.Duration

	state int   // of the dot state machine, go-smtp's
	line  int   // go-smtp's lineLimitReader count: bytes since the last LF, LF included
	out   int64 // body bytes delivered so far

	ran     bool  // trackedConn.Read ran it
	err     error // the first failure to keep the message: too large, or a write error
	tooLong bool  // a line was over lineLimit: go-smtp is to fail reading
	readErr error // the socket failed
}

// The states of go-smtp's dataReader (data.go), in its order.
const (
	dotBeginLine = iota // beginning of a line; initial state
	dotDot              // read "." at the beginning of a line
	dotDotCR            // read ".\r" at the beginning of a line
	dotCR               // read "\r"
	dotData             // in the middle of a line
)

// endOfData is what go-smtp is handed in place of the message.
var endOfData = []byte(".\r\n")

// scan runs the dot state machine over b, writing the body's bytes to
// c.w, and returns how many bytes of b it used: all of them, or those up
// to and including the end of the message (end). It is go-smtp's
// dataReader, byte for byte, with runs of plain bytes taken at once.
func (c *dataCapture) scan(b []byte) (used int, end bool) {
	i, run := 0, 0 // b[run:i] is body not yet written
	for i < len(b) {
		switch c.state {
		case dotData:
			k := bytes.IndexByte(b[i:], '\r')
			if k < 0 {
				i = len(b)
				continue
			}
			i += k + 1
			c.state = dotCR
		case dotCR:
			if b[i] == '\n' {
				c.state = dotBeginLine
			} else {
				c.state = dotData // even for another "\r", as go-smtp does
			}
			i++
		case dotBeginLine:
			switch b[i] {
			case '.':
				c.write(b[run:i])
				run = i + 1 // the dot is dropped
				c.state = dotDot
			case '\r':
				c.state = dotCR
			default:
				c.state = dotData
			}
			i++
		case dotDot:
			if b[i] == '\r' {
				c.write(b[run:i])
				run = i + 1 // dropped, unless a "\n" follows: then it ends the message
				c.state = dotDotCR
			} else {
				c.state = dotData
			}
			i++
		case dotDotCR:
			i++
			if b[i-1] == '\n' {
				return i, true
			}
			c.state = dotData // the "\r" stays dropped, as go-smtp does
		}
	}
	c.write(b[run:])
	return len(b), false
}

// write delivers body bytes, unless the message has failed already.
func (c *dataCapture) write(p []byte) {
	if len(p) == 0 || c.err != nil {
		return
	}
	if c.max > 0 && c.out+int64(len(p)) >= c.max {
		// go-smtp refuses a body of max bytes or more, and reads on.
		c.err = smtp.ErrDataTooLarge
		return
	}
	c.out += int64(len(p))
	if _, err := c.w.Write(p); err != nil {
		c.err = err
	}
}

// lines counts b as go-smtp's lineLimitReader does; false when a line is
// over the limit.
func (c *dataCapture) lines(b []byte) bool {
	if c.lineLimit <= 0 {
		return true
	}
	for len(b) > 0 {
		k := bytes.IndexByte(b, '\n')
		if k < 0 {
			c.line += len(b)
			return c.line <= c.lineLimit
		}
		if c.line+k > c.lineLimit {
			return false
		}
		c.line = 1
		b = b[k+1:]
	}
	return true
}

// run reads the message from the socket (after what c.tc had read ahead)
// and leaves in tc what go-smtp is to read next: ".CRLF" and what followed
// the message; after a line over the limit, bytes without a line end. It
// returns the socket's error, if it failed before the end.
func (c *dataCapture) run(tc *trackedConn) error {
	c.ran = true
	for {
		b, err := tc.nextRaw(c.timeout)
		if err != nil {
			c.readErr = err
			return err
		}
		before := c.err
		used, end := c.scan(b)
		if !c.lines(b[:used]) {
			// go-smtp's lineLimitReader fails the read whole: what scan
			// made of it does not count.
			c.err, c.tooLong = before, true
			tc.consumed(len(b))
			tc.endless = true
			return nil
		}
		tc.consumed(used)
		if end {
			tc.prefix = endOfData
			return nil
		}
	}
}

// result is what receive makes of a capture, given what go-smtp's reader
// returned to the read that ran it (n bytes, err).
func (c *dataCapture) result(n int, err error) error {
	switch {
	case c.err != nil:
		return c.err
	case c.tooLong:
		return smtp.ErrTooLongLine
	case c.readErr != nil:
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return err
	case n != 0 || err != io.EOF:
		// go-smtp did not take the ".CRLF" for the end of the message.
		return errCaptureOutOfStep
	}
	return nil
}

// errCaptureOutOfStep is a capture whose end go-smtp did not take for
// one: a bug, logged as an error; the message is refused with a 451.
var errCaptureOutOfStep = errors.New("submission: go-smtp's reader did not end after the captured message")

// capturable reports whether the message in r may be read from the
// socket: DATA (go-smtp's own reader, which Data reads on the connection's
// goroutine), in plain text, on a connection of ours. Any other reader
// (BDAT's pipe, or a go-smtp that renamed its reader) is read through;
// TestFastDataUsed fails if DATA stops being captured.
func (s *session) capturable(r io.Reader) bool {
	if s.tc == nil || s.overTLS || s.tc.implicitTLS || r == nil || s.srv.slowData.Load() {
		return false
	}
	t := reflect.TypeOf(r)
	return t.Kind() == reflect.Pointer && t.Elem().Name() == "dataReader" && t.Elem().PkgPath() == goSMTPPath
}

// goSMTPPath is go-smtp's import path, as reflect spells it.
var goSMTPPath = reflect.TypeFor[smtp.Conn]().PkgPath()

// receiveCaptured reads the message from the socket into w if it can
// (see the top of this file); captured false means it did not, and the
// message is to be read from src, which holds what the probe took.
func (s *session) receiveCaptured(w io.Writer, r io.Reader) (captured bool, src io.Reader, err error) {
	c := &dataCapture{w: w, max: s.srv.cfg.MaxMessageSize, lineLimit: s.srv.cfg.MaxLineLength,
		timeout: s.srv.cfg.ReadTimeout, line: 1}
	s.tc.capture = c
	var one [1]byte
	n, rerr := r.Read(one[:])
	s.tc.capture = nil
	if c.ran {
		s.srv.captured.Add(1)
		return true, nil, c.result(n, rerr)
	}
	switch {
	case rerr == io.EOF && n == 0:
		return false, bytes.NewReader(nil), nil // an empty message
	case rerr != nil && rerr != io.EOF:
		return false, nil, rerr
	}
	return false, io.MultiReader(bytes.NewReader(one[:n]), r), nil
}
