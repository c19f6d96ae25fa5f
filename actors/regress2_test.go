package actors

import (
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/mtad/mtad/internal/testsink"
)

func TestRegressRetryThenCancelNoMatchStalls(t *testing.T) {
	h, sink, open, all := parkedFour(t, "1h")
	sink.SetDataDelay(500*time.Millisecond, nil)
	open.Store(true)
	h.engine.Retry(all)
	time.Sleep(100 * time.Millisecond)
	h.engine.Cancel(all, "nobody@nowhere.test")
	waitUntil(t, "all four delivered after the retry", 10*time.Second, func() bool { return len(ids(sink)) == 4 })
}

func TestRegressControlSuspendLongExpiry(t *testing.T) {
	sink := testsink.Start(t)
	h := newHarness(t, sink.Addr, "schedule = \"'short'\"\n[queue.schedule.short]\nretry = [\"1s\"]\nexpire = \"1h\"\n")
	_ = h.engine.SuspendDomain("held.test", false, true)
	time.Sleep(100 * time.Millisecond)
	h.submit("held", "a@held.test")
	time.Sleep(2500 * time.Millisecond)
	h.submit("open", "b@open.test")
	waitUntil(t, "open", 5*time.Second, func() bool { return ids(sink)["open"] == 1 })
}

func TestRegressControlCrashWithoutReload(t *testing.T) {
	sink := testsink.Start(t)
	sink.SetDataDelay(1500*time.Millisecond, func(testsink.Tx) string { return "" })
	h := newHarness(t, sink.Addr, "")
	h.submit("first", "a@slow.test")
	time.Sleep(400 * time.Millisecond)
	for _, b := range h.engine.system.ProcessRegistry.LocalPIDs.LocalPIDs {
		for _, k := range b.Keys() {
			rest, ok := strings.CutPrefix(k, "root/q-default/")
			if ok && !strings.Contains(rest, "/") {
				h.engine.system.Root.Send(actor.NewPID(h.engine.system.Address(), k), &connUp{})
			}
		}
	}
	sink.SetDataDelay(0, nil)
	h.submit("second", "b@slow.test")
	waitUntil(t, "second", 8*time.Second, func() bool { return ids(sink)["second"] == 1 })
}
