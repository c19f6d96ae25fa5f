package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mtad/mtad/deliverylog"
	"github.com/mtad/mtad/persistence"
)

// waitFor polls cond until it holds, failing the test after a deadline
// generous enough for a loaded machine.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// openJournal opens a journal in dir and closes it when the test ends, if
// the test has not.
func openJournal(t *testing.T, dir string) *persistence.Journal {
	t.Helper()
	j, err := persistence.Open(dir, persistence.Options{})
	if err != nil {
		t.Fatalf("open journal: %v", err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

// logRecorder logs through t and keeps each record's level and message.
type logRecorder struct {
	slog.Handler
	mu      *sync.Mutex
	records *[]logRecord
}

type logRecord struct {
	level slog.Level
	msg   string
}

func newLogRecorder(t *testing.T) (*slog.Logger, func() []logRecord) {
	var mu sync.Mutex
	var records []logRecord
	h := slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})
	log := slog.New(logRecorder{Handler: h, mu: &mu, records: &records})
	return log, func() []logRecord {
		mu.Lock()
		defer mu.Unlock()
		return append([]logRecord(nil), records...)
	}
}

func (h logRecorder) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	*h.records = append(*h.records, logRecord{r.Level, r.Message})
	h.mu.Unlock()
	return h.Handler.Handle(ctx, r)
}

func (h logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return logRecorder{Handler: h.Handler.WithAttrs(as), mu: h.mu, records: h.records}
}

// countLevel returns how many records are at level.
func countLevel(records []logRecord, level slog.Level) int {
	n := 0
	for _, r := range records {
		if r.level == level {
			n++
		}
	}
	return n
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// received is what a receiver decodes of one event.
type received struct {
	ID    string    `json:"id"`
	Time  time.Time `json:"time"`
	Event string    `json:"event"`
	MsgID string    `json:"msgid"`
}

// receiver is a webhook endpoint on 127.0.0.1. While down it answers with
// status, or aborts the connection when status is 0.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	down   atomic.Bool
	status int
	failed atomic.Int64 // requests answered while down

	mu      sync.Mutex
	batches [][]received
	header  http.Header // of the last accepted request
}

func newReceiver(t *testing.T, down bool, status int) *receiver {
	r := &receiver{t: t, status: status}
	r.down.Store(down)
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	var body struct {
		Events []received `json:"events"`
	}
	if err := json.NewDecoder(req.Body).Decode(&body); err != nil {
		r.t.Errorf("receiver: bad body: %v", err)
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	if r.down.Load() {
		r.failed.Add(1)
		if r.status == 0 {
			panic(http.ErrAbortHandler)
		}
		w.WriteHeader(r.status)
		return
	}
	r.mu.Lock()
	r.batches = append(r.batches, body.Events)
	r.header = req.Header.Clone()
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// events returns every event accepted, in order.
func (r *receiver) events() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []received
	for _, b := range r.batches {
		all = append(all, b...)
	}
	return all
}

func (r *receiver) batchSizes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var sizes []int
	for _, b := range r.batches {
		sizes = append(sizes, len(b))
	}
	return sizes
}

// waitEvents waits until the receiver accepted at least n events.
func (r *receiver) waitEvents(t *testing.T, n int) []received {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d events at the receiver", n), func() bool { return len(r.events()) >= n })
	return r.events()
}

// event returns the i-th test event, of the i-th kind in Kinds.
func event(i int) deliverylog.Event {
	return deliverylog.Event{Event: Kinds[i%len(Kinds)], MsgID: msgid(i), Rcpt: "rcpt@example.net"}
}

func msgid(i int) string { return fmt.Sprintf("m%05d", i) }

// checkSequence fails unless got holds exactly the events with msgids
// from, from+1, ... in that order.
func checkSequence(t *testing.T, got []received, from, n int) {
	t.Helper()
	if len(got) != n {
		t.Errorf("%d events, want %d", len(got), n)
	}
	for i := range min(len(got), n) {
		if got[i].MsgID != msgid(from+i) {
			t.Fatalf("event %d is %s, want %s", i, got[i].MsgID, msgid(from+i))
		}
	}
}

// newT starts a Dispatcher and closes it when the test ends, before the
// journal and the receivers registered earlier.
func newT(t *testing.T, cfg Config, store Store, log *slog.Logger) *Dispatcher {
	t.Helper()
	d, err := New(cfg, store, nil, log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return d
}

// fastEndpoint returns an endpoint with short waits.
func fastEndpoint(name, url string) Endpoint {
	return Endpoint{Name: name, URL: url, FlushInterval: 5 * time.Millisecond,
		MinBackoff: 2 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
}

// checkBacklog compares the mtad_webhook_backlog gauges of reg with want.
func checkBacklog(t *testing.T, reg *prometheus.Registry, want map[string]float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "mtad_webhook_backlog" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("backlog %v, want %v", got, want)
	}
}

// counterValue returns d's mtad_webhook_events_total{endpoint,result}.
func counterValue(t *testing.T, d *Dispatcher, endpoint, result string) float64 {
	t.Helper()
	var m dto.Metric
	if err := d.events.WithLabelValues(endpoint, result).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
