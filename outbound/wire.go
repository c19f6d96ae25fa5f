package outbound

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/emersion/go-smtp"

	"github.com/mtad/mtad/messages"
)

// maxLine bounds one reply line, twice RFC 5321's 512 (section 4.5.3.1.5),
// as go-smtp's client does.
const maxLine = 2000

// wire is the session's only reader and writer of SMTP text. Commands are
// buffered until flush, so a pipelined group (RFC 2920) leaves in one write;
// replies are read in order. A reply other than the one expected comes back
// as an *smtp.SMTPError, as go-smtp's client returned it, so classify and
// the tests see the same errors as before.
type wire struct {
	r   *textproto.Reader
	w   *textproto.Writer
	buf []byte // what body reads into; allocated at the first body
}

func newWire(r io.Reader, w io.Writer) *wire {
	return &wire{
		r: textproto.NewReader(bufio.NewReader(&lineLimitReader{r: r})),
		w: textproto.NewWriter(bufio.NewWriterSize(w, writeBuffer)),
	}
}

// queue buffers one command line; flush sends what is queued.
func (w *wire) queue(line string) {
	w.w.W.WriteString(line)
	w.w.W.WriteString("\r\n")
}

func (w *wire) flush() error { return w.w.W.Flush() }

// reply reads one reply. expect is a code or a code prefix (25 takes 250
// and 251), as in textproto.Reader.ReadResponse.
func (w *wire) reply(expect int) (string, error) {
	_, msg, err := w.r.ReadResponse(expect)
	var te *textproto.Error
	if errors.As(err, &te) {
		return msg, toSMTPError(te)
	}
	return msg, err
}

// cmd sends one command and reads its reply.
func (w *wire) cmd(expect int, line string) (string, error) {
	w.queue(line)
	if err := w.flush(); err != nil {
		return "", err
	}
	return w.reply(expect)
}

// body sends the message read from r after a 354, dot-stuffed as it is
// read (see dotStuffer), then the final dot. When size is not 0, r must
// yield exactly size bytes. A failure to read r, or a body of another
// size, returns a *bodyError before the final dot is written: the caller
// must then close the connection, so that the server discards what it got
// (RFC 5321 section 4.1.1.4: the data is complete only at the final dot).
func (w *wire) body(r io.Reader, size int64) error {
	if w.buf == nil {
		w.buf = make([]byte, writeBuffer)
	}
	d := dotStuffer{w: w.w.W}
	var read int64
	for {
		n, err := r.Read(w.buf)
		read += int64(n)
		if size > 0 && read > size {
			return &bodyError{fmt.Errorf("body longer than its size %d", size)}
		}
		if werr := d.write(w.buf[:n]); werr != nil {
			return werr
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return &bodyError{err}
		}
	}
	if size > 0 && read != size {
		return &bodyError{fmt.Errorf("body of %d bytes, not its size %d: %w", read, size, io.ErrUnexpectedEOF)}
	}
	d.close()
	return w.w.W.Flush()
}

// bodyError is a failure to read the body of a transaction: the message
// was not finished, and the connection must go.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "reading the message body: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// toSMTPError parses the enhanced status code off a rejection the way
// go-smtp's client does (RFC 2034: it prefixes every line).
func toSMTPError(te *textproto.Error) *smtp.SMTPError {
	se := &smtp.SMTPError{Code: te.Code, Message: te.Msg}
	first, rest, ok := strings.Cut(te.Msg, " ")
	if !ok {
		return se
	}
	parts := strings.Split(first, ".")
	if len(parts) != 3 {
		return se
	}
	var code smtp.EnhancedCode
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return se
		}
		code[i] = n
	}
	se.EnhancedCode = code
	se.Message = strings.ReplaceAll(rest, "\n"+first+" ", "\n")
	return se
}

// lineLimitReader fails a read once a line grows past maxLine, so a server
// cannot make a reply grow without bound.
type lineLimitReader struct {
	r   io.Reader
	cur int // bytes since the last LF
}

var errLineTooLong = errors.New("reply line too long")

func (l *lineLimitReader) Read(p []byte) (int, error) {
	if l.cur > maxLine {
		return 0, textproto.ProtocolError(errLineTooLong.Error())
	}
	if len(p) > maxLine+1 {
		p = p[:maxLine+1]
	}
	n, err := l.r.Read(p)
	for _, b := range p[:n] {
		l.cur++
		if b == '\n' {
			l.cur = 0
		}
	}
	return n, err
}

// mailLine is the MAIL command with the parameters go-smtp's client sent:
// BODY=8BITMIME whenever 8BITMIME is offered (RFC 6152 allows it for a
// 7-bit body too), SIZE= with SIZE (RFC 1870), SMTPUTF8 when needed (refuse
// checked it is offered), REQUIRETLS when asked and offered (RFC 8689
// section 3; refuse checked both), RET= and xtext ENVID= with DSN (RFC 3461
// section 4.3 and 4.4).
func (c *Conn) mailLine(tx Tx) string {
	var b strings.Builder
	fmt.Fprintf(&b, "MAIL FROM:<%s>", tx.From)
	if c.has("8BITMIME") {
		b.WriteString(" BODY=8BITMIME")
	}
	if c.has("SIZE") && tx.size() != 0 {
		fmt.Fprintf(&b, " SIZE=%d", tx.size())
	}
	if needsUTF8(tx) {
		b.WriteString(" SMTPUTF8")
	}
	if tx.RequireTLS && c.has("REQUIRETLS") {
		b.WriteString(" REQUIRETLS")
	}
	if !c.has("DSN") {
		return b.String()
	}
	if tx.Ret == messages.RetFull || tx.Ret == messages.RetHdrs {
		b.WriteString(" RET=" + string(tx.Ret))
	}
	if tx.EnvID != "" && printableASCII(tx.EnvID) {
		b.WriteString(" ENVID=" + xtext(tx.EnvID))
	}
	return b.String()
}

// rcptLine is the RCPT command, with NOTIFY= and ORCPT= (RFC 3461 section
// 4.1 and 4.2) only when DSN is offered.
func (c *Conn) rcptLine(r Rcpt) string {
	line := "RCPT TO:<" + r.Addr + ">"
	if !c.has("DSN") {
		return line
	}
	if n := r.Notify.String(); n != "" {
		line += " NOTIFY=" + n
	}
	if typ, addr := orcpt(r.ORcpt); typ != "" {
		line += " ORCPT=" + typ + ";" + c.orcptValue(typ, addr)
	}
	return line
}

// orcptValue encodes the address of ORCPT: xtext for rfc822, and for utf-8
// the utf-8-addr-unitext form with SMTPUTF8 or utf-8-addr-xtext without
// (RFC 6533 section 3).
func (c *Conn) orcptValue(typ, addr string) string {
	if typ == orcptRFC822 {
		return xtext(addr)
	}
	var b strings.Builder
	for _, ch := range addr {
		switch {
		case xtextSafe(ch):
			b.WriteRune(ch)
		case ch > 0x7f && c.has("SMTPUTF8"):
			b.WriteRune(ch)
		default:
			fmt.Fprintf(&b, `\x{%X}`, ch)
		}
	}
	return b.String()
}

// xtext encodes s (RFC 3461 section 4): "+" and "=", space and controls as
// "+XX".
func xtext(s string) string {
	var b strings.Builder
	for _, ch := range s {
		if xtextSafe(ch) {
			b.WriteRune(ch)
		} else {
			fmt.Fprintf(&b, "+%X", ch)
		}
	}
	return b.String()
}

func xtextSafe(ch rune) bool { return ch >= '!' && ch <= '~' && ch != '+' && ch != '=' }

// writeBuffer is the size of the write buffer, and of the buffer a body
// is read into: a typical message leaves in one write.
const writeBuffer = 32 << 10

// dotStuffer writes a body as DATA carries it (RFC 5321 section 4.5.2): a
// dot at the start of a line is doubled, a bare LF goes as CRLF, and close
// ends an empty or unfinished last line with CRLF before the final dot.
// The bytes it writes are those of net/textproto's DotWriter, which mtad
// used before, whatever the pieces the body comes in: it keeps its state
// between writes. It copies runs without a line end whole, where the
// DotWriter goes a byte at a time.
type dotStuffer struct {
	w     *bufio.Writer
	state int
}

// States of a dotStuffer, as the DotWriter's.
const (
	stuffBegin     = iota // nothing written yet
	stuffLineStart        // after LF
	stuffData             // inside a line
	stuffCR               // after a CR inside a line
)

func (d *dotStuffer) write(b []byte) error {
	for len(b) > 0 {
		switch d.state {
		case stuffBegin, stuffLineStart:
			if b[0] == '.' {
				d.w.WriteByte('.')
			}
			d.state = stuffData
		case stuffCR:
			// Whatever follows a CR is written as it is; only an LF
			// makes it a line end.
			d.w.WriteByte(b[0])
			d.state = stuffData
			if b[0] == '\n' {
				d.state = stuffLineStart
			}
			b = b[1:]
		case stuffData:
			i := bytes.IndexAny(b, "\r\n")
			if i < 0 {
				d.w.Write(b)
				b = nil
				break
			}
			d.w.Write(b[:i])
			if b[i] == '\r' {
				d.w.WriteByte('\r')
				d.state = stuffCR
			} else {
				d.w.WriteString("\r\n")
				d.state = stuffLineStart
			}
			b = b[i+1:]
		}
	}
	// bufio.Writer errors are sticky: one check covers every write above.
	_, err := d.w.Write(nil)
	return err
}

// close writes what ends the body: CRLF unless at the start of a line,
// then the final dot.
func (d *dotStuffer) close() {
	switch d.state {
	case stuffBegin, stuffData:
		d.w.WriteString("\r\n")
	case stuffCR:
		d.w.WriteByte('\n')
	}
	d.w.WriteString(".\r\n")
}
