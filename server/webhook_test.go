package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtad/mtad/internal/testsink"
)

// A webhook receiver that is down while mail is delivered gets every
// delivery event once it is back: accepted, attempt and delivered for
// each message, each once.
func TestWebhookReceiverDownThenBack(t *testing.T) {
	var up atomic.Bool
	var mu sync.Mutex
	got := map[string]map[string]int{} // msgid -> event -> count
	ids := map[string]bool{}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		var body struct {
			Events []struct {
				ID    string `json:"id"`
				Event string `json:"event"`
				MsgID string `json:"msgid"`
			} `json:"events"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, e := range body.Events {
			if ids[e.ID] {
				continue // at-least-once: receivers dedupe by id
			}
			ids[e.ID] = true
			if got[e.MsgID] == nil {
				got[e.MsgID] = map[string]int{}
			}
			got[e.MsgID][e.Event]++
		}
	}))
	defer recv.Close()
	sink := testsink.Start(t)
	s, _ := startNode(t, relayConfig(sink.Addr, "1s")+fmt.Sprintf(`
[webhook.endpoint.ops]
url = %q
events = ["accepted", "attempt", "delivered"]
flush-interval = "20ms"
min-backoff = "20ms"
max-backoff = "100ms"
`, recv.URL))
	addr := s.Addrs()[0].String()
	for i := range 3 {
		if err := send(t, addr, "s@sender.test", []string{fmt.Sprintf("r%d@dest.test", i)}, message(fmt.Sprint("w", i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "3 deliveries", 10*time.Second, func() bool { return len(sink.Rcpts()) == 3 })
	time.Sleep(100 * time.Millisecond) // a few refused POSTs
	up.Store(true)
	waitFor(t, "every event at the receiver", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		if len(got) != 3 {
			return false
		}
		for _, evs := range got {
			if evs["accepted"] != 1 || evs["attempt"] != 1 || evs["delivered"] != 1 {
				return false
			}
		}
		return true
	})
}
