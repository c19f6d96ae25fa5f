package server

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/mtad/mtad/internal/testsink"
)

// Suspending a recipient domain and a sender domain through the API holds
// their mail in the queue while other mail flows; a resume sends it.
func TestSuspendDomainAndSender(t *testing.T) {
	sink := testsink.Start(t)
	s, _ := startNode(t, relayConfig(sink.Addr, "1h")+`
[server.management]
bind = "127.0.0.1:0"
`)
	api := "http://" + s.ManagementAddr().String() + "/api/v1/"
	post := func(path string) {
		t.Helper()
		resp, err := http.Post(api+path, "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %d", path, resp.StatusCode)
		}
	}
	post("domains/held.test/suspend")
	post("senders/news.test/suspend")
	addr := s.Addrs()[0].String()
	for _, m := range []struct{ from, to string }{
		{"a@app.test", "x@held.test"}, {"b@news.test", "y@open.test"}, {"c@app.test", "z@open.test"},
	} {
		if err := send(t, addr, m.from, []string{m.to}, message(m.to)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the unsuspended message", 10*time.Second, func() bool { return len(sink.Rcpts()) >= 1 })
	time.Sleep(300 * time.Millisecond)
	if got := sink.Rcpts(); len(got) != 1 || got[0] != "z@open.test" {
		t.Fatalf("delivered %v while held.test and news.test were suspended, want only z@open.test", got)
	}
	if n, _ := s.journal.Stats(); n != 2 {
		t.Errorf("journal holds %d messages, want the 2 suspended ones", n)
	}
	post("domains/held.test/resume")
	waitFor(t, "the held domain's message after its resume", 10*time.Second, func() bool { return len(sink.Rcpts()) == 2 })
	post("senders/news.test/resume")
	waitFor(t, "the held sender's message after its resume", 10*time.Second, func() bool { return len(sink.Rcpts()) == 3 })
}

// A suspension also holds back the jobs already made and waiting for the
// queue's concurrency: only the message in flight at the suspend is
// delivered until the resume.
func TestSuspendHoldsWaitingJobs(t *testing.T) {
	sink := testsink.Start(t)
	sink.SetDataDelay(300*time.Millisecond, func(testsink.Tx) string { return "" })
	s, _ := startNode(t, relayConfig(sink.Addr, "1h")+`
[queue.virtual.default]
concurrency = 1
idle-timeout = "300ms"
[server.management]
bind = "127.0.0.1:0"
`)
	addr := s.Addrs()[0].String()
	for i := range 3 {
		if err := send(t, addr, "a@app.test", []string{fmt.Sprintf("r%d@held.test", i)}, message(fmt.Sprint("w", i))); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Post("http://"+s.ManagementAddr().String()+"/api/v1/domains/held.test/suspend", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	time.Sleep(1500 * time.Millisecond)
	if n := len(sink.Rcpts()); n > 1 {
		t.Fatalf("%d messages delivered after the suspend, want at most the one in flight", n)
	}
	resp, err = http.Post("http://"+s.ManagementAddr().String()+"/api/v1/domains/held.test/resume", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waitFor(t, "all three after the resume", 10*time.Second, func() bool { return len(sink.Rcpts()) == 3 })
}
