package inject

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"net/textproto"
	"path"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mtad/mtad/submission"
)

// jsonMessage is the message form of a JSON request, composed by
// message.compose.
type jsonMessage struct {
	From        string            `json:"from"`
	To          []string          `json:"to"`
	Cc          []string          `json:"cc"`
	Bcc         []string          `json:"bcc"` // envelope only, never a header
	ReplyTo     string            `json:"reply_to"`
	Subject     string            `json:"subject"`
	Text        string            `json:"text"`
	HTML        string            `json:"html"`
	Headers     map[string]string `json:"headers"`
	Attachments []jsonAttachment  `json:"attachments"`
}

type jsonAttachment struct {
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"` // default from the filename's extension, else application/octet-stream
	Content     string `json:"content"`      // base64
	Inline      bool   `json:"inline"`
	ContentID   string `json:"content_id"`
}

// Header lines: RFC 5322 2.1.1 limits a line to 998 characters and asks
// for 78, RFC 2047 2 asks for 76 when the line holds an encoded word;
// folding aims at foldAt.
const (
	maxLine     = 998
	foldAt      = 76
	maxFilename = 255
	maxCID      = 250
	maxHdrName  = 100
	base64Chunk = 57 // bytes of input per 76-character line
)

// message is a checked jsonMessage, ready to compose: its header fields
// are rendered (folded, RFC 2047 encoded), its attachments decoded.
type message struct {
	head        []byte // From, Reply-To, To, Cc, Subject and the user's fields
	sender      string // the From address, canonical (the default reverse-path)
	rcpts       []namedAddr
	text, html  string
	attachments []attachment
}

// namedAddr is a canonical address and the field it came from.
type namedAddr struct{ field, addr string }

type attachment struct {
	header  textproto.MIMEHeader
	content []byte
	related bool // inline with a Content-ID: it goes with the HTML, in multipart/related
}

// Header fields the user may not give: mtad writes them, or the message
// has a field of its own for them.
var reservedFields = map[string]string{
	"from": "message.from", "to": "message.to", "cc": "message.cc", "bcc": "message.bcc",
	"reply-to": "message.reply_to", "subject": "message.subject",
	"date": "", "message-id": "", "mime-version": "", "received": "", "return-path": "",
}

// parseMessage checks m and prepares it; every error names its field.
func parseMessage(m *jsonMessage) (*message, error) {
	msg := &message{text: m.Text, html: m.HTML}
	var head bytes.Buffer
	if err := msg.addresses(&head, m); err != nil {
		return nil, err
	}
	if m.Subject != "" {
		if err := checkHeaderText("message.subject", m.Subject); err != nil {
			return nil, err
		}
		if err := writeField(&head, "Subject", encodeText(m.Subject)); err != nil {
			return nil, badRequest("message.subject: %v", err)
		}
	}
	if err := writeUserFields(&head, m.Headers); err != nil {
		return nil, err
	}
	msg.head = head.Bytes()
	for i := range m.Attachments {
		a, err := parseAttachment(fmt.Sprintf("message.attachments[%d]", i), &m.Attachments[i])
		if err != nil {
			return nil, err
		}
		m.Attachments[i].Content = ""
		msg.attachments = append(msg.attachments, a)
	}
	return msg, nil
}

// addresses writes From, Reply-To, To and Cc and collects the
// recipients (To, Cc, Bcc).
func (msg *message) addresses(head *bytes.Buffer, m *jsonMessage) error {
	if m.From == "" {
		return badRequest("message.from: required")
	}
	from, err := parseMailbox("message.from", m.From)
	if err != nil {
		return err
	}
	if msg.sender, err = canonical("message.from", from); err != nil {
		return err
	}
	var replyTo []*mail.Address
	if m.ReplyTo != "" {
		if err := checkHeaderText("message.reply_to", m.ReplyTo); err != nil {
			return err
		}
		if replyTo, err = mail.ParseAddressList(m.ReplyTo); err != nil {
			return badRequest("message.reply_to: %q: %s", m.ReplyTo, strings.TrimPrefix(err.Error(), "mail: "))
		}
	}
	to, err := msg.recipients("message.to", m.To)
	if err != nil {
		return err
	}
	cc, err := msg.recipients("message.cc", m.Cc)
	if err == nil {
		_, err = msg.recipients("message.bcc", m.Bcc)
	}
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name  string
		addrs []*mail.Address
	}{{"From", []*mail.Address{from}}, {"Reply-To", replyTo}, {"To", to}, {"Cc", cc}} {
		if err := writeAddressField(head, f.name, f.addrs); err != nil {
			return err
		}
	}
	return nil
}

// recipients parses a list of mailboxes and adds them to msg.rcpts.
func (msg *message) recipients(field string, list []string) ([]*mail.Address, error) {
	addrs := make([]*mail.Address, 0, len(list))
	for i, s := range list {
		f := fmt.Sprintf("%s[%d]", field, i)
		a, err := parseMailbox(f, s)
		if err != nil {
			return nil, err
		}
		c, err := canonical(f, a)
		if err != nil {
			return nil, err
		}
		addrs = append(addrs, a)
		msg.rcpts = append(msg.rcpts, namedAddr{f, c})
	}
	return addrs, nil
}

// parseMailbox parses one mailbox of a header field: "Name <a@b>" or a@b.
func parseMailbox(field, s string) (*mail.Address, error) {
	if err := checkHeaderText(field, s); err != nil {
		return nil, err
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, 501, "5.1.3", "%s: %q: %s", field, s, strings.TrimPrefix(err.Error(), "mail: "))
	}
	return a, nil
}

// canonical checks the address of a mailbox as SMTP would and returns its
// canonical form.
func canonical(field string, a *mail.Address) (string, error) {
	c, err := submission.CheckAddress(a.Address, true)
	if err != nil {
		return "", refuse(http.StatusBadRequest, 501, "5.1.3", "%s: %q: %v", field, a.Address, err)
	}
	return c, nil
}

// checkHeaderText refuses what would break out of a header field: CR, LF
// and other control characters but tab.
func checkHeaderText(field, s string) error {
	if strings.ContainsAny(s, "\r\n") {
		return badRequest("%s: line breaks are not allowed in a header field", field)
	}
	if strings.IndexFunc(s, func(r rune) bool { return r != '\t' && unicode.IsControl(r) }) >= 0 {
		return badRequest("%s: control characters are not allowed in a header field", field)
	}
	return nil
}

func writeAddressField(head *bytes.Buffer, name string, addrs []*mail.Address) error {
	if len(addrs) == 0 {
		return nil
	}
	parts := make([]string, len(addrs))
	for i, a := range addrs {
		parts[i] = a.String() // display name RFC 2047 encoded
	}
	if err := writeField(head, name, strings.Join(parts, ", ")); err != nil {
		return badRequest("%s: %v", name, err)
	}
	return nil
}

// writeUserFields writes message.headers, sorted by name.
func writeUserFields(head *bytes.Buffer, fields map[string]string) error {
	names := make([]string, 0, len(fields))
	seen := make(map[string]string, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		field := fmt.Sprintf("message.headers[%q]", name)
		if err := checkFieldName(field, name, seen); err != nil {
			return err
		}
		if err := checkHeaderText(field, fields[name]); err != nil {
			return err
		}
		if err := writeField(head, name, encodeText(fields[name])); err != nil {
			return badRequest("%s: %v", field, err)
		}
	}
	return nil
}

// checkFieldName refuses a malformed name (RFC 5322 2.2: printable ASCII
// but ':'), a reserved one and a second one of the same name.
func checkFieldName(field, name string, seen map[string]string) error {
	lname := strings.ToLower(name)
	if name == "" || len(name) > maxHdrName || strings.IndexFunc(name, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == ':' }) >= 0 {
		return badRequest("%s: a header name is 1 to %d printable ASCII characters but ':'", field, maxHdrName)
	}
	if use, ok := reservedFields[lname]; ok || strings.HasPrefix(lname, "content-") {
		if use != "" {
			return badRequest("%s: header %s may not be set here, use %s", field, name, use)
		}
		return badRequest("%s: header %s is written by mtad and may not be set", field, name)
	}
	if prev, ok := seen[lname]; ok {
		return badRequest("%s: header %s given twice (also as %q)", field, name, prev)
	}
	seen[lname] = name
	return nil
}

// encodeText is s as unstructured header text: RFC 2047 encoded words
// (Q encoding) when it is not ASCII.
func encodeText(s string) string {
	if ascii(s) {
		return s
	}
	return mime.QEncoding.Encode("utf-8", s)
}

// writeField writes "name: value", folded (foldValue).
func writeField(b *bytes.Buffer, name, value string) error {
	v, err := foldValue(name, value)
	if err != nil {
		return err
	}
	b.WriteString(name)
	b.WriteString(":")
	b.WriteString(v)
	b.WriteString("\r\n")
	return nil
}

// foldValue folds the value of field name at spaces so that lines stay
// within foldAt characters when they can (RFC 5322 2.2.3), and returns it
// with its leading space. A line longer than maxLine is an error.
func foldValue(name, value string) (string, error) {
	var b strings.Builder
	n := len(name) + 1
	for _, word := range strings.Split(value, " ") {
		if word != "" && n+1+len(word) > foldAt {
			b.WriteString("\r\n")
			n = 0
		}
		b.WriteString(" ")
		b.WriteString(word)
		if n += 1 + len(word); n > maxLine {
			return "", errors.New("a word too long to fold into 998-character lines")
		}
	}
	return b.String(), nil
}

// parseAttachment checks and decodes one attachment given in field.
func parseAttachment(field string, ja *jsonAttachment) (attachment, error) {
	content, err := decodeBase64(ja.Content)
	if err != nil {
		return attachment{}, badRequest("%s.content: %v", field, err)
	}
	if len(ja.Filename) > maxFilename {
		return attachment{}, badRequest("%s.filename: %d bytes, at most %d", field, len(ja.Filename), maxFilename)
	}
	if err := checkHeaderText(field+".filename", ja.Filename); err != nil {
		return attachment{}, err
	}
	ctype, err := attachmentType(field, ja)
	if err != nil {
		return attachment{}, err
	}
	disp := "attachment"
	if ja.Inline {
		disp = "inline"
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Type", ctype)
	h.Set("Content-Transfer-Encoding", "base64")
	h.Set("Content-Disposition", formatMediaType(disp, "filename", ja.Filename))
	cid, err := contentID(field, ja.ContentID)
	if err != nil {
		return attachment{}, err
	}
	if cid != "" {
		h["Content-ID"] = []string{"<" + cid + ">"} // the spelling of RFC 2045, not textproto's
	}
	return attachment{header: h, content: content, related: ja.Inline && cid != ""}, nil
}

// decodeBase64 accepts standard base64, padded or not, with or without
// line breaks.
func decodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
	enc := base64.StdEncoding
	if len(s)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	b, err := enc.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not base64: %v", err)
	}
	return b, nil
}

// attachmentType is the Content-Type of an attachment, with its file name
// as the name parameter. Multipart and message types are refused: they
// cannot be base64 (RFC 2045 6.4, RFC 2046 5.2.1).
func attachmentType(field string, ja *jsonAttachment) (string, error) {
	ct := ja.ContentType
	if ct == "" {
		ct = mime.TypeByExtension(path.Ext(ja.Filename))
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || !strings.Contains(mt, "/") {
		return "", badRequest("%s.content_type: %q is not a media type", field, ct)
	}
	if strings.HasPrefix(mt, "multipart/") || strings.HasPrefix(mt, "message/") {
		return "", badRequest("%s.content_type: %s cannot be an attachment here (it may not be base64)", field, mt)
	}
	if ja.Filename != "" {
		params["name"] = ja.Filename
	}
	if s := mime.FormatMediaType(mt, params); s != "" {
		return s, nil
	}
	return "", badRequest("%s.content_type: %q cannot be written", field, ct)
}

// formatMediaType is mime.FormatMediaType with one parameter, left out
// when empty; RFC 2231 encodes it when it is not ASCII.
func formatMediaType(t, param, value string) string {
	if value == "" {
		return t
	}
	return mime.FormatMediaType(t, map[string]string{param: value})
}

// contentID checks a Content-ID given with or without its angle brackets
// and returns it without them.
func contentID(field, s string) (string, error) {
	s = strings.TrimSuffix(strings.TrimPrefix(s, "<"), ">")
	bad := func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune(`<>"\()[],;`, r) }
	if len(s) > maxCID || strings.IndexFunc(s, bad) >= 0 {
		return "", badRequest("%s.content_id: %q: at most %d printable ASCII characters, no spaces, brackets or quotes", field, s, maxCID)
	}
	return s, nil
}

// compose writes the message after hdr (its Received header) into one
// buffer, sized ahead, and returns it: the header fields, then the MIME
// tree of message.tree.
func (msg *message) compose(hdr, hostname string, date time.Time) []byte {
	root := msg.tree()
	b := bytes.NewBuffer(make([]byte, 0, len(hdr)+msg.sizeHint()))
	b.WriteString(hdr)
	// Nothing below fails: these fields are mtad's own, their words
	// short, and a bytes.Buffer takes every write.
	_ = writeField(b, "Date", date.Format(time.RFC1123Z))
	_ = writeField(b, "Message-ID", "<"+strings.ToLower(rand.Text())+"@"+hostname+">")
	b.Write(msg.head)
	_ = writeField(b, "MIME-Version", "1.0")
	for _, k := range slices.Sorted(maps.Keys(root.header)) {
		_ = writeField(b, k, root.header[k][0])
	}
	b.WriteString("\r\n")
	_ = root.write(b)
	return b.Bytes()
}

// sizeHint is about the size of the composed message without its
// Received, Date and Message-ID, so that it is written without copies.
func (msg *message) sizeHint() int {
	n := len(msg.head) + 1024 + qpSize(msg.text) + qpSize(msg.html)
	for _, a := range msg.attachments {
		n += base64.StdEncoding.EncodedLen(len(a.content))*78/76 + 512
	}
	return n
}

// qpSize is about the quoted-printable size of s: three bytes for each
// byte that needs encoding, a soft line break every 73.
func qpSize(s string) int {
	n := len(s)
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf || s[i] == '=' {
			n += 2
		}
	}
	return n + n/73*3
}

// part is a MIME entity: its Content- fields and how to write its body.
type part struct {
	header textproto.MIMEHeader
	write  func(w io.Writer) error
}

// tree is the MIME structure of the message:
//
//	text only                 text/plain
//	text and html             multipart/alternative (text/plain, text/html)
//	html and inline parts     multipart/related (text/html, inline parts...)
//	  with a content_id         in place of text/html
//	attachments               multipart/mixed (the above, attachments...)
//
// An inline part with a content_id but no html is an attachment; with
// neither text nor html, nor attachments, the body is an empty
// text/plain.
func (msg *message) tree() part {
	var related, mixed []part
	for _, a := range msg.attachments {
		p := attachmentPart(a)
		if a.related && msg.html != "" {
			related = append(related, p)
		} else {
			mixed = append(mixed, p)
		}
	}
	var body []part
	switch {
	case msg.html != "":
		html := textPart("html", msg.html)
		if len(related) > 0 {
			html = multipartPart("related", append([]part{html}, related...), "type", "text/html")
		}
		if msg.text != "" {
			html = multipartPart("alternative", []part{textPart("plain", msg.text), html})
		}
		body = []part{html}
	case msg.text != "" || len(mixed) == 0:
		body = []part{textPart("plain", msg.text)}
	}
	if len(mixed) == 0 {
		return body[0]
	}
	return multipartPart("mixed", append(body, mixed...))
}

// textPart is UTF-8 text, quoted-printable: 7-bit, lines of at most 76
// characters, CRLF line ends (the encoder writes any line end as CRLF).
func textPart(subtype, s string) part {
	h := textproto.MIMEHeader{}
	h.Set("Content-Type", "text/"+subtype+"; charset=utf-8")
	h.Set("Content-Transfer-Encoding", "quoted-printable")
	return part{header: h, write: func(w io.Writer) error {
		qw := quotedprintable.NewWriter(w)
		if _, err := io.WriteString(qw, s); err != nil {
			return err
		}
		return qw.Close()
	}}
}

func attachmentPart(a attachment) part {
	return part{header: a.header, write: func(w io.Writer) error { return writeBase64(w, a.content) }}
}

// writeBase64 writes b in base64, 76 characters a line (RFC 2045 6.8).
func writeBase64(w io.Writer, b []byte) error {
	line := make([]byte, base64.StdEncoding.EncodedLen(base64Chunk)+2)
	for len(b) > 0 {
		n := min(base64Chunk, len(b))
		m := base64.StdEncoding.EncodedLen(n)
		base64.StdEncoding.Encode(line, b[:n])
		line[m], line[m+1] = '\r', '\n'
		if _, err := w.Write(line[:m+2]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// folded is h with its values folded. The values are mtad's own, their
// words short enough (a file name is at most maxFilename bytes): one that
// is not is left as it is.
func folded(h textproto.MIMEHeader) textproto.MIMEHeader {
	out := make(textproto.MIMEHeader, len(h))
	for k, vs := range h {
		for _, v := range vs {
			if f, err := foldValue(k, v); err == nil {
				v = strings.TrimPrefix(f, " ")
			}
			out[k] = append(out[k], v)
		}
	}
	return out
}

// multipartPart is a multipart entity of parts, with extra Content-Type
// parameters given as name, value pairs. Its boundary is random and holds
// "=_", which neither quoted-printable nor base64 can produce, so no
// part's body can hold it.
func multipartPart(subtype string, parts []part, params ...string) part {
	boundary := "=_" + rand.Text()
	p := map[string]string{"boundary": boundary}
	for i := 0; i+1 < len(params); i += 2 {
		p[params[i]] = params[i+1]
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Type", mime.FormatMediaType("multipart/"+subtype, p))
	return part{header: h, write: func(w io.Writer) error {
		mw := multipart.NewWriter(w)
		if err := mw.SetBoundary(boundary); err != nil {
			return err
		}
		for _, c := range parts {
			pw, err := mw.CreatePart(folded(c.header))
			if err != nil {
				return err
			}
			if err := c.write(pw); err != nil {
				return err
			}
		}
		return mw.Close()
	}}
}
