// Package deliverylog writes the operator's record of what happened to each
// message: one JSON object a line per event (accepted, attempt, delivered,
// deferred, failed). Writes go into a bounded batch that one writer
// goroutine takes and writes every 50 ms, so a slow disk never stalls an
// actor; when the buffer is full the event is counted as dropped and the
// drop is reported, never blocked on.
package deliverylog

import (
	"bufio"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mtad/mtad/metrics"
)

// Event kinds.
const (
	Accepted  = "accepted"
	Attempt   = "attempt"
	Delivered = "delivered"
	Deferred  = "deferred"
	Failed    = "failed"
	DSN       = "dsn"     // a delivery status notification was queued for the sender
	Shaping   = "shaping" // a response-driven shaping rule acted on a destination
)

// Event is one line of the delivery log.
type Event struct {
	Time     time.Time         `json:"time"`
	Event    string            `json:"event"`
	MsgID    string            `json:"msgid"`
	Rcpt     string            `json:"rcpt,omitempty"`
	Sender   *string           `json:"sender,omitempty"`
	Queue    string            `json:"queue,omitempty"`
	Domain   string            `json:"domain,omitempty"`
	Host     string            `json:"host,omitempty"`
	IP       string            `json:"ip,omitempty"`
	Attempt  int               `json:"attempt,omitempty"`
	Code     int               `json:"code,omitempty"`
	Enhanced string            `json:"enhanced,omitempty"`
	Reply    string            `json:"reply,omitempty"`
	Size     int64             `json:"size,omitempty"`
	Rcpts    int               `json:"rcpts,omitempty"`
	NextTry  time.Time         `json:"next_attempt,omitzero"`
	DSN      string            `json:"dsn_msgid,omitempty"` // the DSN message's id
	Rule     string            `json:"rule,omitempty"`      // the shaping rule that fired
	Action   string            `json:"action,omitempty"`    // what it did (until next_attempt)
	Metadata map[string]string `json:"metadata,omitempty"`  // what an HTTP injection attached (tenant, campaign)
	Arrival  time.Time         `json:"-"`                   // the message's arrival, for the latency metric
}

// Log is the delivery log. A nil *Log discards events.
//
// Write appends to a batch under a mutex. The first event of a batch wakes
// the writer goroutine, which lets gatherFor pass (less when the batch
// reaches kickAt events), then takes the batch, encodes it and writes it
// with one flush. So an event costs neither a goroutine wake-up nor a
// write of its own (at thousands of messages a second both were
// measurable in profiles), a line reaches the file within a few
// milliseconds (what a crash can lose), and an idle log sleeps.
type Log struct {
	observe func(Event) // sees every event (webhooks); nil: none
	done    chan struct{}
	first   chan struct{} // cap 1: a batch got its first event
	full    chan struct{} // cap 1: a batch reached kickAt
	stop    chan struct{} // closed by Close
	dropped atomic.Int64
	logger  *slog.Logger

	mu     sync.Mutex
	batch  []Event // waiting for the writer
	max    int     // events batch may hold; 0: there is no writer
	kickAt int
	closed bool
}

// gatherFor is how long the writer waits after a batch's first event
// before it takes the batch.
const gatherFor = 5 * time.Millisecond

// New starts a log writing to w with a buffer of n events. A nil w
// writes nothing: the log then only feeds observe.
func New(w io.Writer, n int, logger *slog.Logger) *Log {
	return NewObserved(w, n, logger, nil)
}

// NewObserved is New with observe called with every event (time stamped)
// on the goroutine that calls Write, before the event is buffered for the
// writer; observe must not block.
func NewObserved(w io.Writer, n int, logger *slog.Logger, observe func(Event)) *Log {
	l := &Log{observe: observe, done: make(chan struct{}), logger: logger}
	if w == nil {
		close(l.done)
		return l
	}
	l.max, l.kickAt = max(n, 1), max(n/4, 1)
	l.first, l.full, l.stop = make(chan struct{}, 1), make(chan struct{}, 1), make(chan struct{})
	go l.run(w)
	return l
}

// Write records e without blocking; it stamps the time when e has none.
// The writer reads e later, on its own goroutine: what e points to (its
// Sender, its Metadata map, which is the message's own) must not change
// after Write. Nothing changes a message's metadata once it is accepted.
func (l *Log) Write(e Event) {
	metrics.Events.WithLabelValues(e.Event, e.Queue).Inc()
	if e.Event == Delivered && !e.Arrival.IsZero() {
		metrics.DeliveryLatency.WithLabelValues(e.Queue).Observe(time.Since(e.Arrival).Seconds())
	}
	if l == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if l.observe != nil {
		l.observe(e)
	}
	if l.max == 0 {
		return
	}
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		l.dropped.Add(1)
		return
	case len(l.batch) >= l.max:
		l.mu.Unlock()
		if l.dropped.Add(1) == 1 {
			l.logger.Warn("delivery log buffer full: dropping events")
		}
		return
	}
	l.batch = append(l.batch, e)
	n := len(l.batch)
	l.mu.Unlock()
	if n == 1 {
		signal(l.first)
	}
	if n == l.kickAt {
		signal(l.full)
	}
}

// signal wakes the writer if it waits on c, without blocking.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Dropped reports how many events were dropped because the buffer was full.
func (l *Log) Dropped() int64 { return l.dropped.Load() }

// Close writes what is buffered and stops the writer. A Write after Close
// is counted as dropped.
func (l *Log) Close() {
	if l == nil {
		return
	}
	l.mu.Lock()
	if !l.closed && l.stop != nil {
		close(l.stop)
	}
	l.closed = true
	l.mu.Unlock()
	<-l.done
}

func (l *Log) run(w io.Writer) {
	defer close(l.done)
	bw := bufio.NewWriterSize(w, 64<<10)
	var line []byte // reused: one event's line
	t := time.NewTimer(gatherFor)
	defer t.Stop()
	var spare []Event
	for {
		stopping := false
		select {
		case <-l.first:
			t.Reset(gatherFor)
			select {
			case <-t.C:
			case <-l.full:
			case <-l.stop:
				stopping = true
			}
		case <-l.stop:
			stopping = true
		}
		l.mu.Lock()
		batch := l.batch
		l.batch = spare[:0]
		l.mu.Unlock()
		for i := range batch {
			var err error
			if line, err = appendLine(line[:0], &batch[i]); err == nil {
				_, err = bw.Write(line)
			}
			if err != nil {
				l.logger.Error("delivery log write failed", "err", err)
			}
			batch[i] = Event{} // drop references to senders and metadata
		}
		spare = batch
		if err := bw.Flush(); err != nil && len(batch) > 0 {
			l.logger.Error("delivery log flush failed", "err", err)
		}
		if stopping {
			return
		}
	}
}
