// Package messages holds the values that mtad's parts exchange: the envelope and
// recipient model that the journal stores, and the immutable messages that
// actors send one another. Nothing here does I/O, and a value, once sent to an
// actor, is never changed by its sender.
package messages

import (
	"strings"
	"time"
)

// MsgID names a message for its whole life in one mtad node. IDs are
// allocated in increasing order, so the journal keeps messages in arrival
// order.
type MsgID uint64

// String renders the id as 16 hex digits, the form used in logs and headers.
func (id MsgID) String() string {
	const hex = "0123456789abcdef"
	var b [16]byte
	for i, v := 15, uint64(id); i >= 0; i, v = i-1, v>>4 {
		b[i] = hex[v&0xf]
	}
	return string(b[:])
}

// BodyType is the BODY= parameter of MAIL FROM (RFC 6152, RFC 3030).
type BodyType string

// Body types.
const (
	Body7Bit       BodyType = "7BIT"
	Body8BitMIME   BodyType = "8BITMIME"
	BodyBinaryMIME BodyType = "BINARYMIME"
)

// Ret is the RET= parameter of MAIL FROM (RFC 3461 section 4.3).
type Ret string

// Ret values; RetUnset means the client gave none.
const (
	RetUnset Ret = ""
	RetFull  Ret = "FULL"
	RetHdrs  Ret = "HDRS"
)

// Notify is the NOTIFY= parameter of RCPT TO (RFC 3461 section 4.1), a set
// of bits. Zero means the client gave none (the MTA's default: failures and
// delays).
type Notify uint8

// Notify bits.
const (
	NotifyNever Notify = 1 << iota
	NotifySuccess
	NotifyFailure
	NotifyDelay
)

// String renders n in the RFC 3461 syntax, or "" when n is unset.
func (n Notify) String() string {
	if n&NotifyNever != 0 {
		return "NEVER"
	}
	var parts []string
	if n&NotifySuccess != 0 {
		parts = append(parts, "SUCCESS")
	}
	if n&NotifyFailure != 0 {
		parts = append(parts, "FAILURE")
	}
	if n&NotifyDelay != 0 {
		parts = append(parts, "DELAY")
	}
	return strings.Join(parts, ",")
}

// Envelope is everything mtad knows about a message except its body: the
// SMTP envelope, the submission's parameters and the delivery state of each
// recipient.
type Envelope struct {
	ID      MsgID
	From    string // reverse-path without brackets; "" is the null reverse-path
	Rcpts   []Recipient
	Size    int64 // body size in bytes as journaled
	Arrival time.Time

	Body       BodyType
	SMTPUTF8   bool
	RequireTLS bool // REQUIRETLS (RFC 8689): only over verified TLS to hops that advertise it
	Ret        Ret
	EnvID      string // ENVID= as given (xtext decoded)

	// Where it came from: the client's IP and the EHLO name it used, and
	// how it was admitted ("trusted", "authenticated", "dsn").
	ReceivedFromIP string
	Helo           string
	Source         string
	Priority       int

	// Metadata is what the submitter attached for the operator's
	// strategies and logs (HTTP injection's tenant, campaign, ...);
	// expressions read it as metadata["key"]. Nil for SMTP submission.
	Metadata map[string]string
}

// Pending reports how many recipients are neither delivered nor failed.
func (e *Envelope) Pending() int {
	n := 0
	for i := range e.Rcpts {
		if !e.Rcpts[i].Status.Final() {
			n++
		}
	}
	return n
}

// Domain returns the domain part of an address, lower-cased; "" when the
// address has none.
func Domain(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(addr[i+1:])
}
