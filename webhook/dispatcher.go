package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mtad/mtad/deliverylog"
	"github.com/mtad/mtad/persistence"
)

// Store is the durable outbox. *persistence.Journal implements it; see its
// AppendOutbox, LoadOutbox, LastOutboxSeq and AckOutbox for the contract.
type Store interface {
	AppendOutbox(endpoint string, first uint64, values [][]byte) error
	LoadOutbox(endpoint string, after uint64, limit int) (seqs []uint64, values [][]byte, err error)
	LastOutboxSeq(endpoint string) (uint64, error)
	AckOutbox(endpoint string, upTo uint64) error
}

var _ Store = (*persistence.Journal)(nil)

// maxRound bounds the events the writer takes per round, and so the size
// of one AppendOutbox.
const maxRound = 4096

// Retry bounds of the writer when the Store fails.
const (
	writeRetryMin = 100 * time.Millisecond
	writeRetryMax = 5 * time.Second
)

// Dispatcher sends delivery events to the configured endpoints. See the
// package documentation.
type Dispatcher struct {
	store   Store
	client  *http.Client
	log     *slog.Logger
	senders []*sender // one per endpoint, immutable after New
	events  *prometheus.CounterVec

	idBase string // the start of this Dispatcher, in every event id
	lastID uint64 // the counter in the last event id; owned by the writer

	mu      sync.Mutex // guards pending and closed
	pending []deliverylog.Event
	closed  bool
	wake    chan struct{} // capacity 1: pending has events for the writer

	draining  chan struct{} // closed by Close: write what is pending, send what is written
	writeDone chan struct{} // closed by the writer when it stopped
	ctx       context.Context
	cancel    context.CancelFunc // called when Close's context ends: aborts POSTs and waits
	wg        sync.WaitGroup     // the writer and the senders
	lost      atomic.Int64       // events the writer gave up on
}

// wireEvent is one event as stored in the outbox and POSTed.
type wireEvent struct {
	ID string `json:"id"`
	deliverylog.Event
}

// New starts a Dispatcher for the endpoints of cfg, which it validates.
// Each endpoint resumes with what its outbox in store still holds. A nil
// client means one that does not follow redirects (a 3xx is then a failed
// POST); a nil log discards.
func New(cfg Config, store Store, client *http.Client, log *slog.Logger) (*Dispatcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if client == nil {
		client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Dispatcher{
		store: store, client: client, log: log, events: newEventsMetric(),
		idBase:   strconv.FormatInt(time.Now().UnixNano(), 36),
		wake:     make(chan struct{}, 1),
		draining: make(chan struct{}), writeDone: make(chan struct{}),
	}
	for _, ep := range cfg.Endpoints {
		s, err := newSender(d, ep.withDefaults())
		if err != nil {
			return nil, err
		}
		d.senders = append(d.senders, s)
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.wg.Add(1 + len(d.senders))
	go d.runWriter()
	for _, s := range d.senders {
		go s.run()
	}
	return d, nil
}

// Observe queues e for every endpoint that wants its kind, stamping the
// time when e has none. It does not block on I/O. It does nothing after
// Close.
func (d *Dispatcher) Observe(e deliverylog.Event) {
	if d == nil || !d.wanted(e.Event) {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.pending = append(d.pending, e)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *Dispatcher) wanted(kind string) bool {
	for _, s := range d.senders {
		if s.wants(kind) {
			return true
		}
	}
	return false
}

// Close stops accepting events, writes every pending one to the outbox,
// and sends what the outboxes hold until they are empty or ctx ends, when
// it aborts the POSTs in flight. It returns once every goroutine stopped;
// events still in an outbox are sent by the next Dispatcher on the same
// Store. It returns an error only if events could not be written to the
// outbox, and so are lost.
func (d *Dispatcher) Close(ctx context.Context) error {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	first := !d.closed
	d.closed = true
	d.mu.Unlock()
	if first {
		close(d.draining)
	}
	stop := context.AfterFunc(ctx, d.cancel)
	defer stop()
	d.wg.Wait()
	d.cancel()
	if first {
		d.reportLeft()
	}
	if n := d.lost.Load(); n > 0 {
		return fmt.Errorf("webhook: %d events could not be written to the outbox and are lost", n)
	}
	return nil
}

// reportLeft logs the endpoints whose outbox is not empty.
func (d *Dispatcher) reportLeft() {
	for _, s := range d.senders {
		if n := s.backlog(); n > 0 {
			d.log.Info("webhook: events left in the outbox, to be sent after restart",
				"endpoint", s.ep.Name, "events", n)
		}
	}
}

// runWriter moves pending events to the outboxes until Close.
func (d *Dispatcher) runWriter() {
	defer d.wg.Done()
	defer close(d.writeDone)
	for {
		select {
		case <-d.wake:
			d.writeAll()
		case <-d.draining:
			d.writeAll() // Observe adds nothing any more
			return
		}
	}
}

// writeAll writes rounds until every pending event is in the outboxes. A
// failing Store is retried with backoff until d.ctx ends, when what is
// left is counted lost. Only the writer calls it.
func (d *Dispatcher) writeAll() {
	wait, failing := writeRetryMin, false
	for {
		more, err := d.writeRound()
		if err == nil {
			if failing {
				d.log.Info("webhook: writing to the outbox again")
			}
			if !more {
				return
			}
			wait, failing = writeRetryMin, false
			continue
		}
		if !failing {
			d.log.Error("webhook: cannot write events to the outbox; retrying", "err", err)
			failing = true
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-d.ctx.Done():
			t.Stop()
			d.loseUnwritten()
			return
		}
		wait = min(2*wait, writeRetryMax)
	}
}

// writeRound takes up to maxRound pending events, marshals them, and
// appends what each endpoint has unwritten to its outbox. more reports
// events left for another round. Only the writer calls it.
func (d *Dispatcher) writeRound() (more bool, err error) {
	d.mu.Lock()
	n := min(len(d.pending), maxRound)
	batch := d.pending[:n]
	d.pending = d.pending[n:]
	if len(d.pending) == 0 {
		d.pending = nil // let the backing array go
	}
	more = d.pending != nil
	d.mu.Unlock()
	d.route(batch)
	var errs []error
	for _, s := range d.senders {
		if err := s.appendUnwritten(); err != nil {
			errs = append(errs, err)
		}
		more = more || len(s.unwritten) > 0
	}
	return more, errors.Join(errs...)
}

// route gives each event its id and adds its JSON to the unwritten list of
// every endpoint that wants it. Only the writer calls it.
func (d *Dispatcher) route(batch []deliverylog.Event) {
	for _, e := range batch {
		d.lastID++
		v, err := json.Marshal(wireEvent{ID: d.idBase + "-" + strconv.FormatUint(d.lastID, 10), Event: e})
		if err != nil {
			d.log.Error("webhook: cannot encode event; dropped", "msgid", e.MsgID, "err", err)
			continue
		}
		for _, s := range d.senders {
			if s.wants(e.Event) {
				s.unwritten = append(s.unwritten, v)
			}
		}
	}
}

// loseUnwritten counts and forgets every event not yet in an outbox. Only
// the writer calls it, once d.ctx ended.
func (d *Dispatcher) loseUnwritten() {
	d.mu.Lock()
	n := len(d.pending)
	d.pending = nil
	d.mu.Unlock()
	for _, s := range d.senders {
		n += len(s.unwritten)
		s.unwritten = nil
	}
	if n > 0 {
		d.lost.Add(int64(n))
		d.log.Error("webhook: events not written to the outbox are lost", "events", n)
	}
}
