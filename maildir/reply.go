package maildir

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/mtad/mtad/messages"
)

// Classes, as found in messages.Reply.Class.
const (
	ClassLocal    = "local"    // a local I/O error, or the mailbox is full
	ClassRcpt     = "rcpt"     // no such mailbox
	ClassAddress  = "address"  // an address that names no safe mailbox path
	ClassCanceled = "canceled" // the caller's context ended the call
	ClassJournal  = "journal"  // the body could not be read (mtad's bodies come from its journal)
)

// The replies Deliver gives. Their texts name no path.
var (
	replyDelivered   = messages.Reply{Code: 250, Enhanced: "2.0.0", Text: "delivered to maildir"}
	replyNoMailbox   = messages.Reply{Code: 550, Enhanced: "5.1.1", Text: "mailbox unavailable", Class: ClassRcpt}
	replyBadAddress  = messages.Reply{Code: 550, Enhanced: "5.1.3", Text: "bad destination mailbox address syntax", Class: ClassAddress}
	replyBadSender   = messages.Reply{Code: 550, Enhanced: "5.1.7", Text: "bad sender's mailbox address syntax", Class: ClassAddress}
	replyFull        = messages.Reply{Code: 452, Enhanced: "4.2.2", Text: "mailbox full", Class: ClassLocal}
	replyIOError     = messages.Reply{Code: 451, Enhanced: "4.3.0", Text: "local delivery failed", Class: ClassLocal}
	replyInterrupted = messages.Reply{Code: 451, Enhanced: "4.3.0", Text: "delivery interrupted", Class: ClassCanceled}
	replyBodyRead    = messages.Reply{Code: 451, Enhanced: "4.3.0", Text: "message body unreadable", Class: ClassJournal}
)

var (
	errNoMailbox = errors.New("maildir: no such mailbox")
	errNoRoot    = errors.New("maildir: Store.Root is empty")
	errBodyGone  = errors.New("maildir: the body was read by a copy that failed, and cannot be read again")
)

// readError is a failure to read the body, not to write a copy.
type readError struct{ err error }

func (e *readError) Error() string { return "maildir: reading the body: " + e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// Error is the detail behind one recipient's reply: the I/O error that made
// it temporary, or a cleanup that failed after a delivery. Reach it with
// errors.As; it may hold paths, so it is for the log only.
type Error struct {
	Rcpt  string
	Reply messages.Reply // what the recipient got
	Err   error
}

func (e *Error) Error() string {
	return fmt.Sprintf("maildir: %s: %s: %v", e.Rcpt, e.Reply, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether the recipient's reply asks for a retry.
func (e *Error) Temporary() bool { return e.Reply.Temporary() }

// classify turns an I/O error into a temporary reply.
func classify(err error) messages.Reply {
	var re *readError
	switch {
	case errors.As(err, &re):
		return replyBodyRead
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return replyFull
	}
	return replyIOError
}
