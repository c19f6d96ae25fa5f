package actors

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	dto "github.com/prometheus/client_model/go"

	"github.com/mtad/mtad/internal/testsink"
	"github.com/mtad/mtad/messages"
	"github.com/mtad/mtad/metrics"
	"github.com/mtad/mtad/persistence"
)

// parkHarness runs an engine that parks a message whose next event is
// 50 ms away and holds at most maxLoaded envelopes per queue, relaying
// to a sink that answers 451 to every RCPT until open is set. Retries
// come after 1s, or after retry when it is not "".
func parkHarness(t *testing.T, maxLoaded int, retry string) (*harness, *testsink.Sink, *atomic.Bool) {
	t.Helper()
	sink := testsink.Start(t)
	var open atomic.Bool
	sink.SetRcptReply(func(string) *smtp.SMTPError {
		if open.Load() {
			return nil
		}
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "try later"}
	})
	extra := ""
	if retry != "" { // the harness's config ends inside [queue.strategy]
		extra = fmt.Sprintf("schedule = \"'slow'\"\n[queue.schedule.slow]\nretry = [%q]\n", retry)
	}
	h := newHarnessWith(t, sink.Addr, extra, func(d *Deps) {
		d.ParkAfter, d.MaxLoaded = 50*time.Millisecond, maxLoaded
	})
	return h, sink, &open
}

// parkedFour is parkHarness with maxLoaded 2 and four messages submitted
// to stall.test, each deferred once and parked.
func parkedFour(t *testing.T, retry string) (*harness, *testsink.Sink, *atomic.Bool, []messages.MsgID) {
	t.Helper()
	h, sink, open := parkHarness(t, 2, retry)
	var all []messages.MsgID
	for i := range 4 {
		all = append(all, h.submit(fmt.Sprint("c", i), fmt.Sprintf("r%d@stall.test", i)))
	}
	waitUntil(t, "deferred and parked", 10*time.Second, func() bool { return loaded() == 0 && deferredOnce(h, 4) })
	return h, sink, open, all
}

// loaded reads the default queue's gauge of envelopes in memory.
func loaded() float64 {
	var m dto.Metric
	if err := metrics.QueueLoaded.WithLabelValues("default").Write(&m); err != nil {
		panic(err)
	}
	return m.GetGauge().GetValue()
}

// Deferred mail gives its envelopes back to the journal while it waits
// for its retry, and is read back and delivered when the retry comes.
func TestDeferredMailParksAndIsDelivered(t *testing.T) {
	h, sink, open := parkHarness(t, 0, "")
	for i := range 30 {
		h.submit(fmt.Sprint("p", i), fmt.Sprintf("r%d@park.test", i))
	}
	waitUntil(t, "every message deferred once and parked", 10*time.Second, func() bool {
		return len(sink.Rcpts()) == 0 && loaded() == 0 && deferredOnce(h, 30)
	})
	open.Store(true)
	waitUntil(t, "every parked message delivered on its retry", 20*time.Second, func() bool {
		return len(ids(sink)) == 30
	})
	waitUntil(t, "the journal emptied", 10*time.Second, func() bool {
		n, err := h.journal.Stats()
		return err == nil && n == 0
	})
}

// deferredOnce reports whether the journal holds n messages, each with an
// attempt made.
func deferredOnce(h *harness, n int) bool {
	got := 0
	err := h.journal.Load(func(env *messages.Envelope) error {
		if env.Rcpts[0].Attempts > 0 {
			got++
		}
		return nil
	})
	return err == nil && got == n
}

// With room for 3 envelopes, 60 messages still all go out: the rest wait
// parked, in turn.
func TestMaxLoadedBoundsEnvelopesInMemory(t *testing.T) {
	h, sink, open := parkHarness(t, 3, "")
	open.Store(true)
	sink.SetDataDelay(5*time.Millisecond, func(testsink.Tx) string { return "" })
	peak := 0.0
	for i := range 60 {
		h.submit(fmt.Sprint("m", i), fmt.Sprintf("r%d@bound.test", i))
		peak = max(peak, loaded())
	}
	waitUntil(t, "all 60 delivered", 20*time.Second, func() bool {
		peak = max(peak, loaded())
		return len(ids(sink)) == 60
	})
	if peak > 4 { // the limit, plus the newcomer that is parked at once
		t.Errorf("peak of %v envelopes in memory, want at most 4", peak)
	}
	for id, n := range ids(sink) {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
}

// The operator's retry and cancel reach parked messages.
func TestRetryAndCancelParkedMessages(t *testing.T) {
	h, sink, open := parkHarness(t, 0, "1h")
	a := h.submit("retry-me", "a@ops.test")
	b := h.submit("cancel-me", "b@ops.test")
	waitUntil(t, "both deferred and parked", 10*time.Second, func() bool {
		return loaded() == 0 && deferredOnce(h, 2)
	})
	h.engine.Cancel([]messages.MsgID{b}, "")
	waitUntil(t, "the cancelled message finished", 10*time.Second, func() bool {
		_, err := h.journal.Get(b)
		return err != nil
	})
	open.Store(true)
	h.engine.Retry([]messages.MsgID{a}) // due in 1h without it
	waitUntil(t, "the retried message delivered", 10*time.Second, func() bool {
		return ids(sink)["retry-me"] == 1
	})
	if got := ids(sink)["cancel-me"]; got != 0 {
		t.Errorf("cancelled message delivered %d times", got)
	}
}

// getFailsOnce fails the first Get with a read error (not ErrNotFound).
type getFailsOnce struct {
	*persistence.Journal
	failed atomic.Bool
}

func (g *getFailsOnce) Get(id messages.MsgID) (*messages.Envelope, error) {
	if g.failed.CompareAndSwap(false, true) {
		return nil, errors.New("read error")
	}
	return g.Journal.Get(id)
}

// Recipients moved to a queue whose copy of the message is parked and
// cannot be read back just then are the queue's when it is read back
// later: they were dropped until a restart.
func TestMergeIntoUnreadableParkedMessage(t *testing.T) {
	pj, err := persistence.Open(t.TempDir(), persistence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pj.Close()
	env := &messages.Envelope{ID: pj.NextID(), From: "a@x.test", Arrival: time.Now(), Rcpts: []messages.Recipient{
		{Index: 0, Addr: "r0@y.test", Queue: "default"},
		{Index: 1, Addr: "r1@z.test", Queue: "default", Attempts: 2}, // moved here, its state journaled
	}}
	if err := pj.Accept(env, []byte("body")); err != nil {
		t.Fatal(err)
	}
	q := &queueActor{deps: &Deps{Journal: &getFailsOnce{Journal: pj}, Logger: slog.New(slog.DiscardHandler)},
		name: "default", msgs: map[messages.MsgID]*qmsg{}}
	m := &qmsg{id: env.ID, mine: []uint32{0}} // parked
	q.msgs[env.ID] = m
	q.merge(nil, m, &messages.QueueWork{Env: env, Rcpts: []uint32{1}})
	if m.env != nil || q.msgs[env.ID] != m {
		t.Fatalf("after a read error: env %v, held %v; want parked and held", m.env, q.msgs[env.ID] == m)
	}
	if !q.unpark(nil, m) {
		t.Fatal("read back failed")
	}
	if !slices.Contains(m.mine, 1) || m.env.Rcpts[1].Attempts != 2 {
		t.Errorf("read back: owns %v, recipient 1 %+v; want it owned, with its journaled state", m.mine, m.env.Rcpts[1])
	}
}

// A message the queue forgets leaves the sets suspensions hold back; it
// stayed there, finished, until the resume.
func TestForgetLeavesSuspensions(t *testing.T) {
	q := &queueActor{msgs: map[messages.MsgID]*qmsg{1: {id: 1}, 2: {id: 2}},
		suspHeld: map[string]map[messages.MsgID]bool{"a": {1: true, 2: true}, "b": {1: true}}}
	q.forget(1)
	if _, ok := q.msgs[1]; ok || len(q.msgs) != 1 {
		t.Errorf("msgs %v", q.msgs)
	}
	if len(q.suspHeld) != 1 || len(q.suspHeld["a"]) != 1 || !q.suspHeld["a"][2] {
		t.Errorf("held %v, want only a: 2", q.suspHeld)
	}
}
