package admin

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mtad/mtad/messages"
)

// Page sizes of the list.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// filter is a parsed list query. sender is message-level; the others are
// recipient-level: a message matches when one of its recipients matches
// them all.
type filter struct {
	sender    *string // nil: any; "" is the null reverse-path
	rcpt      string
	domain    string
	queue     string
	status    *messages.RcptStatus
	dueBefore time.Time
	dueAfter  time.Time
	limit     int
	cursor    messages.MsgID
}

var params = map[string]func(f *filter, v string) error{
	"sender": func(f *filter, v string) error {
		if v == "<>" {
			v = ""
		}
		v = strings.ToLower(v)
		f.sender = &v
		return nil
	},
	"rcpt":       func(f *filter, v string) error { f.rcpt = strings.ToLower(v); return nil },
	"domain":     func(f *filter, v string) error { f.domain = strings.ToLower(v); return nil },
	"queue":      func(f *filter, v string) error { f.queue = v; return nil },
	"status":     parseStatus,
	"due_before": func(f *filter, v string) (err error) { f.dueBefore, err = parseTime(v); return err },
	"due_after":  func(f *filter, v string) (err error) { f.dueAfter, err = parseTime(v); return err },
	"limit":      parseLimit,
	"cursor":     func(f *filter, v string) (err error) { f.cursor, err = parseID(v); return err },
}

// parseFilter reads the list's query parameters; an error names the
// parameter at fault. An empty value is no filter.
func parseFilter(q url.Values) (*filter, error) {
	f := &filter{limit: DefaultLimit}
	for name, vs := range q {
		set, ok := params[name]
		if !ok {
			return nil, fmt.Errorf("%s: unknown parameter", name)
		}
		if len(vs) != 1 {
			return nil, fmt.Errorf("%s: given %d times, want once", name, len(vs))
		}
		if vs[0] == "" {
			continue // an empty parameter is no filter; the null sender is "<>"
		}
		if err := set(f, vs[0]); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return f, nil
}

func parseStatus(f *filter, v string) error {
	for _, s := range []messages.RcptStatus{messages.StatusPending, messages.StatusDelivered, messages.StatusFailed} {
		if v == s.String() {
			f.status = &s
			return nil
		}
	}
	return fmt.Errorf("%q is not pending, delivered or failed", v)
}

func parseTime(v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time such as 2006-01-02T15:04:05Z", v)
	}
	return t, nil
}

func parseLimit(f *filter, v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxLimit {
		return fmt.Errorf("%q is not a number from 1 to %d", v, MaxLimit)
	}
	f.limit = n
	return nil
}

// match returns the recipients of env that match f, or nil when env does
// not match.
func (f *filter) match(env *messages.Envelope) []messages.Recipient {
	if !f.matchSender(env) {
		return nil
	}
	var out []messages.Recipient
	for _, r := range env.Rcpts {
		if f.matchRcpt(&r) {
			out = append(out, r)
		}
	}
	return out
}

// matchSender applies the message-level filter.
func (f *filter) matchSender(env *messages.Envelope) bool {
	return f.sender == nil || strings.ToLower(env.From) == *f.sender
}

// selects reports whether f filters at all, paging aside.
func (f *filter) selects() bool {
	return f.sender != nil || f.rcpt != "" || f.domain != "" || f.queue != "" || f.status != nil ||
		!f.dueBefore.IsZero() || !f.dueAfter.IsZero()
}

// matchRcpt applies the recipient-level filters. The due window applies to
// next_attempt, which only pending recipients have.
func (f *filter) matchRcpt(r *messages.Recipient) bool {
	switch {
	case f.rcpt != "" && strings.ToLower(r.Addr) != f.rcpt,
		f.domain != "" && messages.Domain(r.Addr) != f.domain,
		f.queue != "" && r.Queue != f.queue,
		f.status != nil && r.Status != *f.status:
		return false
	}
	if f.dueBefore.IsZero() && f.dueAfter.IsZero() {
		return true
	}
	if r.Status != messages.StatusPending {
		return false
	}
	return (f.dueBefore.IsZero() || r.NextAttempt.Before(f.dueBefore)) &&
		(f.dueAfter.IsZero() || r.NextAttempt.After(f.dueAfter))
}
