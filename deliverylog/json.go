package deliverylog

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// The writer encodes an Event by hand: encoding/json's reflection cost
// about 3% of the daemon's CPU at ~18,000 events a second. The output is
// byte for byte what json.Marshal produces (FuzzAppendJSON compares the
// two), so the log's format did not change.

// appendLine appends e's line of the log, newline included. An event
// whose times time.Time.MarshalJSON rejects (a year outside [0,9999], a
// zone offset of a day or more) goes through encoding/json itself, which
// fails on it as the writer always has: no line and the same error.
// The daemon should never meet one (Time is time.Now(), NextTry now plus
// at most a time.Duration, or an expiry computed from a journaled arrival),
// but an Event is a plain struct and this keeps the log's behaviour exact.
func appendLine(b []byte, e *Event) ([]byte, error) {
	if !e.marshalable() {
		out, err := json.Marshal(e)
		if err != nil {
			return b, err
		}
		b = append(b, out...) // not reached while marshalable is exact
	} else {
		b = e.appendJSON(b)
	}
	return append(b, '\n'), nil
}

// marshalable reports whether json.Marshal(e) succeeds: only its times can
// make it fail.
func (e *Event) marshalable() bool {
	return rfc3339OK(e.Time) && (e.NextTry.IsZero() || rfc3339OK(e.NextTry))
}

// The first second of year 0 and of year 10000, counted like Unix time
// but in a time's own zone (its Unix time plus its zone offset).
var (
	year0Sec     = time.Date(0, time.January, 1, 0, 0, 0, 0, time.UTC).Unix()
	year10000Sec = time.Date(10000, time.January, 1, 0, 0, 0, 0, time.UTC).Unix()
)

// rfc3339OK reports whether t.MarshalJSON succeeds: it rejects a year
// that is not exactly four digits and a zone offset whose hours are not
// in [0,23]. The local seconds wrap as time's own formatting does, so the
// year is the one MarshalJSON would print.
func rfc3339OK(t time.Time) bool {
	_, off := t.Zone()
	if off <= -24*60*60 || off >= 24*60*60 {
		return false
	}
	local := t.Unix() + int64(off)
	return year0Sec <= local && local < year10000Sec
}

// appendJSON appends exactly what json.Marshal(e) returns. It must only be
// called when e.marshalable(): for the other events json.Marshal returns
// an error, not bytes.
func (e *Event) appendJSON(b []byte) []byte {
	b = append(b, `{"time":`...)
	b = appendTime(b, e.Time)
	b = append(b, `,"event":`...)
	b = appendString(b, e.Event)
	b = append(b, `,"msgid":`...)
	b = appendString(b, e.MsgID)
	b = appendStringField(b, `,"rcpt":`, e.Rcpt)
	if e.Sender != nil { // omitempty omits only a nil pointer
		b = append(b, `,"sender":`...)
		b = appendString(b, *e.Sender)
	}
	b = appendStringField(b, `,"queue":`, e.Queue)
	b = appendStringField(b, `,"domain":`, e.Domain)
	b = appendStringField(b, `,"host":`, e.Host)
	b = appendStringField(b, `,"ip":`, e.IP)
	b = appendIntField(b, `,"attempt":`, int64(e.Attempt))
	b = appendIntField(b, `,"code":`, int64(e.Code))
	b = appendStringField(b, `,"enhanced":`, e.Enhanced)
	b = appendStringField(b, `,"reply":`, e.Reply)
	b = appendIntField(b, `,"size":`, e.Size)
	b = appendIntField(b, `,"rcpts":`, int64(e.Rcpts))
	if !e.NextTry.IsZero() { // omitzero calls IsZero
		b = append(b, `,"next_attempt":`...)
		b = appendTime(b, e.NextTry)
	}
	b = appendStringField(b, `,"dsn_msgid":`, e.DSN)
	b = appendStringField(b, `,"rule":`, e.Rule)
	b = appendStringField(b, `,"action":`, e.Action)
	if len(e.Metadata) > 0 {
		b = append(b, `,"metadata":`...)
		b = appendMetadata(b, e.Metadata)
	}
	return append(b, '}')
}

// appendStringField appends name and s unless s is empty (omitempty).
func appendStringField(b []byte, name, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(append(b, name...), s)
}

// appendIntField appends name and n unless n is 0 (omitempty).
func appendIntField(b []byte, name string, n int64) []byte {
	if n == 0 {
		return b
	}
	return strconv.AppendInt(append(b, name...), n, 10)
}

// appendTime appends t as t.MarshalJSON does; t must be rfc3339OK.
func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendMetadata appends m as an object with its keys in byte order, as
// encoding/json sorts them.
func appendMetadata(b []byte, m map[string]string) []byte {
	var stack [8]string // enough for the usual tenant and campaign
	keys := stack[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = appendString(b, m[k])
	}
	return append(b, '}')
}

// asciiEscape[c] is 0 when the ASCII byte c stands for itself in a JSON
// string as encoding/json writes it, else the letter after the backslash
// of its escape: 'u' for the \u00XX form. encoding/json escapes HTML's
// <, > and & by default, and writes \b and \f as well as \n, \r and \t in
// short form.
var asciiEscape = func() (t [utf8.RuneSelf]byte) {
	for c := range byte(0x20) {
		t[c] = 'u'
	}
	t['\b'], t['\f'], t['\n'], t['\r'], t['\t'] = 'b', 'f', 'n', 'r', 't'
	t['"'], t['\\'] = '"', '\\'
	t['<'], t['>'], t['&'] = 'u', 'u', 'u'
	return t
}()

const hexDigits = "0123456789abcdef"

// appendString appends s quoted as encoding/json quotes a string: the
// escapes of asciiEscape, U+2028 and U+2029 as \u2028 and \u2029 (they
// end a line in JavaScript), and each byte that is not part of valid
// UTF-8 as \ufffd.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	done := 0 // s[:done] is in b
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if asciiEscape[c] != 0 {
				b = appendEscapedASCII(append(b, s[done:i]...), c)
				done = i + 1
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if esc := runeEscape(r, n); esc != "" {
			b = append(append(b, s[done:i]...), esc...)
			done = i + n
		}
		i += n
	}
	b = append(b, s[done:]...)
	return append(b, '"')
}

// appendEscapedASCII appends the escape of c, a byte asciiEscape marks.
func appendEscapedASCII(b []byte, c byte) []byte {
	if esc := asciiEscape[c]; esc != 'u' {
		return append(b, '\\', esc)
	}
	return append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
}

// runeEscape is what replaces the n bytes that decoded as r, or "" when
// they stand for themselves.
func runeEscape(r rune, n int) string {
	switch {
	case r == utf8.RuneError && n == 1: // invalid UTF-8, not an encoded U+FFFD
		return `\ufffd`
	case r == '\u2028':
		return `\u2028`
	case r == '\u2029':
		return `\u2029`
	}
	return ""
}
