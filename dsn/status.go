package dsn

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mtad/mtad/messages"
)

// statusPart is part 2: the per-message fields, then one block of
// per-recipient fields for each recipient (RFC 3464 section 2.1). For an
// SMTPUTF8 message whose fields need UTF-8 it is the
// message/global-delivery-status of RFC 6533 section 4.1.
func (r *Report) statusPart() part {
	utf8ok := r.Envelope.SMTPUTF8
	var b bytes.Buffer
	if id := r.Envelope.EnvID; id != "" {
		field(&b, "Original-Envelope-Id", fieldText(id, utf8ok))
	}
	field(&b, "Reporting-MTA", "dns; "+r.ReportingMTA)
	if t := r.Envelope.Arrival; !t.IsZero() {
		field(&b, "Arrival-Date", date(t))
	}
	for i := range r.Recipients {
		b.WriteString("\r\n")
		r.Recipients[i].writeStatus(&b, utf8ok)
	}
	p := part{contentType: "message/delivery-status", description: "Delivery report",
		encoding: "7bit", body: b.Bytes()}
	if !ascii(p.body) {
		p.contentType, p.encoding = "message/global-delivery-status", "8bit"
	}
	return p
}

// writeStatus writes rc's per-recipient fields (RFC 3464 section 2.3, RFC
// 3461 section 6.3).
func (rc *Recipient) writeStatus(b *bytes.Buffer, utf8ok bool) {
	if rc.ORcpt != "" {
		field(b, "Original-Recipient", originalRecipient(rc.ORcpt, utf8ok))
	}
	field(b, "Final-Recipient", typedAddress("rfc822", rc.Addr, utf8ok))
	field(b, "Action", string(rc.Action))
	field(b, "Status", rc.status())
	if h := remoteHost(rc.RemoteMTA); h != "" {
		field(b, "Remote-MTA", "dns; "+h)
	}
	if smtpCode(rc.Reply) {
		field(b, "Diagnostic-Code", "smtp; "+replyLine(rc.Reply, utf8ok))
	}
	if !rc.LastAttempt.IsZero() {
		field(b, "Last-Attempt-Date", date(rc.LastAttempt))
	}
	if rc.Action == Delayed && !rc.WillRetryUntil.IsZero() {
		field(b, "Will-Retry-Until", date(rc.WillRetryUntil)) // RFC 3464 section 2.3.9: delayed only
	}
}

// status is rc's RFC 3463 status code: Status when it is one, else the
// reply's enhanced code when it agrees with the reply's code, else the
// reply's class, else one for a local error's class, else one for the
// action.
func (rc *Recipient) status() string {
	rep := rc.Reply
	switch class := rep.Code / 100; {
	case statusCode(rc.Status):
		return rc.Status
	case statusCode(rep.Enhanced) && (!smtpCode(rep) || int(rep.Enhanced[0]-'0') == class):
		return rep.Enhanced
	case smtpCode(rep) && (class == 2 || class == 4 || class == 5):
		return strconv.Itoa(class) + ".0.0"
	case !smtpCode(rep) && localStatus[rep.Class] != "" && !rc.Action.success():
		return localStatus[rep.Class]
	case rc.Action == Failed:
		return "5.0.0"
	case rc.Action == Delayed:
		return "4.0.0"
	}
	return "2.0.0"
}

// localStatus gives the status of a local error by its class (RFC 3463
// section 3.5: X.4.1 no answer from host, X.4.2 bad connection, X.4.3
// directory server failure). Such errors are temporary, hence 4.
var localStatus = map[string]string{
	"connection": "4.4.1",
	"timeout":    "4.4.1",
	"tls":        "4.4.2",
	"protocol":   "4.4.2",
	"dns":        "4.4.3",
}

// statusCode accepts class "." subject "." detail with the class 2, 4 or 5
// and sub-fields of one to three digits without leading zeros (RFC 3463
// section 2, RFC 3464 section 2.3.4).
func statusCode(s string) bool {
	f := strings.Split(s, ".")
	if len(f) != 3 || len(f[0]) != 1 || !strings.ContainsAny(f[0], "245") {
		return false
	}
	for _, n := range f[1:] {
		if n == "" || len(n) > 3 || (n[0] == '0' && len(n) > 1) || strings.Trim(n, "0123456789") != "" {
			return false
		}
	}
	return true
}

// smtpCode reports whether rep carries an SMTP reply code (RFC 5321
// section 4.2); one without is a local error.
func smtpCode(rep messages.Reply) bool { return rep.Code >= 100 && rep.Code <= 599 }

// replyLine renders a reply as one line: code, enhanced code when it is
// one, and the text made safe.
func replyLine(rep messages.Reply, utf8ok bool) string {
	s := strconv.Itoa(rep.Code)
	if statusCode(rep.Enhanced) {
		s += " " + rep.Enhanced
	}
	if t := clean(rep.Text, utf8ok); t != "" {
		s += " " + t
	}
	return s
}

// remoteHost returns the host name of a RemoteMTA value, which may carry
// its "dns;" type, made safe; "" when nothing is left.
func remoteHost(s string) string {
	if typ, rest, ok := strings.Cut(s, ";"); ok && strings.EqualFold(strings.TrimSpace(typ), "dns") {
		s = rest
	}
	return strings.ReplaceAll(clean(s, false), " ", "")
}

// originalRecipient renders ORCPT, "type;address", for Original-Recipient
// (RFC 3461 section 6.3 (d)): a utf-8 address in its unitext form is
// decoded where UTF-8 may stand (RFC 6533 section 3).
func originalRecipient(orcpt string, utf8ok bool) string {
	typ, addr, ok := strings.Cut(orcpt, ";")
	typ = strings.TrimSpace(typ)
	if !ok || !atom(typ) {
		return "unknown; " + xtext(orcpt)
	}
	if strings.EqualFold(typ, "utf-8") && utf8ok {
		if d, ok := decodeUnitext(addr); ok {
			addr = d
		}
	}
	return typedAddress(typ, addr, utf8ok)
}

// typedAddress renders "type; address" for a DSN field. A printable ASCII
// address stands as it is; a non-ASCII rfc822 or utf-8 address takes the
// utf-8 type of RFC 6533 section 3, as UTF-8 where that may stand and as
// utf-8-addr-xtext where it may not; anything else is written as xtext
// (RFC 3461 section 4), so no field can hold a control character.
func typedAddress(typ, addr string, utf8ok bool) string {
	unicodeType := strings.EqualFold(typ, "rfc822") || strings.EqualFold(typ, "utf-8")
	switch {
	case printable(addr):
		return typ + "; " + addr
	case ascii(addr) || !unicodeType || !utf8.ValidString(addr):
		return typ + "; " + xtext(addr)
	case utf8ok && fieldText(addr, true) == addr:
		return "utf-8; " + addr
	}
	return "utf-8; " + unitext(addr)
}

// fieldText returns s as it is when every character may stand in a field
// (printable ASCII, and with utf8ok any printable non-ASCII character),
// else s as xtext.
func fieldText(s string, utf8ok bool) string {
	if printable(s) {
		return s
	}
	if !utf8ok || !utf8.ValidString(s) {
		return xtext(s)
	}
	for _, c := range s {
		if c <= ' ' || c == 0x7f || c >= 0x80 && !unicode.IsPrint(c) {
			return xtext(s)
		}
	}
	return s
}

// printable reports whether s is all printable ASCII without spaces.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return s != ""
}

// xtext encodes s (RFC 3461 section 4): "+" and two upper-case hex digits
// for every byte outside "!" to "~", and for "+" and "=".
func xtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '+' || c == '=' {
			fmt.Fprintf(&b, "+%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// unitext encodes s as utf-8-addr-xtext (RFC 6533 section 3): "\x{HEX}" for
// every character outside QCHAR.
func unitext(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c <= ' ' || c >= 0x7f || c == '\\' || c == '+' || c == '=' {
			fmt.Fprintf(&b, `\x{%02X}`, c)
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// decodeUnitext undoes unitext: false when s has a malformed "\x{".
func decodeUnitext(s string) (string, bool) {
	var b strings.Builder
	for {
		i := strings.Index(s, `\x{`)
		if i < 0 {
			b.WriteString(s)
			return b.String(), true
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return "", false
		}
		n, err := strconv.ParseUint(s[i+3:i+j], 16, 21)
		if err != nil || j-3 < 2 || j-3 > 6 || !utf8.ValidRune(rune(n)) {
			return "", false
		}
		b.WriteString(s[:i])
		b.WriteRune(rune(n))
		s = s[i+j+1:]
	}
}

// atom accepts an address type: letters, digits, "-", "." and "_".
func atom(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// clean makes text from outside safe for one line: control characters and
// white space, line separators included, become one space; format
// characters (bidi overrides and the like) go; invalid UTF-8 becomes U+FFFD,
// and without utf8ok anything not ASCII "?".
func clean(s string, utf8ok bool) string {
	var b strings.Builder
	space := true // drops leading white space
	for _, c := range strings.ToValidUTF8(s, "\uFFFD") {
		switch {
		case unicode.Is(unicode.Cf, c):
			continue
		case unicode.IsSpace(c) || unicode.IsControl(c):
			if space {
				continue
			}
			c, space = ' ', true
		case c >= 0x80 && !utf8ok:
			c, space = '?', false
		default:
			space = false
		}
		b.WriteRune(c)
	}
	return strings.TrimRight(b.String(), " ")
}
