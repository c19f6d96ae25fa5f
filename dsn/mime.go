package dsn

import (
	"bufio"
	"bytes"
	"errors"
	"net/textproto"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mtad/mtad/messages"
)

// Line lengths (RFC 5322 section 2.1.1): fold at 78 where a field has room,
// and never write a run longer than maxRun without a fold, which keeps
// every line we write under the hard limit of 998.
const (
	softLine = 78
	maxRun   = 900
)

// maxHeader bounds the header section returned: one that is larger is cut
// before the field that crosses it.
const maxHeader = 256 << 10

// part is one body part of the multipart/report.
type part struct {
	contentType string
	description string
	encoding    string
	body        []byte
}

// returned is what part 3 carries of the original.
type returned struct {
	data []byte
	full bool // the whole message, else its header section
	cut  bool // RET=FULL asked for the whole message, but it is over max
	size int  // the original's size
	max  int  // the largest original returned whole
}

// returned decides what of the original goes back: the whole message only
// for RET=FULL, when some recipient failed (RFC 3461 section 4.3: a DSN
// without failures returns headers only) and it is not over MaxFull;
// otherwise its header section, up to maxHeader.
func (r *Report) returned() returned {
	limit := r.MaxFull
	if limit <= 0 {
		limit = DefaultMaxFull
	}
	ret := returned{size: len(r.Original), max: limit}
	if r.OriginalSize > int64(ret.size) {
		ret.size = int(r.OriginalSize)
	}
	wantFull := r.Envelope.Ret == messages.RetFull && r.anyFailed()
	if wantFull && ret.size <= limit {
		ret.data, ret.full = r.Original, true
		return ret
	}
	ret.data, ret.cut = headerSection(r.Original, maxHeader), wantFull
	return ret
}

// part labels the returned content (RFC 3462 section 3, RFC 6533 section
// 4): message/global or message/global-headers when an SMTPUTF8 message
// has a non-ASCII header section.
func (ret returned) part(smtputf8 bool) part {
	global := smtputf8 && !ascii(headerSection(ret.data, len(ret.data)))
	p := part{encoding: encoding(ret.data), body: ret.data}
	switch {
	case ret.full && global:
		p.contentType, p.description = "message/global", "Returned message"
	case ret.full:
		p.contentType, p.description = "message/rfc822", "Returned message"
	case global:
		p.contentType, p.description = "message/global-headers", "Returned message header"
	default:
		p.contentType, p.description = "text/rfc822-headers", "Returned message header"
	}
	return p
}

// headerSection returns the header lines of msg, without the blank line
// that ends them, cut before a field that would take it over limit bytes.
func headerSection(msg []byte, limit int) []byte {
	if bytes.HasPrefix(msg, []byte("\r\n")) || bytes.HasPrefix(msg, []byte("\n")) {
		return nil
	}
	end := len(msg)
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		end = i + 2
	}
	if i := bytes.Index(msg, []byte("\n\n")); i >= 0 && i+1 < end {
		end = i + 1
	}
	h := msg[:end]
	for len(h) > limit {
		i := lastFieldStart(h[:len(h)-1])
		if i <= 0 {
			return nil
		}
		h = h[:i]
	}
	return h
}

// lastFieldStart is the offset of the last line of h that starts a field,
// not a continuation, or -1.
func lastFieldStart(h []byte) int {
	for i := len(h) - 1; i > 0; i-- {
		if h[i-1] == '\n' && h[i] != ' ' && h[i] != '\t' {
			return i
		}
	}
	return -1
}

// encoding names the Content-Transfer-Encoding that data needs as it stands
// (RFC 2045 section 2.7-2.9): 7bit, 8bit, or binary for a NUL, a bare CR or
// LF, or a line over 998 octets.
func encoding(data []byte) string {
	enc, line := "7bit", 0
	for i, c := range data {
		switch {
		case c == '\n':
			if i == 0 || data[i-1] != '\r' {
				return "binary"
			}
			line = 0
			continue
		case c == '\r':
			if i+1 == len(data) || data[i+1] != '\n' {
				return "binary"
			}
			continue
		case c == 0:
			return "binary"
		case c >= 0x80:
			enc = "8bit"
		}
		if line++; line > 998 {
			return "binary"
		}
	}
	return enc
}

func ascii[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// pickBoundary returns stem, or stem with a counter, whichever no part
// contains (RFC 2046 section 5.1.1).
func pickBoundary(stem string, parts []part) (string, error) {
	b := stem
	for i := 0; i < 100; i++ {
		if !anyContains(parts, b) {
			return b, nil
		}
		b = stem + "." + strconv.Itoa(i)
	}
	return "", errors.New("dsn: every boundary tried occurs in the content")
}

func anyContains(parts []part, s string) bool {
	for _, p := range parts {
		if bytes.Contains(p.body, []byte(s)) {
			return true
		}
	}
	return false
}

// writeHeader writes the DSN's header section (RFC 3464 section 2, RFC 3834
// section 5 for Auto-Submitted).
func (r *Report) writeHeader(b *bytes.Buffer, boundary string) {
	field(b, "From", `"Mail Delivery System" <MAILER-DAEMON@`+r.ReportingMTA+">")
	field(b, "To", "<"+r.Envelope.From+">")
	field(b, "Date", date(r.Now))
	field(b, "Message-ID", "<"+r.unique()+"@"+r.ReportingMTA+">")
	field(b, "Subject", r.subject())
	if id := messageID(r.Original); id != "" {
		field(b, "References", id)
	}
	field(b, "Auto-Submitted", "auto-replied")
	field(b, "MIME-Version", "1.0")
	field(b, "Content-Type", `multipart/report; report-type=delivery-status; boundary="`+boundary+`"`)
	b.WriteString("\r\n")
}

// writeParts writes the body: a preamble for readers without MIME, the
// parts, and the close delimiter.
func writeParts(b *bytes.Buffer, boundary string, parts []part) {
	b.WriteString("This is a MIME-encapsulated message.\r\n")
	for _, p := range parts {
		b.WriteString("\r\n--" + boundary + "\r\n")
		field(b, "Content-Type", p.contentType)
		field(b, "Content-Description", p.description)
		field(b, "Content-Transfer-Encoding", p.encoding)
		b.WriteString("\r\n")
		b.Write(p.body)
	}
	b.WriteString("\r\n--" + boundary + "--\r\n")
}

// messageID returns the original's Message-ID, so that mail readers thread
// the DSN with it, or "" when it has none that is safe to repeat.
func messageID(msg []byte) string {
	h := headerSection(msg, len(msg))
	if len(h) == 0 {
		return ""
	}
	tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(h[:len(h):len(h)], "\r\n"...))))
	fields, err := tr.ReadMIMEHeader()
	if err != nil {
		return ""
	}
	id := strings.TrimSpace(fields.Get("Message-Id"))
	if len(id) < 3 || len(id) > 250 || id[0] != '<' || id[len(id)-1] != '>' {
		return ""
	}
	for _, c := range []byte(id[1 : len(id)-1]) {
		if c <= ' ' || c >= 0x7f || c == '<' || c == '>' {
			return ""
		}
	}
	return id
}

// field writes one header field, folded at its spaces to keep lines within
// softLine where a field has room. Value must hold no CR, LF or other
// control character.
func field(b *bytes.Buffer, name, value string) {
	b.WriteString(name + ":")
	n := len(name) + 1
	for i, w := range words(value) {
		if i > 0 && w != "" && n+1+len(w) > softLine {
			b.WriteString("\r\n")
			n = 0
		}
		b.WriteString(" " + w)
		n += 1 + len(w)
	}
	b.WriteString("\r\n")
}

// words splits s at its spaces, keeping empty words so that joining them
// again gives s, and cuts any word longer than maxRun into pieces, which
// field then folds apart: unfolding such a word gives it back with spaces.
func words(s string) []string {
	var out []string
	for _, w := range strings.Split(strings.TrimRight(s, " "), " ") {
		for len(w) > maxRun {
			cut := maxRun
			for cut > maxRun-utf8.UTFMax && !utf8.RuneStart(w[cut]) {
				cut--
			}
			out, w = append(out, w[:cut]), w[cut:]
		}
		out = append(out, w)
	}
	return out
}
