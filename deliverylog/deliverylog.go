// Package deliverylog writes the operator's record of what happened to each
// message: one JSON object a line per event (accepted, attempt, delivered,
// deferred, failed). Writes go through a buffered channel to one writer
// goroutine, so a slow disk never stalls an actor; when the buffer is full
// the event is counted as dropped and the drop is reported, never blocked on.
package deliverylog

import (
	"bufio"
	"encoding/json"
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
type Log struct {
	observe func(Event) // sees every event (webhooks); nil: none
	ch      chan Event  // nil when there is no writer
	done    chan struct{}
	dropped atomic.Int64
	mu      sync.RWMutex // guards closed against Write racing Close
	closed  bool
	logger  *slog.Logger
}

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
	l.ch = make(chan Event, n)
	go l.run(w)
	return l
}

// Write records e without blocking; it stamps the time when e has none.
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
	if l.ch == nil {
		return
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		l.dropped.Add(1)
		return
	}
	select {
	case l.ch <- e:
	default:
		if l.dropped.Add(1) == 1 {
			l.logger.Warn("delivery log buffer full: dropping events")
		}
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
	if !l.closed && l.ch != nil {
		close(l.ch)
	}
	l.closed = true
	l.mu.Unlock()
	<-l.done
}

func (l *Log) run(w io.Writer) {
	defer close(l.done)
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	for e := range l.ch {
		if err := enc.Encode(e); err != nil {
			l.logger.Error("delivery log write failed", "err", err)
		}
		if len(l.ch) == 0 {
			if err := bw.Flush(); err != nil {
				l.logger.Error("delivery log flush failed", "err", err)
			}
		}
	}
	_ = bw.Flush()
}
