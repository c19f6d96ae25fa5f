package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mtad/mtad/internal/testsink"
)

// HTTP injection end to end: a structured message to two recipients is
// journaled (202 with a per-recipient answer), relayed and readable by
// strategies through its metadata; a request past the queue quota gets
// 429 with 452 4.3.1; nothing is taken without the token.
func TestInjectEndToEnd(t *testing.T) {
	sink := testsink.Start(t)
	other := testsink.Start(t)
	host, port, _ := strings.Cut(other.Addr, ":")
	shost, sport, _ := strings.Cut(sink.Addr, ":")
	s, _ := startNode(t, `
[queue.schedule.default]
retry = ["1h"]
[queue.strategy]
route = [ { if = "tenant == 'acme'", then = "'acme'" }, { else = "'relay'" } ]
[queue.route.relay]
type = "relay"
address = "`+shost+`"
port = `+sport+`
[queue.route.acme]
type = "relay"
address = "`+host+`"
port = `+port+`
[queue.quota.global]
messages = 2
[server.management]
bind = "127.0.0.1:0"
token = "s3cret"
`)
	url := "http://" + s.ManagementAddr().String() + "/api/v1/inject"
	post := func(token, body string) (int, map[string]any) {
		t.Helper()
		resp := apiRequest(t, "POST", url, token, strings.NewReader(body))
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	msg := `{"envelope":{"from":"app@sender.test","to":["a@one.test","b@two.test"],"metadata":{"tenant":"%s"}},
	  "message":{"from":"App <app@sender.test>","to":["a@one.test"],"subject":"Hello ✓","text":"hi","html":"<p>hi</p>"}}`
	if code, _ := post("", strings.Replace(msg, "%s", "x", 1)); code != http.StatusUnauthorized {
		t.Errorf("without the token: %d, want 401", code)
	}
	code, out := post("s3cret", strings.Replace(msg, "%s", "plain", 1))
	if code != http.StatusAccepted || out["accepted"] != 2.0 {
		t.Fatalf("inject: %d %v, want 202 with 2 accepted", code, out)
	}
	waitFor(t, "both recipients at the sink", 10*time.Second, func() bool { return len(sink.Rcpts()) == 2 })
	data := string(sink.Txs()[0].Data)
	if !strings.HasPrefix(data, "Received: from [127.0.0.1]") || !strings.Contains(data, "with HTTP id") ||
		!strings.Contains(data, "multipart/alternative") {
		t.Errorf("relayed message lacks the Received header or the composed body:\n%s", data)
	}
	code, out = post("s3cret", strings.Replace(msg, "%s", "acme", 1))
	if code != http.StatusAccepted {
		t.Fatalf("second inject: %d %v", code, out)
	}
	waitFor(t, "the acme tenant's mail at its own relay", 10*time.Second, func() bool { return len(other.Rcpts()) == 2 })
	waitFor(t, "the journal emptied (quota released)", 10*time.Second, func() bool {
		n, err := s.journal.Stats()
		return err == nil && n == 0
	})

	// The quota counts queued messages: hold two at a deferring sink.
	sink.SetRcptReply(func(string) *smtp.SMTPError {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "later"}
	})
	for i := range 2 {
		if code, out := post("s3cret", strings.Replace(msg, "%s", "q", 1)); code != http.StatusAccepted {
			t.Fatalf("inject %d under the quota: %d %v", i, code, out)
		}
	}
	code, out = post("s3cret", strings.Replace(msg, "%s", "q", 1))
	if code != http.StatusTooManyRequests || out["code"] != 452.0 || out["enhanced"] != "4.3.1" {
		t.Errorf("past the quota: %d %v, want 429 with 452 4.3.1", code, out)
	}
}
