package dsn

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/mtad/mtad/messages"
)

// Action is what the reporting MTA did for a recipient (RFC 3464 section
// 2.3.3).
type Action string

// Actions.
const (
	Failed    Action = "failed"
	Delayed   Action = "delayed"
	Delivered Action = "delivered"
	Relayed   Action = "relayed"
	Expanded  Action = "expanded"
)

// success reports whether a is one of the actions NOTIFY=SUCCESS asks for.
func (a Action) success() bool { return a == Delivered || a == Relayed || a == Expanded }

func (a Action) valid() bool { return a == Failed || a == Delayed || a.success() }

// DefaultMaxFull is the largest original that RET=FULL gets back whole when
// Report.MaxFull is not set.
const DefaultMaxFull = 1 << 20

// maxPath bounds the return path Build addresses: RFC 5321 section 4.5.3.1.3
// allows 256 octets; anything much longer is not an address.
const maxPath = 512

// Errors for a Report that gets no DSN; reach them with errors.Is.
var (
	ErrNoEnvelope   = errors.New("dsn: no envelope")
	ErrNoRecipients = errors.New("dsn: no recipients to report on")
	// ErrNullSender: a message with the null reverse-path never gets a DSN
	// (RFC 3461 section 6.2, RFC 5321 section 4.5.5).
	ErrNullSender = errors.New("dsn: null reverse-path")
)

// Recipient is what a DSN says about one recipient.
type Recipient struct {
	Addr   string // the recipient as we had it (Final-Recipient)
	ORcpt  string // ORCPT as given, "type;address" (Original-Recipient), or ""
	Action Action
	// Status is the RFC 3463 status code; when empty it is the reply's
	// enhanced code, else the class of its code (2.0.0, 4.0.0, 5.0.0), else
	// a code for the class of a local error.
	Status string
	// Reply is the last reply: with a Code it becomes the Diagnostic-Code;
	// without one it is a local error, described by its Class only.
	Reply          messages.Reply
	RemoteMTA      string    // the host that gave Reply, "mx1.example.net" (or "dns; mx1..."), or ""
	LastAttempt    time.Time // Last-Attempt-Date, when non-zero
	WillRetryUntil time.Time // Will-Retry-Until, when non-zero and Action is Delayed
}

// Report is everything one DSN says: one message, some of its recipients.
type Report struct {
	ReportingMTA string             // our host name, for Reporting-MTA, From and Message-ID
	Envelope     *messages.Envelope // the original's envelope
	Recipients   []Recipient        // the recipients this DSN reports on
	Original     []byte             // the original message as journaled (or its first MaxFull+1 bytes), or nil
	OriginalSize int64              // the original's whole size when Original is a prefix; 0: len(Original)
	Now          time.Time          // the DSN's Date; time.Now() when zero
	MaxFull      int                // largest original returned whole; DefaultMaxFull when <= 0
}

// Wanted reports whether a recipient with NOTIFY n asked for a DSN with
// action a (RFC 3461 section 4.1): none with NEVER; failures and delays
// when NOTIFY was not given; otherwise what it names, SUCCESS covering
// delivered, relayed and expanded.
func Wanted(n messages.Notify, a Action) bool {
	switch {
	case n&messages.NotifyNever != 0:
		return false
	case n == 0:
		return a == Failed || a == Delayed
	case a == Failed:
		return n&messages.NotifyFailure != 0
	case a == Delayed:
		return n&messages.NotifyDelay != 0
	case a.success():
		return n&messages.NotifySuccess != 0
	}
	return false
}

// Build renders the DSN for r as a complete message with CRLF line ends, to
// be sent from the null reverse-path to r.Envelope.From. It fails for a nil
// envelope, a null or malformed return path, no recipients, a recipient
// without an address or with an unknown action, or a bad ReportingMTA.
func Build(r Report) ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	if r.Now.IsZero() {
		r.Now = time.Now()
	}
	ret := r.returned()
	parts := []part{r.textPart(ret), r.statusPart()}
	if len(ret.data) > 0 {
		parts = append(parts, ret.part(r.Envelope.SMTPUTF8))
	}
	boundary, err := pickBoundary("=_"+r.unique(), parts)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	r.writeHeader(&b, boundary)
	writeParts(&b, boundary, parts)
	return b.Bytes(), nil
}

func (r *Report) check() error {
	env := r.Envelope
	switch {
	case env == nil:
		return ErrNoEnvelope
	case env.From == "":
		return ErrNullSender
	case len(r.Recipients) == 0:
		return ErrNoRecipients
	case !hostName(r.ReportingMTA):
		return fmt.Errorf("dsn: reporting MTA %q is not a host name", r.ReportingMTA)
	}
	if err := checkPath(env.From, env.SMTPUTF8); err != nil {
		return err
	}
	for i, rc := range r.Recipients {
		if rc.Addr == "" {
			return fmt.Errorf("dsn: recipient %d has no address", i)
		}
		if !rc.Action.valid() {
			return fmt.Errorf("dsn: recipient %d: unknown action %q", i, rc.Action)
		}
	}
	return nil
}

// checkPath accepts a return path that can stand in a To field as it is.
func checkPath(p string, smtputf8 bool) error {
	if len(p) > maxPath {
		return fmt.Errorf("dsn: return path of %d bytes", len(p))
	}
	if !utf8.ValidString(p) {
		return errors.New("dsn: return path is not UTF-8")
	}
	for _, c := range p {
		if c < 0x20 || c == 0x7f || c == '<' || c == '>' || (c >= 0x80 && !smtputf8) {
			return fmt.Errorf("dsn: return path %q has a character a header cannot hold", p)
		}
	}
	return nil
}

// hostName accepts a domain name or an address literal's inside: letters,
// digits and ".-_:", at most 253 bytes.
func hostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, c := range []byte(s) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '-' || c == '_' || c == ':'
		if !ok {
			return false
		}
	}
	return true
}

// unique names this DSN: the message, the instant and the recipients it
// reports on. It is the Message-ID's left part and the boundary's stem.
func (r *Report) unique() string {
	h := fnv.New32a()
	for _, rc := range r.Recipients {
		fmt.Fprintf(h, "%s\x00%s\x00", rc.Addr, rc.Action)
	}
	return fmt.Sprintf("%s.%s.%08x", r.Envelope.ID, strconv.FormatInt(r.Now.UnixNano(), 36), h.Sum32())
}

// subject says in a few words what the DSN reports.
func (r *Report) subject() string {
	kind := func(a Action) Action {
		if a.success() {
			return Delivered
		}
		return a
	}
	first := kind(r.Recipients[0].Action)
	for _, rc := range r.Recipients[1:] {
		if kind(rc.Action) != first {
			return "Delivery Status Notification"
		}
	}
	switch first {
	case Failed:
		return "Undelivered Mail Returned to Sender"
	case Delayed:
		return "Delivery Status Notification (Delay)"
	}
	return "Successful Mail Delivery Report"
}

func (r *Report) anyFailed() bool {
	for _, rc := range r.Recipients {
		if rc.Action == Failed {
			return true
		}
	}
	return false
}

// date renders t for a Date or DSN date field (RFC 5322 section 3.3, with
// the numeric zone RFC 3464 section 2.2.5 requires).
func date(t time.Time) string { return t.Format(time.RFC1123Z) }
