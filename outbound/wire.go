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
	r *textproto.Reader
	w *textproto.Writer
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

// body sends the message after a 354: a bare LF goes as CRLF and a leading
// dot is doubled (net/textproto's DotWriter, as go-smtp used), then the
// final dot.
func (w *wire) body(b []byte) error {
	if crlfOnly(b) {
		return w.stuffed(b)
	}
	dw := w.w.DotWriter()
	if _, err := dw.Write(b); err != nil {
		dw.Close()
		return err
	}
	return dw.Close()
}

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

// writeBuffer is the size of the write buffer: a typical message leaves in
// one write.
const writeBuffer = 32 << 10

// stuffed sends a body whose lines all end in CRLF (what submission stores)
// with a dot doubled at the start of each line, in chunks rather than the
// DotWriter's byte at a time, then the final dot. The bytes on the wire
// are the DotWriter's.
func (w *wire) stuffed(b []byte) error {
	bw := w.w.W
	if len(b) > 0 && b[0] == '.' {
		bw.WriteByte('.')
	}
	for {
		i := bytes.Index(b, []byte("\n."))
		if i < 0 {
			break
		}
		bw.Write(b[:i+1])
		bw.WriteByte('.')
		b = b[i+1:]
	}
	bw.Write(b)
	if len(b) == 0 || !bytes.HasSuffix(b, []byte("\r\n")) {
		bw.WriteString("\r\n") // as the DotWriter ends an empty or unfinished last line
	}
	bw.WriteString(".\r\n")
	return bw.Flush()
}

// crlfOnly reports whether every CR in b is followed by LF and every LF
// preceded by CR, and b does not end in a lone CR.
func crlfOnly(b []byte) bool {
	for i := 0; i < len(b); {
		j := bytes.IndexAny(b[i:], "\r\n")
		if j < 0 {
			return true
		}
		j += i
		if b[j] == '\n' || j+1 >= len(b) || b[j+1] != '\n' {
			return false
		}
		i = j + 2
	}
	return true
}
