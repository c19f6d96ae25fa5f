package outbound

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mtad/mtad/messages"
)

// Stages of a session, as found in Error.Stage.
const (
	StageConnect  = "connect"
	StageGreeting = "greeting"
	StageEHLO     = "ehlo"
	StageSTARTTLS = "starttls" // the command, the handshake and VerifyPeer
	StageAuth     = "auth"
	StageMail     = "mail"
	StageRcpt     = "rcpt"
	StageData     = "data"
	StageRset     = "rset"
	StageQuit     = "quit"
)

// Classes, as found in Error.Class and messages.Reply.Class. A reply from the
// server is classed by the stage that drew it: "greeting", "ehlo", "auth",
// "mail", "rcpt", "data" or "rset"; a reply to STARTTLS is classed "tls".
const (
	ClassConnection  = "connection"  // refused, reset or closed
	ClassTimeout     = "timeout"     // a stage's deadline, or the caller's, passed
	ClassCanceled    = "canceled"    // the caller's context was canceled
	ClassProtocol    = "protocol"    // a malformed or unexpected reply
	ClassTLS         = "tls"         // STARTTLS or a handshake failed, or TLS was required; REQUIRETLS refused
	ClassSize        = "size"        // refused here: over the server's SIZE
	ClassUnsupported = "unsupported" // refused here: needs an extension the server lacks
	ClassAddress     = "address"     // refused here: an address no server could be sent
	ClassAuth        = "auth"        // no AUTH mechanism in common, or a bad Auth; as a server's reply at auth
	ClassJournal     = "journal"     // Tx.Body could not be read (mtad's bodies come from its journal)
)

// Sentinels, reached with errors.Is through an *Error.
var (
	// ErrClosed: the Conn was closed, or died in an earlier call.
	ErrClosed = errors.New("outbound: connection closed")
	// ErrNoTargets: Dial was given no target.
	ErrNoTargets = errors.New("outbound: no targets")
	// ErrNoMechanism: the server offers none of the allowed AUTH mechanisms,
	// or no AUTH at all.
	ErrNoMechanism = errors.New("outbound: no AUTH mechanism in common")
	// ErrTLSNotOffered: TLSRequire, and the server does not advertise
	// STARTTLS.
	ErrTLSNotOffered = errors.New("outbound: TLS required but not offered")
)

// maxText bounds the text of a reply or error kept from the network.
const maxText = 512

// Error is a failed step of a session. Temporary tells whether a retry may
// succeed; Code and Enhanced are the server's reply when there was one (Code
// is 0 for a network failure, a timeout or a local refusal, and then
// Temporary is true; a TLS failure without a reply adds Enhanced 4.7.0).
// Two have a code of ours: ErrNoMechanism, 451 4.7.0, and
// ErrTLSNotOffered, 550 5.7.10; VerifyPeer may supply any. A reply to AUTH
// is temporary whatever its code. Reach it with errors.As.
type Error struct {
	Temporary bool
	Code      int    // 4xx or 5xx reply code, or 0
	Enhanced  string // "x.y.z" (RFC 3463), or ""
	Message   string // the server's text, or what went wrong
	Stage     string // Stage* constant
	Class     string // Class* constant, or the stage for a server reply
	Target    string // "host[ip]:port", or "" when Dial tried several
	Err       error  // the underlying error, if any
}

func (e *Error) Error() string {
	s := "outbound: " + e.Stage
	if e.Target != "" {
		s += " at " + e.Target
	}
	return s + ": " + e.detail()
}

func (e *Error) Unwrap() error { return e.Err }

// detail is the reply or failure without stage and target.
func (e *Error) detail() string {
	if e.Code == 0 {
		return e.Message
	}
	return messages.Reply{Code: e.Code, Enhanced: e.Enhanced, Text: e.Message}.String()
}

// Reply renders e for the journal. A server reply keeps the server's words;
// a failure of ours says the stage and target. Reply().Temporary() always
// equals e.Temporary.
func (e *Error) Reply() messages.Reply {
	r := messages.Reply{Code: e.Code, Enhanced: e.Enhanced, Text: e.Message, Class: e.Class}
	if e.Code == 0 {
		r.Text = strings.TrimPrefix(e.Error(), "outbound: ")
	}
	switch {
	case e.Temporary && !r.Temporary():
		r.Code, r.Enhanced = 0, ""
	case !e.Temporary && r.Temporary():
		r.Code, r.Enhanced = 554, "5.0.0"
	}
	return r
}

// fatal reports an error after which the connection cannot be used: no
// reply at all, or 421 (RFC 5321 section 3.8).
func (e *Error) fatal() bool { return e.Code == 0 || e.Code == 421 }

// classify turns a failed step into an *Error. A reply keeps its code; any
// other failure is temporary.
func classify(ctx context.Context, stage string, d time.Duration, err error) *Error {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return replyError(stage, smtpReply(se, stage), err)
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		return replyError(stage, parseReply(te.Code, te.Msg, stage), err)
	}
	return failure(ctx, stage, d, err)
}

// replyError is the *Error for a reply that was not the one expected. Only
// 4xx and 5xx are rejections; anything else is a protocol error.
func replyError(stage string, r messages.Reply, err error) *Error {
	if r.Code < 400 || r.Code > 599 {
		return &Error{Temporary: true, Stage: stage, Class: ClassProtocol,
			Message: "unexpected reply: " + r.String(), Err: err}
	}
	return &Error{Temporary: r.Code < 500, Code: r.Code, Enhanced: r.Enhanced,
		Message: r.Text, Stage: stage, Class: stage, Err: err}
}

// failure is the *Error for a step that got no reply.
func failure(ctx context.Context, stage string, d time.Duration, err error) *Error {
	e := &Error{Temporary: true, Stage: stage, Class: ClassConnection,
		Message: truncate(err.Error()), Err: err}
	var ne net.Error
	var pe textproto.ProtocolError
	var be *bodyError
	switch {
	case errors.As(err, &be):
		e.Class = ClassJournal
	case ctx.Err() != nil:
		e.Class = ClassCanceled
		if ctx.Err() == context.DeadlineExceeded {
			e.Class = ClassTimeout
		}
		e.Message = "stopped: " + context.Cause(ctx).Error()
		e.Err = fmt.Errorf("%w (%w)", context.Cause(ctx), err)
	case errors.As(err, &ne) && ne.Timeout():
		e.Class, e.Message = ClassTimeout, "timed out after "+d.String()
	case errors.As(err, &pe):
		e.Class = ClassProtocol
	}
	return e
}

// smtpReply maps a go-smtp reply to a messages.Reply.
func smtpReply(se *smtp.SMTPError, class string) messages.Reply {
	return messages.Reply{Code: se.Code, Enhanced: enhanced(se.EnhancedCode),
		Text: cleanText(se.Message), Class: class}
}

func enhanced(c smtp.EnhancedCode) string {
	if c[0] < 2 || c[0] > 5 {
		return "" // EnhancedCodeNotSet or NoEnhancedCode
	}
	return fmt.Sprintf("%d.%d.%d", c[0], c[1], c[2])
}

// parseReply splits the enhanced status code (RFC 2034 section 4) off the
// text of a reply that go-smtp did not parse: the greeting, and success
// replies.
func parseReply(code int, msg, class string) messages.Reply {
	r := messages.Reply{Code: code, Text: msg, Class: class}
	first, rest, ok := strings.Cut(msg, " ")
	if ok && isEnhanced(first, code) {
		r.Enhanced = first
		r.Text = strings.ReplaceAll(rest, "\n"+first+" ", "\n")
	}
	r.Text = cleanText(r.Text)
	return r
}

// isEnhanced reports whether s is a status code whose class matches the
// reply code (RFC 3463 section 2).
func isEnhanced(s string, code int) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || parts[0] != strconv.Itoa(code/100) {
		return false
	}
	for _, p := range parts[1:] {
		if n, err := strconv.Atoi(p); err != nil || n < 0 || len(p) > 3 {
			return false
		}
	}
	return true
}

// cleanText joins a multi-line reply into one line and bounds its length.
func cleanText(s string) string {
	return truncate(strings.ReplaceAll(s, "\n", " "))
}

func truncate(s string) string {
	if len(s) <= maxText {
		return s
	}
	return strings.ToValidUTF8(s[:maxText], "") + "..."
}
