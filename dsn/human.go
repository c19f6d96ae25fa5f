package dsn

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"
)

// textWidth is where the human part wraps its lines.
const textWidth = 76

// sections orders the human part by action, each with the paragraph that
// introduces its recipients.
var sections = []struct {
	action Action
	intro  string
}{
	{Failed, "Your message could not be delivered to the following recipients. " +
		"The mail system has given up; no further attempts will be made."},
	{Delayed, "Your message has not yet been delivered to the following recipients. " +
		"The mail system will keep trying, so you do not need to send it again."},
	{Delivered, "Your message was delivered to the following recipients."},
	{Relayed, "Your message was passed on to the mail systems of the following " +
		"recipients, which will not report whether it reaches them."},
	{Expanded, "Your message was delivered to the following recipients, and " +
		"passed on to the addresses they forward to."},
}

// localReasons describes a local error, a Reply without a code, by its
// class; its text, which may name our own files or addresses, stays out.
var localReasons = map[string]string{
	"connection":  "Could not connect to the recipient's mail server",
	"timeout":     "The recipient's mail server did not answer in time",
	"tls":         "Could not set up a secure (TLS) connection to the recipient's mail server",
	"protocol":    "The recipient's mail server gave a reply that could not be understood",
	"dns":         "Could not look up the recipient's domain in the DNS",
	"size":        "The message is larger than the recipient's mail server accepts",
	"unsupported": "The recipient's mail server lacks an SMTP extension this message needs",
	"address":     "The recipient's address cannot be given to the recipient's mail server as it is",
}

// textPart is part 1: what happened, in words, recipient by recipient
// (RFC 6522 section 3).
func (r *Report) textPart(ret returned) part {
	utf8ok := r.Envelope.SMTPUTF8
	var b bytes.Buffer
	wrap(&b, "", "This is the mail system at host "+r.ReportingMTA+".")
	for _, s := range sections {
		r.writeSection(&b, s.action, s.intro, utf8ok)
	}
	if s := ret.sentence(); s != "" {
		b.WriteString("\r\n")
		wrap(&b, "", s)
	}
	p := part{contentType: "text/plain; charset=utf-8", description: "Notification",
		encoding: "7bit", body: b.Bytes()}
	if !ascii(p.body) {
		p.encoding = "8bit"
	}
	return p
}

// writeSection writes intro and the recipients with action a, if any.
func (r *Report) writeSection(b *bytes.Buffer, a Action, intro string, utf8ok bool) {
	for i := range r.Recipients {
		rc := &r.Recipients[i]
		if rc.Action != a {
			continue
		}
		if intro != "" {
			b.WriteString("\r\n")
			wrap(b, "", intro)
			intro = ""
		}
		b.WriteString("\r\n")
		rc.describe(b, utf8ok)
	}
}

// describe writes what happened to rc: its address, the address the sender
// gave when that differs, the reply or the problem, and for a delay how
// long the mail system will go on.
func (rc *Recipient) describe(b *bytes.Buffer, utf8ok bool) {
	wrap(b, "  ", "<"+clean(rc.Addr, utf8ok)+">")
	if o := rc.originalAddr(); o != "" {
		wrap(b, "    ", "(originally addressed to <"+clean(o, utf8ok)+">)")
	}
	if s := rc.reason(utf8ok); s != "" {
		wrap(b, "    ", s)
	}
	if rc.Action == Delayed && !rc.WillRetryUntil.IsZero() {
		wrap(b, "    ", "The mail system will keep trying until "+date(rc.WillRetryUntil)+".")
	}
}

// originalAddr is the address of ORCPT when it is not Addr, or "".
func (rc *Recipient) originalAddr() string {
	typ, addr, ok := strings.Cut(rc.ORcpt, ";")
	if strings.EqualFold(strings.TrimSpace(typ), "utf-8") {
		if d, ok := decodeUnitext(addr); ok {
			addr = d
		}
	}
	if !ok || addr == "" || strings.EqualFold(addr, rc.Addr) {
		return ""
	}
	return addr
}

// reason is the reply, or the local error's class in words.
func (rc *Recipient) reason(utf8ok bool) string {
	rep, host := rc.Reply, remoteHost(rc.RemoteMTA)
	switch {
	case smtpCode(rep) && host != "":
		return "The mail server " + host + " answered: " + replyLine(rep, utf8ok)
	case smtpCode(rep):
		return "Reason: " + replyLine(rep, utf8ok)
	case rc.Action.success():
		return ""
	}
	s, ok := localReasons[rep.Class]
	if !ok {
		return "A problem in this mail system prevented delivery."
	}
	if host != "" {
		s += " (" + host + ")"
	}
	return s + "."
}

// sentence says what part 3 holds, and why only the header section when
// the whole message was asked for.
func (ret returned) sentence() string {
	switch {
	case len(ret.data) == 0:
		return ""
	case ret.full:
		return "Your message is attached."
	case ret.cut:
		return fmt.Sprintf("Your message is %d bytes, more than the %d bytes this mail system "+
			"returns whole, so only its header section is attached.", ret.size, ret.max)
	}
	return "The header section of your message is attached."
}

// wrap writes text as lines of at most textWidth characters where its words
// allow, each starting with indent.
func wrap(b *bytes.Buffer, indent, text string) {
	n := 0
	for _, w := range words(text) {
		if w == "" {
			continue
		}
		wn := utf8.RuneCountInString(w)
		if n > 0 && n+1+wn > textWidth {
			b.WriteString("\r\n")
			n = 0
		}
		if n == 0 {
			b.WriteString(indent)
			n = len(indent)
		} else {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(w)
		n += wn
	}
	b.WriteString("\r\n")
}
