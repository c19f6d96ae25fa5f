package messages

import "time"

// The actor protocol. Values are created by their sender and never changed
// after they are sent; pointers among them point at such frozen values.

// Enqueue hands a journaled message to the dispatcher: a new submission, or
// one recovered from the journal at start-up. The receiver owns Env.
type Enqueue struct {
	Env *Envelope
}

// QueueWork gives a queue actor the recipients of a message that its
// schedule placed there. The queue owns Env (a copy of its own); Rcpts are
// the indices it is responsible for; Shared says other queues hold the
// message's other recipients.
type QueueWork struct {
	Env    *Envelope
	Rcpts  []uint32
	Shared bool
	Reload bool // replayed from the journal into a restarted queue
}

// JobRcpt is one recipient of a delivery job.
type JobRcpt struct {
	Index  uint32
	Addr   string
	Notify Notify
	ORcpt  string
}

// Job is one transaction to one destination: all recipients of one message
// that go there together. The queue actor creates it; destination and
// connection actors read it.
type Job struct {
	Seq        uint64 // unique within its queue actor
	MsgID      MsgID
	Queue      string
	Dest       string // destination key
	From       string
	Rcpts      []JobRcpt
	Size       int64
	Body       BodyType
	SMTPUTF8   bool
	RequireTLS bool
	Ret        Ret
	EnvID      string
	Attempt    int    // attempt number (1 for the first)
	LastError  string // the class of the last failure (for the TLS strategy's last_error)
	Arrival    time.Time
	Source     string
	Priority   int
}

// JobResult reports a finished job: one reply per Job.Rcpts entry, in order.
// Host and IP name the server that gave them, when one was reached.
type JobResult struct {
	Job       *Job
	Replies   []Reply
	Host      string
	IP        string
	RemoteDSN bool // the next hop advertised DSN: success notices are its job now
	Local     bool // delivered into a local mailbox (final delivery)
}

// DestinationIdle tells a queue actor that a destination has no work and no
// connections; the queue stops it if it has sent it nothing since.
type DestinationIdle struct {
	Dest string
}

// Drain asks the engine to stop starting deliveries and to report, by
// closing Done, when every delivery in flight has finished and its outcome
// is journaled.
type Drain struct {
	Done chan struct{}
}
