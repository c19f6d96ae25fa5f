package submission

import (
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/mtad/mtad/internal/crlf"
	"github.com/mtad/mtad/messages"
)

// normalizeEOL rewrites every bare LF and every bare CR in b as CRLF and
// leaves CRLF alone; it returns b itself when there is nothing to rewrite.
//
// This is mtad's SMTP smuggling defence (CVE-2023-51764 and kin). The
// framing is already strict: go-smtp v0.25.1 ends DATA only at
// <CRLF>.<CRLF>, so "\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r\n" cannot end a
// message early or split it, and the next command is read as a command
// (go-smtp dot-unstuffs only after CRLF, which drops the dot of
// "\r\n.\n" and the ".\r" of "\r\n.\r": RFC 5321 4.5.2 read with CRLF as
// the only line end). The danger is downstream: a stored bare LF or CR
// is forwarded to the next hop, which may take it for a line end and see
// an end of data there. We chose to normalize, as Postfix does by default
// (smtpd_forbid_bare_newline = normalize since 3.9), rather than to reject:
// programs that submit mail through an outbound MTA often write bare LF,
// and after normalization the stored message has CRLF line ends only
// (RFC 5322 2.3), so any dot line in it is dot-stuffed when it is sent on
// and no later hop can read it two ways. Bare CR is normalized too: a few
// receivers end lines on it ("\r.\r\n"), and RFC 5322 forbids it as much
// as bare LF. BINARYMIME, whose bodies may hold bare CR and LF, is not
// offered.
func normalizeEOL(b []byte) []byte {
	extra := bareEOLs(b)
	if extra == 0 {
		return b
	}
	out := make([]byte, 0, len(b)+extra)
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '\r' && i+1 < len(b) && b[i+1] == '\n':
			out = append(out, '\r', '\n')
			i++
		case c == '\r' || c == '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, c)
		}
	}
	return out
}

// bareEOLs counts the bare CRs and bare LFs in b.
func bareEOLs(b []byte) int {
	n := 0
	for i, c := range b {
		switch {
		case c == '\r' && (i+1 == len(b) || b[i+1] != '\n'):
			n++
		case c == '\n' && (i == 0 || b[i-1] != '\r'):
			n++
		}
	}
	return n
}

// eolWriter is the streaming form of normalizeEOL, for a body read from
// the network: it writes what it is given to w with every bare LF and
// every bare CR rewritten as CRLF, and CRLF left alone, and keeps no more
// state across writes than a CR that ended the last one, whose fate waits
// for the next byte. Close writes the CRLF of such a CR at the end of the
// body.
type eolWriter struct {
	w  io.Writer
	cr bool // the last byte given was a CR, not written yet
}

var crlfBytes = []byte("\r\n")

// Write passes on runs of bytes whose line ends are CRLF in one write, and
// writes a CRLF in place of each bare CR or LF.
func (e *eolWriter) Write(p []byte) (int, error) {
	n := len(p)
	if e.cr && len(p) > 0 {
		e.cr = false
		if p[0] == '\n' {
			p = p[1:]
		}
		if _, err := e.w.Write(crlfBytes); err != nil {
			return 0, err
		}
	}
	if len(p) > 0 && p[len(p)-1] != '\r' && crlf.Only(p) {
		// The common case: mail that is CRLF already, checked at memory
		// speed and passed on as it is.
		if err := e.write(p); err != nil {
			return 0, err
		}
		return n, nil
	}
	clean := 0 // p[clean:i] needs no rewriting
	for i := 0; ; {
		j := bytes.IndexAny(p[i:], "\r\n")
		if j < 0 {
			break
		}
		j += i
		if p[j] == '\r' && j+1 < len(p) && p[j+1] == '\n' {
			i = j + 2
			continue
		}
		if err := e.write(p[clean:j]); err != nil {
			return 0, err
		}
		i, clean = j+1, j+1
		if p[j] == '\r' && j+1 == len(p) {
			e.cr = true // a CRLF split between two writes, or a bare CR
			break
		}
		if _, err := e.w.Write(crlfBytes); err != nil {
			return 0, err
		}
	}
	if err := e.write(p[clean:]); err != nil {
		return 0, err
	}
	return n, nil
}

func (e *eolWriter) write(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	_, err := e.w.Write(p)
	return err
}

// Close ends a body whose last byte was a CR. It does not close w.
func (e *eolWriter) Close() error {
	if !e.cr {
		return nil
	}
	e.cr = false
	_, err := e.w.Write(crlfBytes)
	return err
}

// receivedHeader is the trace header of RFC 5321 4.4 (RFC 5322 3.6.7):
//
//	Received: from <helo> (<address-literal>)
//		by <hostname> with <protocol> id <msgid>;
//		<date-time>
//
// A HELO name that is neither a domain nor an address literal is written
// "unknown" (it stays in Envelope.Helo); the TCP-info is the client's
// address literal (RFC 5321 4.1.3).
func receivedHeader(env *messages.Envelope, ip netip.Addr, hostname, proto string) string {
	return fmt.Sprintf("Received: from %s (%s)\r\n\tby %s with %s id %s;\r\n\t%s\r\n",
		heloName(env.Helo), addressLiteral(ip), hostname, proto, env.ID, env.Arrival.Format(time.RFC1123Z))
}

func heloName(helo string) string {
	if !validDomain(helo, false) {
		return "unknown"
	}
	return helo
}

func addressLiteral(ip netip.Addr) string {
	switch {
	case !ip.IsValid():
		return "unknown"
	case ip.Is4():
		return "[" + ip.String() + "]"
	}
	return "[IPv6:" + ip.String() + "]"
}

// withProtocol is the "with" clause: ESMTP and its S (TLS) and A (AUTH)
// forms (RFC 3848), UTF8SMTP for an SMTPUTF8 transaction (RFC 6531 4.3).
// go-smtp does not tell HELO from EHLO, so "SMTP" is never used.
func withProtocol(utf8, tls, auth bool) string {
	p := "ESMTP"
	if utf8 {
		p = "UTF8SMTP"
	}
	if tls {
		p += "S"
	}
	if auth {
		p += "A"
	}
	return p
}
