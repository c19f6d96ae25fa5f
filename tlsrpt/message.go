package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/mail"
	"strconv"
	"strings"
	"time"
)

// softLine is where header fields are folded (RFC 5322 section 2.1.1).
const softLine = 78

// Gzip returns the report's JSON compressed with gzip, the body of both
// delivery methods (RFC 8460 section 5).
func (rep *Report) Gzip() ([]byte, error) {
	js, err := rep.JSON()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(js); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Message renders the report as a message for mailto rua addresses (RFC
// 8460 section 5.3): a multipart/report; report-type="tlsrpt" with a text
// part for people and the gzipped JSON as application/tlsrpt+gzip, from
// from to the addresses in to, dated now.
func (rep *Report) Message(from string, to []string, now time.Time) ([]byte, error) {
	if rep.OrganizationName == "" || rep.ReportID == "" || rep.Domain() == "" {
		return nil, ErrIncomplete
	}
	submitter, ok1 := hostname(rep.OrganizationName)
	domain, ok2 := hostname(rep.Domain())
	if !ok1 || !ok2 || !msgIDText(rep.ReportID) {
		return nil, fmt.Errorf("tlsrpt: submitter, domain or report-id unfit for a header")
	}
	fromField, err := addressField(from)
	if err != nil {
		return nil, fmt.Errorf("tlsrpt: from: %w", err)
	}
	if len(to) == 0 {
		return nil, fmt.Errorf("tlsrpt: no recipients")
	}
	toFields := make([]string, len(to))
	for i, a := range to {
		if toFields[i], err = addressField(a); err != nil {
			return nil, fmt.Errorf("tlsrpt: to: %w", err)
		}
	}
	gz, err := rep.Gzip()
	if err != nil {
		return nil, err
	}
	uid := rep.uniqueID()
	boundary := "=_tlsrpt_" + uid

	var b bytes.Buffer
	field(&b, "From", fromField)
	field(&b, "To", strings.Join(toFields, ", "))
	field(&b, "Subject", "Report Domain: "+domain+" Submitter: "+submitter+" Report-ID: <"+rep.ReportID+">")
	field(&b, "TLS-Report-Domain", domain)
	field(&b, "TLS-Report-Submitter", submitter)
	field(&b, "Date", now.Format(time.RFC1123Z))
	field(&b, "Message-ID", "<tlsrpt."+uid+"."+strconv.FormatInt(now.Unix(), 36)+"@"+submitter+">")
	field(&b, "Auto-Submitted", "auto-generated")
	field(&b, "MIME-Version", "1.0")
	field(&b, "Content-Type", `multipart/report; report-type="tlsrpt"; boundary="`+boundary+`"`)
	b.WriteString("\r\nThis is a multipart message in MIME format.\r\n")

	b.WriteString("\r\n--" + boundary + "\r\n")
	field(&b, "Content-Type", "text/plain; charset=us-ascii")
	field(&b, "Content-Transfer-Encoding", "7bit")
	b.WriteString("\r\n" + rep.humanText(submitter, domain))

	b.WriteString("\r\n--" + boundary + "\r\n")
	field(&b, "Content-Type", "application/tlsrpt+gzip")
	field(&b, "Content-Transfer-Encoding", "base64")
	field(&b, "Content-Disposition", `attachment; filename="`+rep.filename(submitter, domain, uid)+`"`)
	b.WriteString("\r\n")
	writeBase64(&b, gz)
	b.WriteString("\r\n--" + boundary + "--\r\n")
	return b.Bytes(), nil
}

// humanText is the text part: what the report is, for a person.
func (rep *Report) humanText(submitter, domain string) string {
	return "This is an aggregate TLS report (RFC 8460) from " + submitter + "\r\n" +
		"for the policy domain " + domain + ",\r\n" +
		"covering " + rep.DateRange.Start.UTC().Format(time.RFC3339) +
		" to " + rep.DateRange.End.UTC().Format(time.RFC3339) + ".\r\n" +
		"The report is attached as gzipped JSON.\r\n"
}

// filename is the attachment's name (RFC 8460 section 5.1): submitter,
// policy domain, begin and end as Unix times, and a unique-id of letters
// and digits (the report-id itself has other characters).
func (rep *Report) filename(submitter, domain, uid string) string {
	return submitter + "!" + domain +
		"!" + strconv.FormatInt(rep.DateRange.Start.Unix(), 10) +
		"!" + strconv.FormatInt(rep.DateRange.End.Unix(), 10) +
		"!" + uid + ".json.gz"
}

// uniqueID is 16 hex digits of the report-id's SHA-256, for the file name,
// the boundary and the Message-ID. Hex never holds "=_", so the boundary
// cannot occur in the text or base64 parts.
func (rep *Report) uniqueID() string {
	sum := sha256.Sum256([]byte(rep.ReportID))
	return hex.EncodeToString(sum[:8])
}

// addressField parses a as one address and writes it back for a header,
// which drops anything that is not part of it.
func addressField(a string) (string, error) {
	addr, err := mail.ParseAddress(a)
	if err != nil {
		return "", err
	}
	if !isASCII(addr.Address) {
		return "", fmt.Errorf("address %q is not ASCII", addr.Address)
	}
	return addr.String(), nil
}

// msgIDText says whether id can stand between < and > in a header: no
// space, control, angle bracket or non-ASCII character.
func msgIDText(id string) bool {
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f || c == '<' || c == '>' {
			return false
		}
	}
	return id != ""
}

// field writes one header field, folded at spaces before softLine.
func field(b *bytes.Buffer, name, value string) {
	b.WriteString(name + ":")
	n := len(name) + 1
	for i, w := range strings.Split(value, " ") {
		if i > 0 && n+1+len(w) > softLine {
			b.WriteString("\r\n")
			n = 0
		}
		b.WriteString(" " + w)
		n += 1 + len(w)
	}
	b.WriteString("\r\n")
}

// writeBase64 writes data in base64 lines of 76 characters (RFC 2045
// section 6.8).
func writeBase64(b *bytes.Buffer, data []byte) {
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
}
