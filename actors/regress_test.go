package actors

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/emersion/go-smtp"

	"github.com/mtad/mtad/internal/testsink"
	"github.com/mtad/mtad/messages"
	"github.com/mtad/mtad/persistence"
)

// 1. A never-attempted recipient of a suspended domain reaching its expiry
// livelocks the queue actor inside onTick.
func TestRegressSuspendedExpiryLivelock(t *testing.T) {
	sink := testsink.Start(t)
	h := newHarness(t, sink.Addr, "schedule = \"'short'\"\n[queue.schedule.short]\nretry = [\"1s\"]\nexpire = \"2s\"\n")
	if err := h.engine.SuspendDomain("held.test", false, true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	h.submit("held", "a@held.test")
	time.Sleep(2500 * time.Millisecond) // past its expiry
	h.submit("open", "b@open.test")
	waitUntil(t, "an unrelated message after the held one expired", 5*time.Second, func() bool { return ids(sink)["open"] == 1 })
}

// 2. A retired destination that crashes keeps retired=true with pid nil:
// its jobs (and every later job for that domain) are never sent.
func TestRegressRetiredDestinationCrash(t *testing.T) {
	sink := testsink.Start(t)
	var slow atomic.Bool
	slow.Store(true)
	sink.SetDataDelay(1500*time.Millisecond, func(testsink.Tx) string { return "" })
	h := newHarness(t, sink.Addr, "")
	h.submit("first", "a@slow.test")
	time.Sleep(300 * time.Millisecond) // in DATA
	if err := h.engine.Reload(h.engine.deps.Cfg()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	// crash the destination actor (a child of root/q-default, one level down)
	n := 0
	for _, b := range h.engine.system.ProcessRegistry.LocalPIDs.LocalPIDs {
		for _, k := range b.Keys() {
			rest, ok := strings.CutPrefix(k, "root/q-default/")
			if ok && !strings.Contains(rest, "/") {
				h.engine.system.Root.Send(actor.NewPID(h.engine.system.Address(), k), &connUp{})
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("found no destination actor")
	}
	sink.SetDataDelay(0, nil)
	h.submit("second", "b@slow.test")
	waitUntil(t, "mail to the domain whose retired destination crashed", 8*time.Second, func() bool {
		return ids(sink)["second"] == 1
	})
}

// 3. A cancel whose rcpt matches nothing unparks the messages and leaves
// them loaded with their only entry in parkedDue: over maxLoaded, nothing
// ever schedules them again.
func TestRegressCancelNoMatchStallsParked(t *testing.T) {
	h, sink, open, all := parkedFour(t, "2s")
	h.engine.Cancel(all, "nobody@nowhere.test")
	open.Store(true)
	waitUntil(t, "all four delivered on their retry", 10*time.Second, func() bool { return len(ids(sink)) == 4 })
}

// 4. Suspensions are not given to a queue actor that restarts.
func TestRegressSuspensionLostOnQueueRestart(t *testing.T) {
	sink := testsink.Start(t)
	h := newHarness(t, sink.Addr, "")
	if err := h.engine.SuspendDomain("held.test", false, true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	pid := actor.NewPID(h.engine.system.Address(), "root/q-default")
	h.engine.system.Root.Send(pid, &messages.JobResult{}) // queue panics, restarts
	time.Sleep(300 * time.Millisecond)
	h.submit("held", "a@held.test")
	time.Sleep(1500 * time.Millisecond)
	if ids(sink)["held"] != 0 {
		t.Fatal("mail to a suspended domain delivered after the queue actor restarted")
	}
}

// 5. A failed Update leaves the outcome in memory only; parking drops it,
// and the unparked copy delivers the recipient again (no crash).
type failOnce struct {
	*persistence.Journal
	failed atomic.Bool
}

func (f *failOnce) Update(id messages.MsgID, r []messages.Recipient) error {
	if len(r) == 1 && r[0].Status == messages.StatusDelivered && f.failed.CompareAndSwap(false, true) {
		return fmt.Errorf("disk full")
	}
	return f.Journal.Update(id, r)
}

func TestRegressFailedUpdateThenParkRedelivers(t *testing.T) {
	sink := testsink.Start(t)
	var open atomic.Bool
	sink.SetRcptReply(func(rcpt string) *smtp.SMTPError {
		if strings.HasSuffix(rcpt, "@later.test") && !open.Load() {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "later"}
		}
		return nil
	})
	h := newHarnessWith(t, sink.Addr, "", func(d *Deps) {
		d.ParkAfter = 50 * time.Millisecond
		d.Journal = &failOnce{Journal: d.Journal.(*persistence.Journal)}
	})
	h.submit("dup", "a@now.test", "b@later.test")
	time.Sleep(500 * time.Millisecond)
	open.Store(true)
	time.Sleep(2500 * time.Millisecond)
	n := 0
	for _, tx := range sink.Txs() {
		for _, r := range tx.Rcpts {
			if r == "a@now.test" {
				n++
			}
		}
	}
	if n != 1 {
		t.Fatalf("a@now.test delivered %d times", n)
	}
}
