package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// sender delivers one endpoint's outbox.
type sender struct {
	d     *Dispatcher
	ep    Endpoint        // with defaults
	kinds map[string]bool // the Events filter; nil means every kind

	// Owned by the writer.
	unwritten [][]byte // events routed here and not yet appended
	next      uint64   // the sequence of unwritten[0]

	written atomic.Uint64 // highest sequence appended; set by the writer
	acked   atomic.Uint64 // highest sequence acknowledged (or skipped); set by run
	notify  chan struct{} // capacity 1: written moved

	// Owned by run.
	sent, retried prometheus.Counter
	downSince     time.Time  // start of the current outage, zero when up
	logged        slog.Level // the level the current outage was logged at; Info when not logged
	failures      int        // failed POSTs in the current outage
}

// newSender returns the sender of ep, resuming from the outbox in d.store.
func newSender(d *Dispatcher, ep Endpoint) (*sender, error) {
	last, err := d.store.LastOutboxSeq(ep.Name)
	if err != nil {
		return nil, fmt.Errorf("webhook: endpoint %s: %w", ep.Name, err)
	}
	seqs, _, err := d.store.LoadOutbox(ep.Name, 0, 1)
	if err != nil {
		return nil, fmt.Errorf("webhook: endpoint %s: %w", ep.Name, err)
	}
	s := &sender{
		d: d, ep: ep, next: last + 1, notify: make(chan struct{}, 1), logged: slog.LevelInfo,
		sent:    d.events.WithLabelValues(ep.Name, "sent"),
		retried: d.events.WithLabelValues(ep.Name, "retried"),
	}
	if len(ep.Events) > 0 {
		s.kinds = map[string]bool{}
		for _, k := range ep.Events {
			s.kinds[k] = true
		}
	}
	s.written.Store(last)
	s.acked.Store(last)
	if len(seqs) > 0 && seqs[0] <= last {
		s.acked.Store(seqs[0] - 1)
	}
	return s, nil
}

func (s *sender) wants(kind string) bool { return s.kinds == nil || s.kinds[kind] }

// backlog returns the number of events in the outbox not yet acknowledged.
// acked is read first: it never passes written, which only grows.
func (s *sender) backlog() uint64 {
	a := s.acked.Load()
	return s.written.Load() - a
}

// appendUnwritten appends up to maxRound unwritten events to the outbox
// and tells run. Only the writer calls it.
func (s *sender) appendUnwritten() error {
	chunk := s.unwritten[:min(len(s.unwritten), maxRound)]
	if len(chunk) == 0 {
		return nil
	}
	if err := s.d.store.AppendOutbox(s.ep.Name, s.next, chunk); err != nil {
		return fmt.Errorf("endpoint %s: %w", s.ep.Name, err)
	}
	s.next += uint64(len(chunk))
	s.unwritten = s.unwritten[len(chunk):]
	if len(s.unwritten) == 0 {
		s.unwritten = nil
	}
	s.written.Store(s.next - 1)
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return nil
}

// run sends batches, in order, until d.ctx ends, or Close was called and
// the outbox is empty with the writer stopped.
func (s *sender) run() {
	defer s.d.wg.Done()
	for s.waitBatch() {
		seqs, values, ok := s.load()
		if !ok {
			return
		}
		if !s.deliver(seqs, values) {
			return
		}
	}
}

// waitBatch waits until a batch is due: BatchSize events unsent, or fewer
// that waited FlushInterval, or any once Close was called. It returns
// false when run should stop.
func (s *sender) waitBatch() bool {
	var timeout <-chan time.Time
	draining, writeDone := s.d.draining, (<-chan struct{})(nil)
	flush, writerStopped := false, false
	for {
		n := s.backlog()
		switch {
		case n >= uint64(s.ep.BatchSize) || n > 0 && flush:
			return true
		case n == 0 && writerStopped:
			return false
		case n > 0 && timeout == nil:
			t := time.NewTimer(s.ep.FlushInterval)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-s.notify:
		case <-timeout:
			flush = true
		case <-draining:
			flush, draining, writeDone = true, nil, s.d.writeDone
		case <-writeDone:
			writerStopped, writeDone = true, nil
		case <-s.d.ctx.Done():
			return false
		}
	}
}

// load reads the next batch from the outbox, retrying a failing Store. It
// returns false when d.ctx ended.
func (s *sender) load() ([]uint64, [][]byte, bool) {
	for attempt := 0; ; attempt++ {
		after, written := s.acked.Load(), s.written.Load()
		limit := int(min(written-after, uint64(s.ep.BatchSize)))
		seqs, values, err := s.d.store.LoadOutbox(s.ep.Name, after, limit)
		if err == nil {
			// Only sequences up to written are known to be committed.
			for len(seqs) > 0 && seqs[len(seqs)-1] > written {
				seqs, values = seqs[:len(seqs)-1], values[:len(values)-1]
			}
			if len(seqs) == 0 {
				s.d.log.Warn("webhook: outbox entries missing; skipped", "endpoint", s.ep.Name, "after", after, "upto", written)
				s.acked.Store(written)
			}
			return seqs, values, true
		}
		s.d.log.Error("webhook: cannot read the outbox; retrying", "endpoint", s.ep.Name, "err", err)
		if !s.sleep(backoff(s.ep.MinBackoff, s.ep.MaxBackoff, attempt)) {
			return nil, nil, false
		}
	}
}

// deliver POSTs the batch until the endpoint takes it, then acknowledges
// it. It returns false when d.ctx ended first.
func (s *sender) deliver(seqs []uint64, values [][]byte) bool {
	if len(seqs) == 0 {
		return true
	}
	values = s.valid(seqs, values)
	if len(values) > 0 {
		body := batchBody(values)
		for attempt := 0; ; attempt++ {
			err := s.post(body)
			if err == nil {
				break
			}
			if s.d.ctx.Err() != nil {
				return false
			}
			s.failed(err, len(values))
			if !s.sleep(backoff(s.ep.MinBackoff, s.ep.MaxBackoff, attempt)) {
				return false
			}
		}
		s.recovered()
		s.sent.Add(float64(len(values)))
	}
	last := seqs[len(seqs)-1]
	if err := s.d.store.AckOutbox(s.ep.Name, last); err != nil {
		s.d.log.Error("webhook: cannot acknowledge sent events; they will be sent again after a restart",
			"endpoint", s.ep.Name, "err", err)
	}
	s.acked.Store(last)
	return true
}

// valid drops, with an error logged, the values that are not JSON: a
// damaged record must not stop the endpoint forever.
func (s *sender) valid(seqs []uint64, values [][]byte) [][]byte {
	if !slices.ContainsFunc(values, func(v []byte) bool { return !json.Valid(v) }) {
		return values
	}
	var ok [][]byte
	for i, v := range values {
		if json.Valid(v) {
			ok = append(ok, v)
		} else {
			s.d.log.Error("webhook: outbox entry is not JSON; dropped", "endpoint", s.ep.Name, "seq", seqs[i])
		}
	}
	return ok
}

func batchBody(values [][]byte) []byte {
	n := len(`{"events":[]}`) + len(values)
	for _, v := range values {
		n += len(v)
	}
	b := append(make([]byte, 0, n), `{"events":[`...)
	for i, v := range values {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, v...)
	}
	return append(b, "]}"...)
}

// statusError is a non-2xx answer.
type statusError struct{ code int }

func (e *statusError) Error() string { return fmt.Sprintf("HTTP status %d", e.code) }

// rejected reports whether err is an answer saying the request itself is
// wrong, rather than the receiver being unavailable.
func rejected(err error) bool {
	var se *statusError
	return errors.As(err, &se) && se.code >= 400 && se.code < 500 &&
		se.code != http.StatusRequestTimeout && se.code != http.StatusTooManyRequests
}

// post sends body once, within Timeout; nil means a 2xx answer.
func (s *sender) post(body []byte) error {
	ctx, cancel := context.WithTimeout(s.d.ctx, s.ep.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.ep.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "mtad")
	for k, v := range s.ep.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.d.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// Read some of the answer so that the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &statusError{code: resp.StatusCode}
	}
	return nil
}

// failed counts a failed POST of n events and logs the outage once, again
// if it escalates from unavailable to rejecting.
func (s *sender) failed(err error, n int) {
	s.retried.Add(float64(n))
	s.failures++
	if s.downSince.IsZero() {
		s.downSince = time.Now()
	}
	level := slog.LevelWarn
	if rejected(err) {
		level = slog.LevelError
	}
	if level > s.logged {
		s.d.log.Log(context.Background(), level, "webhook: endpoint failing; retrying with backoff",
			"endpoint", s.ep.Name, "err", err)
		s.logged = level
	}
}

// recovered logs the end of an outage.
func (s *sender) recovered() {
	if s.downSince.IsZero() {
		return
	}
	s.d.log.Info("webhook: endpoint is back", "endpoint", s.ep.Name,
		"down", time.Since(s.downSince).Round(time.Millisecond), "failures", s.failures)
	s.downSince, s.logged, s.failures = time.Time{}, slog.LevelInfo, 0
}

// sleep waits d, and reports false if d.ctx ended first.
func (s *sender) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.d.ctx.Done():
		return false
	}
}

// backoff returns the wait after the failure numbered attempt (from 0):
// lo doubled attempt times, at most hi, less a random jitter of up to half.
func backoff(lo, hi time.Duration, attempt int) time.Duration {
	d := lo
	for i := 0; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d - rand.N(d/2+1)
}
