package messages

import "time"

// RcptStatus is where a recipient stands.
type RcptStatus uint8

// Recipient states. Only Pending recipients are delivered; Delivered and
// Failed are final.
const (
	StatusPending RcptStatus = iota
	StatusDelivered
	StatusFailed
)

// Final reports whether no more delivery attempts will be made.
func (s RcptStatus) Final() bool { return s != StatusPending }

func (s RcptStatus) String() string {
	switch s {
	case StatusPending:
		return "pending"
	case StatusDelivered:
		return "delivered"
	case StatusFailed:
		return "failed"
	}
	return "unknown"
}

// Recipient is one RCPT TO of a message and its delivery state. Index is the
// recipient's position in the envelope and never changes; the journal keys
// a recipient's state record by it.
type Recipient struct {
	Index  uint32
	Addr   string
	Notify Notify
	ORcpt  string // ORCPT= as given: "addr-type;xtext-decoded-address", or ""

	Status      RcptStatus
	Queue       string    // virtual queue chosen by the schedule strategy
	Attempts    int       // delivery attempts made so far
	NextAttempt time.Time // when the next attempt is due (Pending only)
	LastReply   Reply     // the last reply or error seen for this recipient
	NotifyNum   int       // delayed DSNs sent so far
}
