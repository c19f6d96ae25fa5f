package quota

import (
	"fmt"
	"strings"

	"github.com/emersion/go-smtp"

	"github.com/mtad/mtad/messages"
)

// Key is what a quota counts by.
type Key string

// Keys.
const (
	Global       Key = ""              // one count for the whole queue
	Sender       Key = "sender"        // per reverse-path
	SenderDomain Key = "sender_domain" // per domain of the reverse-path
	Rcpt         Key = "rcpt"          // per recipient address
	RcptDomain   Key = "rcpt_domain"   // per recipient domain
)

// perRcpt reports whether k is evaluated per recipient.
func (k Key) perRcpt() bool { return k == Rcpt || k == RcptDomain }

func (k Key) valid() bool {
	switch k {
	case Global, Sender, SenderDomain, Rcpt, RcptDomain:
		return true
	}
	return false
}

// messageKey is env's key value for a message-level key.
func messageKey(k Key, env *messages.Envelope) string {
	switch k {
	case Sender:
		return strings.ToLower(env.From)
	case SenderDomain:
		return messages.Domain(env.From)
	}
	return ""
}

// rcptKey is a recipient's key value for a per-recipient key.
func rcptKey(k Key, addr string) string {
	if k == Rcpt {
		return strings.ToLower(addr)
	}
	return messages.Domain(addr)
}

// Quota is one queue quota. Messages and Bytes are the limits; 0 is no
// limit, and at least one must be set.
type Quota struct {
	Name     string
	Key      Key
	Messages int64
	Bytes    int64
	// Match says whether the quota applies; nil means always. It is
	// called without the Book's lock, possibly concurrently, and must not
	// change env. See the package documentation for the recipient it is
	// given.
	Match func(env *messages.Envelope, rc *messages.Recipient) bool
}

func (q *Quota) applies(env *messages.Envelope, rc *messages.Recipient) bool {
	return q.Match == nil || q.Match(env, rc)
}

func (q *Quota) check() error {
	switch {
	case q.Name == "":
		return fmt.Errorf("missing name")
	case !q.Key.valid():
		return fmt.Errorf("unknown key %q (want sender, sender_domain, rcpt, rcpt_domain or none)", string(q.Key))
	case q.Messages < 0 || q.Bytes < 0:
		return fmt.Errorf("negative limit")
	case q.Messages == 0 && q.Bytes == 0:
		return fmt.Errorf("neither a messages nor a bytes limit")
	}
	return nil
}

// ErrFull is the reply to a message refused for a quota: 452 4.3.1 (RFC
// 5321 section 4.2.3, RFC 3463 "mail system full"). It names nothing of
// the configuration. Every *Exceeded unwraps to it.
var ErrFull = &smtp.SMTPError{
	Code:         452,
	EnhancedCode: smtp.EnhancedCode{4, 3, 1},
	Message:      "Insufficient system storage, try again later",
}

// Exceeded is Admit's refusal: the first quota, in configuration order,
// that had no room, and the key value it had none for. It is for logs; the
// SMTP reply is ErrFull.
type Exceeded struct {
	Quota    string
	KeyValue string
}

func (e *Exceeded) Error() string {
	return fmt.Sprintf("queue quota %q exceeded for %q", e.Quota, e.KeyValue)
}

// Unwrap returns ErrFull, so errors.As finds the SMTP reply.
func (e *Exceeded) Unwrap() error { return ErrFull }

// Use is one quota's usage for one key value.
type Use struct {
	Quota    string
	KeyValue string
	Messages int64
	Bytes    int64
}
