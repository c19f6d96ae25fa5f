package server

import (
	"encoding/json"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mtad/mtad/internal/testsink"
)

// The write side of the management API against a running node: cancel
// (with its bounce), a suspended queue holding a retry, then resume.
func TestQueueControl(t *testing.T) {
	sink := testsink.Start(t)
	var accept atomic.Bool
	sink.SetRcptReply(func(rcpt string) *smtp.SMTPError {
		if accept.Load() || rcpt == "s@sender.test" {
			return nil
		}
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "later"}
	})
	s, dir := startNode(t, relayConfig(sink.Addr, "1h")+`
[server.management]
bind = "127.0.0.1:0"
token = "t"
`)
	api := "http://" + s.ManagementAddr().String() + "/api/v1"
	post := func(path string) string {
		t.Helper()
		resp := apiRequest(t, "POST", api+path, "t", nil)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("POST %s: %s %s", path, resp.Status, b)
		}
		return string(b)
	}
	addr := s.Addrs()[0].String()
	for _, r := range []string{"a@retry.test", "b@cancel.test"} {
		if err := send(t, addr, "s@sender.test", []string{r}, message(r)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, r+" deferred", 10*time.Second, func() bool { return eventFor(events(t, dir), "deferred", r) != nil })
	}
	// Cancel by filter: the recipient fails as the operator's decision, and
	// its sender gets the bounce.
	var ans struct{ Matched int }
	if got := post("/messages/cancel?domain=cancel.test"); json.Unmarshal([]byte(got), &ans) != nil || ans.Matched != 1 {
		t.Errorf("cancel answered %s", got)
	}
	waitFor(t, "the cancellation", 10*time.Second, func() bool { return eventFor(events(t, dir), "failed", "b@cancel.test") != nil })
	if e := eventFor(events(t, dir), "failed", "b@cancel.test"); !strings.Contains(e.Reply, "cancelled by the operator") {
		t.Errorf("failed event %+v", e)
	}
	waitFor(t, "the bounce", 10*time.Second, func() bool { return contains(sink.Rcpts(), "s@sender.test") })

	// A suspended queue holds even a retry-now; resume lets it go.
	post("/queues/default/suspend")
	accept.Store(true)
	post("/messages/retry?domain=retry.test")
	time.Sleep(300 * time.Millisecond) // a delivery would have happened by now
	if eventFor(events(t, dir), "delivered", "a@retry.test") != nil {
		t.Fatal("delivered while the queue was suspended")
	}
	post("/queues/default/resume")
	waitFor(t, "the retried delivery", 10*time.Second, func() bool { return eventFor(events(t, dir), "delivered", "a@retry.test") != nil })
}
