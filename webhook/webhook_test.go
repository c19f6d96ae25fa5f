package webhook

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mtad/mtad/deliverylog"
)

// Full batches go out as soon as they are full, the rest at Close; a
// filtered endpoint gets only its kinds, with the same ids.
func TestBatchesAndFilter(t *testing.T) {
	j := openJournal(t, t.TempDir())
	all, failures := newReceiver(t, false, 0), newReceiver(t, false, 0)
	allEp := Endpoint{Name: "all", URL: all.srv.URL, FlushInterval: time.Hour,
		Headers: map[string]string{"Authorization": "Bearer s3cret", "Content-Type": "text/plain"}}
	failEp := fastEndpoint("failures", failures.srv.URL)
	failEp.Events = []string{deliverylog.Failed, deliverylog.DSN}
	log, _ := newLogRecorder(t)
	d := newT(t, Config{Endpoints: []Endpoint{allEp, failEp}}, j, log)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(d.Collectors()...)

	const n = 250
	var wantFailures []string
	for i := range n {
		d.Observe(event(i))
		if k := event(i).Event; k == deliverylog.Failed || k == deliverylog.DSN {
			wantFailures = append(wantFailures, msgid(i))
		}
	}
	all.waitEvents(t, 200)
	failures.waitEvents(t, len(wantFailures))
	if sizes := all.batchSizes(); !reflect.DeepEqual(sizes, []int{100, 100}) {
		t.Fatalf("batches before Close %v, want [100 100]", sizes)
	}
	// The receivers see a batch before it is acknowledged.
	waitFor(t, "acknowledgements", func() bool { return d.senders[0].backlog() == 50 && d.senders[1].backlog() == 0 })
	checkBacklog(t, reg, map[string]float64{"all": 50, "failures": 0})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if sizes := all.batchSizes(); !reflect.DeepEqual(sizes, []int{100, 100, 50}) {
		t.Errorf("batches %v, want [100 100 50]", sizes)
	}
	got := all.events()
	checkSequence(t, got, 0, n)
	ids := map[string]string{}
	for _, e := range got {
		if _, dup := ids[e.ID]; dup || e.ID == "" {
			t.Fatalf("id %q missing or repeated", e.ID)
		}
		if e.Time.IsZero() || e.Event == "" {
			t.Errorf("event %s lacks time or kind: %+v", e.MsgID, e)
		}
		ids[e.MsgID] = e.ID
	}
	var gotFailures []string
	for _, e := range failures.events() {
		gotFailures = append(gotFailures, e.MsgID)
		if e.ID != ids[e.MsgID] {
			t.Errorf("%s has id %q at one endpoint, %q at the other", e.MsgID, e.ID, ids[e.MsgID])
		}
	}
	if !slices.Equal(gotFailures, wantFailures) {
		t.Errorf("filtered endpoint got %v, want %v", gotFailures, wantFailures)
	}
	if h := all.header; h.Get("Content-Type") != "application/json" || h.Get("Authorization") != "Bearer s3cret" {
		t.Errorf("headers %v", h)
	}
	if v := counterValue(t, d, "all", "sent"); v != n {
		t.Errorf("sent %v, want %d", v, n)
	}
	checkBacklog(t, reg, map[string]float64{"all": 0, "failures": 0})
	if seqs, _, err := j.LoadOutbox("all", 0, 1000); err != nil || len(seqs) != 0 {
		t.Errorf("outbox after delivery: %v, %v", seqs, err)
	}
}

// An endpoint that is down gets every event, in order, once it is back;
// the outage is logged once.
func TestOutage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int // 0: the connection is aborted
		level  slog.Level
	}{
		{"503", 503, slog.LevelWarn},
		{"abort", 0, slog.LevelWarn},
		{"429", 429, slog.LevelWarn},
		{"400", 400, slog.LevelError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := openJournal(t, t.TempDir())
			r := newReceiver(t, true, tc.status)
			ep := fastEndpoint("ops", r.srv.URL)
			ep.BatchSize = 7
			log, records := newLogRecorder(t)
			d := newT(t, Config{Endpoints: []Endpoint{ep}}, j, log)

			for i := range 100 {
				d.Observe(event(i))
			}
			waitFor(t, "failed requests", func() bool { return r.failed.Load() >= 3 })
			for i := 100; i < 200; i++ {
				d.Observe(event(i))
			}
			r.down.Store(false)
			for i := 200; i < 300; i++ {
				d.Observe(event(i))
			}
			checkSequence(t, r.waitEvents(t, 300), 0, 300)

			if v := counterValue(t, d, "ops", "retried"); v < 3 {
				t.Errorf("retried %v, want at least 3", v)
			}
			// The receiver sees the batch before the sender learns it got through.
			waitFor(t, "the endpoint logged back", func() bool { return countLevel(records(), slog.LevelInfo) > 0 })
			recs := records()
			if n := countLevel(recs, tc.level); n != 1 {
				t.Errorf("%d records at %v, want 1: %v", n, tc.level, recs)
			}
			if n := countLevel(recs, slog.LevelInfo); n != 1 {
				t.Errorf("%d records at info, want 1 (back): %v", n, recs)
			}
		})
	}
}

// Events Observed while the endpoint is down survive a Close and a
// reopen of the journal, and are sent by the next Dispatcher.
func TestRestart(t *testing.T) {
	dir := t.TempDir()
	j := openJournal(t, dir)
	r := newReceiver(t, true, 503)
	cfg := Config{Endpoints: []Endpoint{fastEndpoint("ops", r.srv.URL)}}
	d, err := New(cfg, j, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 120 {
		d.Observe(event(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	d.Observe(event(999)) // ignored
	if n, err := j.LastOutboxSeq("ops"); err != nil || n != 120 {
		t.Fatalf("LastOutboxSeq after Close = %d, %v; want 120", n, err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	j = openJournal(t, dir)
	r.down.Store(false)
	d = newT(t, cfg, j, nil)
	for i := 120; i < 150; i++ {
		d.Observe(event(i))
	}
	got := r.waitEvents(t, 150)
	checkSequence(t, got, 0, 150)
	if run1, _, _ := strings.Cut(got[0].ID, "-"); strings.HasPrefix(got[149].ID, run1+"-") {
		t.Errorf("ids of two runs share their start: %s, %s", got[0].ID, got[149].ID)
	}
	waitFor(t, "empty backlog", func() bool { return d.senders[0].backlog() == 0 })
	if n, err := j.LastOutboxSeq("ops"); err != nil || n != 150 {
		t.Errorf("LastOutboxSeq = %d, %v; want 150", n, err)
	}
}

// noAck is a Store that forgets acknowledgements, as a crash between a
// POST and its acknowledgement would.
type noAck struct{ Store }

func (noAck) AckOutbox(string, uint64) error { return nil }

// A batch whose acknowledgement was lost is sent again after a restart,
// with the same ids.
func TestResendAfterLostAck(t *testing.T) {
	j := openJournal(t, t.TempDir())
	r := newReceiver(t, false, 0)
	cfg := Config{Endpoints: []Endpoint{fastEndpoint("ops", r.srv.URL)}}
	d, err := New(cfg, noAck{j}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		d.Observe(event(i))
	}
	first := r.waitEvents(t, 40)
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	newT(t, cfg, j, nil)
	got := r.waitEvents(t, 80)
	if len(got) != 80 {
		t.Fatalf("%d events, want 80", len(got))
	}
	if !reflect.DeepEqual(got[40:], first) {
		t.Errorf("resent events differ:\n%v\n%v", got[40:], first)
	}
}

// Close returns once its context ends, even while a POST hangs, and the
// events stay in the outbox.
func TestCloseHungReceiver(t *testing.T) {
	j := openJournal(t, t.TempDir())
	release := make(chan struct{})
	var mu sync.Mutex
	requests := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		requests++
		mu.Unlock()
		select {
		case <-req.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // before srv.Close
	ep := fastEndpoint("ops", srv.URL)
	ep.Timeout = time.Hour
	d, err := New(Config{Endpoints: []Endpoint{ep}}, j, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		d.Observe(event(i))
	}
	waitFor(t, "a request in flight", func() bool { mu.Lock(); defer mu.Unlock(); return requests > 0 })

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Close(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return")
	}
	if seqs, _, err := j.LoadOutbox("ops", 0, 100); err != nil || len(seqs) != 10 {
		t.Errorf("outbox after Close: %v, %v; want 10 entries", seqs, err)
	}
}

// Observers on many goroutines: every event arrives once, each
// goroutine's in its order.
func TestConcurrentObserve(t *testing.T) {
	j := openJournal(t, t.TempDir())
	r := newReceiver(t, false, 0)
	d := newT(t, Config{Endpoints: []Endpoint{fastEndpoint("ops", r.srv.URL)}}, j, nil)
	const goroutines, each = 4, 300
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				d.Observe(event(g*each + i))
			}
		})
	}
	wg.Wait()
	got := r.waitEvents(t, goroutines*each)
	if len(got) != goroutines*each {
		t.Fatalf("%d events, want %d", len(got), goroutines*each)
	}
	next := make([]int, goroutines)
	for _, e := range got {
		var n int
		if _, err := fmt.Sscanf(e.MsgID, "m%d", &n); err != nil {
			t.Fatal(err)
		}
		g := n / each
		if n != g*each+next[g] {
			t.Fatalf("goroutine %d: got %s, want %s", g, e.MsgID, msgid(g*each+next[g]))
		}
		next[g]++
	}
}

func TestNilAndClosed(t *testing.T) {
	var d *Dispatcher
	d.Observe(event(0))
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	d, err := New(Config{}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.Observe(event(0))
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestBackoff(t *testing.T) {
	lo, hi := 10*time.Millisecond, time.Second
	for attempt := range 20 {
		want := min(lo<<attempt, hi)
		for range 50 {
			if b := backoff(lo, hi, attempt); b < want/2 || b > want {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", attempt, b, want/2, want)
			}
		}
	}
}
