package server

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mtad/mtad/config"
	"github.com/mtad/mtad/internal/testsink"
)

// A reload that moves the relay route to another host while mail flows:
// messages in flight at the old host finish there, later ones go to the
// new host, none is lost or sent twice. A configuration that does not
// parse, or that removes a virtual queue, is refused and the running one
// stays.
func TestReloadChangesRouteWhileMailFlows(t *testing.T) {
	oldSink, newSink := testsink.Start(t), testsink.Start(t)
	oldSink.SetDataDelay(30*time.Millisecond, func(testsink.Tx) string { return "" })
	s, dir := startNode(t, relayConfig(oldSink.Addr, "1s")+"[queue.virtual.bulk]\n")
	var mu sync.Mutex
	next := ""
	s.SetReloader(func() (*config.Config, error) {
		mu.Lock()
		defer mu.Unlock()
		return config.Parse("reload.toml", []byte(next))
	})
	base := fmt.Sprintf("[server]\nhostname = \"mtad.test\"\ndata-dir = %q\n[server.listener.submission]\nbind = [\"127.0.0.1:0\"]\n[queue.virtual.default]\nidle-timeout = \"300ms\"\n", dir)
	setNext := func(text string) {
		mu.Lock()
		next = text
		mu.Unlock()
	}

	addr := s.Addrs()[0].String()
	const n = 40
	errs := make(chan error, n)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range n {
			errs <- send(t, addr, "s@sender.test", []string{fmt.Sprintf("r%d@dest.test", i)}, message(fmt.Sprint("m", i)))
			time.Sleep(10 * time.Millisecond)
		}
	}()
	waitFor(t, "mail flowing to the old host", 10*time.Second, func() bool { return len(oldSink.Rcpts()) >= 5 })

	setNext(base + "[queue.virtual.bulk]\n[queue.route.relay]\ntype = \"relay\"\naddress = \"127.0.0.1\"\nport = nonsense\n")
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), "reload.toml") {
		t.Errorf("reload of a broken file: %v, want a refusal naming the file", err)
	}
	setNext(base + relayConfig(oldSink.Addr, "1s")) // bulk is gone
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), "queue.virtual.bulk") {
		t.Errorf("reload removing a queue: %v, want a refusal naming queue.virtual.bulk", err)
	}
	setNext(base + "[queue.virtual.bulk]\n" + relayConfig(newSink.Addr, "1s"))
	if err := s.Reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	atReload := len(oldSink.Rcpts())
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("submission during the reload: %v", err)
		}
	}
	waitFor(t, "every message delivered", 20*time.Second, func() bool {
		return len(oldSink.Rcpts())+len(newSink.Rcpts()) >= n
	})
	time.Sleep(200 * time.Millisecond) // a duplicate would show up by now
	seen := map[string]int{}
	for _, r := range append(oldSink.Rcpts(), newSink.Rcpts()...) {
		seen[r]++
	}
	for i := range n {
		if r := fmt.Sprintf("r%d@dest.test", i); seen[r] != 1 {
			t.Errorf("%s delivered %d times", r, seen[r])
		}
	}
	if len(newSink.Rcpts()) == 0 {
		t.Errorf("nothing reached the new host (old host had %d at the reload, %d in all)", atReload, len(oldSink.Rcpts()))
	}
	// The last messages were submitted after the reload: the new host.
	last := fmt.Sprintf("r%d@dest.test", n-1)
	for _, r := range oldSink.Rcpts() {
		if r == last {
			t.Errorf("%s went to the old host after the reload", last)
		}
	}
	if s.Reload() != nil { // the same file again is fine
		t.Error("reloading the same configuration was refused")
	}
}
