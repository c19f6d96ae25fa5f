package main

import (
	"fmt"
	"strconv"
	"time"
)

// Header fields the sink reads back.
const (
	hdrRun  = "X-Bench-Run"
	hdrID   = "X-Bench-Id"
	hdrSent = "X-Bench-Sent"
)

// Body filler: lines of lineChars characters, each ended by CRLF.
const (
	lineChars = 76
	lineBytes = lineChars + 2
	alphabet  = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	minSize   = 512 // room for the header section and a short body
)

// generator builds the benchmark messages of a plan: RFC 5322 messages of
// exactly plan.size bytes with CRLF line endings. No line starts with a dot,
// so the bytes on the wire are the message plus the final ".\r\n".
// A generator is read-only after newGenerator and safe for concurrent use.
type generator struct {
	plan   *plan
	filler []byte // whole filler lines, one more than the largest body needs
}

func newGenerator(p *plan) *generator {
	lines := p.size/lineBytes + 2
	filler := make([]byte, 0, lines*lineBytes)
	for i := range lines {
		for k := range lineChars {
			filler = append(filler, alphabet[(i+k)%len(alphabet)])
		}
		filler = append(filler, '\r', '\n')
	}
	return &generator{plan: p, filler: filler}
}

// build appends message id, sent at sent, to buf[:0] and returns it.
func (g *generator) build(buf []byte, id int, sent time.Time) ([]byte, error) {
	b := g.plan.appendHeader(buf[:0], id, sent)
	body := g.plan.size - len(b)
	if body < 2 {
		return nil, fmt.Errorf("message size %d is too small for the %d-byte header section", g.plan.size, len(b))
	}
	return g.appendBody(b, body), nil
}

// appendHeader appends the header section of message id, blank line
// included.
func (p *plan) appendHeader(b []byte, id int, sent time.Time) []byte {
	b = append(b, "From: mtad bench <"+senderAddr+">\r\nTo: <"...)
	b = append(b, p.addr(id*p.rcpts)...)
	b = append(b, ">\r\nSubject: mtad bench message "...)
	b = strconv.AppendInt(b, int64(id), 10)
	b = append(b, "\r\nDate: "...)
	b = sent.AppendFormat(b, time.RFC1123Z)
	b = append(b, "\r\nMessage-ID: <"...)
	b = strconv.AppendInt(b, int64(id), 10)
	b = append(b, '.')
	b = append(b, p.run...)
	b = append(b, "@sender.bench.test>\r\nMIME-Version: 1.0\r\n"...)
	b = append(b, "Content-Type: text/plain; charset=us-ascii\r\n"...)
	b = append(b, hdrRun+": "+p.run+"\r\n"+hdrID+": "...)
	b = strconv.AppendInt(b, int64(id), 10)
	b = append(b, "\r\n"+hdrSent+": "...)
	b = strconv.AppendInt(b, sent.UnixNano(), 10)
	return append(b, "\r\n\r\n"...)
}

// bodySize is the size of the body of message id sent at sentUnixNano (its
// X-Bench-Sent): what follows the header section's blank line. The sink
// checks it, since mtad adds trace fields to the header section only.
func (p *plan) bodySize(id int, sentUnixNano int64) int {
	var buf [512]byte
	return p.size - len(p.appendHeader(buf[:0], id, time.Unix(0, sentUnixNano)))
}

// appendBody appends exactly n >= 2 bytes of filler lines. A remainder of
// one byte cannot be a line, so then one full line gives up a character
// and the body ends with an empty line.
func (g *generator) appendBody(b []byte, n int) []byte {
	full, rest := n/lineBytes, n%lineBytes
	if rest == 1 {
		full--
		b = append(b, g.filler[:full*lineBytes]...)
		b = append(b, g.filler[full*lineBytes:full*lineBytes+lineChars-1]...)
		return append(b, "\r\n\r\n"...)
	}
	b = append(b, g.filler[:full*lineBytes]...)
	if rest == 0 {
		return b
	}
	b = append(b, g.filler[full*lineBytes:full*lineBytes+rest-2]...)
	return append(b, '\r', '\n')
}
