package actors

import (
	"context"
	"testing"
	"time"

	"github.com/mtad/mtad/internal/testsink"
)

// A domain suspension is saved in the journal: an engine started again
// on it holds that domain's mail until the resume.
func TestSuspensionSurvivesRestart(t *testing.T) {
	sink := testsink.Start(t)
	var deps Deps
	h := newHarnessWith(t, sink.Addr, "", func(d *Deps) { deps = *d })
	if err := h.engine.SuspendDomain("held.test", false, true); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.engine.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	e, err := Start(deps)
	if err != nil {
		t.Fatal(err)
	}
	h.engine = e
	t.Cleanup(func() { _ = e.Stop(context.Background()) })
	h.submit("held", "a@held.test")
	h.submit("open", "b@open.test")
	waitUntil(t, "the unsuspended message", 10*time.Second, func() bool { return ids(sink)["open"] == 1 })
	time.Sleep(200 * time.Millisecond)
	if ids(sink)["held"] != 0 {
		t.Fatal("mail to a domain suspended before the restart was delivered")
	}
	if err := e.SuspendDomain("held.test", false, false); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the held message after the resume", 10*time.Second, func() bool { return ids(sink)["held"] == 1 })
}

// SiteOf names the site whose MX suffix matches the domain's MX hosts
// (the loopback resolver gives the implicit MX: the domain itself).
func TestEngineSiteOf(t *testing.T) {
	sink := testsink.Start(t)
	h := newHarnessWith(t, sink.Addr, "[queue.site.big]\nmx-suffix = [\".big.test\"]\n", nil)
	ctx := context.Background()
	if got := h.engine.SiteOf(ctx, "mail.big.test"); got != "big" {
		t.Errorf("SiteOf(mail.big.test) = %q, want big", got)
	}
	if got := h.engine.SiteOf(ctx, "small.test"); got != "" {
		t.Errorf("SiteOf(small.test) = %q, want none", got)
	}
}
