package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mtad/mtad/messages"
)

// fakeControl records its calls, one line each, and knows two queues.
type fakeControl struct {
	mu    sync.Mutex
	calls []string
}

func (c *fakeControl) record(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, s)
}

func idList(ids []messages.MsgID) string {
	var s []string
	for _, id := range ids {
		s = append(s, fmt.Sprint(uint64(id)))
	}
	return strings.Join(s, ",")
}

func (c *fakeControl) Retry(ids []messages.MsgID) { c.record("retry " + idList(ids)) }

func (c *fakeControl) Cancel(ids []messages.MsgID, rcpt string) {
	c.record(fmt.Sprintf("cancel %s rcpt=%s", idList(ids), rcpt))
}

func (c *fakeControl) SuspendDomain(string, bool, bool) error { return nil }

func (c *fakeControl) SuspendQueue(name string, suspended bool) error {
	if name != "default" && name != "bulk" {
		return fmt.Errorf("no queue %q", name)
	}
	c.record(fmt.Sprintf("suspend %s %v", name, suspended))
	return nil
}

var _ Control = (*fakeControl)(nil)

// controlFixture adds to fixture message 5, pending in two domains.
func controlFixture() *fakeSource {
	src := fixture()
	src.envs = append(src.envs, env(5, "c@s.test", 0, pending("x2@one.test", "default", time.Hour), pending("v@four.test", "default", time.Hour)))
	return src
}

func do(t *testing.T, h http.Handler, method, target, body string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, target, strings.NewReader(body)))
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, target, ct)
	}
	return w
}

func TestWrite(t *testing.T) {
	tests := []struct {
		name, method, target, body string
		code                       int
		answer                     string // the JSON answer, or a part of its error
		call                       string // the Control call, "" for none
	}{
		{"retry by ids", "POST", "/api/v1/messages/retry", `{"ids":["0000000000000001","3","1","ff"]}`,
			200, `{"matched":2}`, "retry 1,3"},
		{"retry by ids, none pending", "POST", "/api/v1/messages/retry", `{"ids":["4"]}`, 200, `{"matched":0}`, ""},
		{"retry by filter", "POST", "/api/v1/messages/retry?status=pending&domain=one.test", "", 200, `{"matched":2}`, "retry 1,5"},
		{"retry by sender", "POST", "/api/v1/messages/retry?sender=%3C%3E", "", 200, `{"matched":1}`, "retry 3"},
		{"retry everything", "POST", "/api/v1/messages/retry", "", 200, `{"matched":4}`, "retry 1,2,3,5"},
		{"retry with rcpt", "POST", "/api/v1/messages/retry", `{"ids":["1"],"rcpt":"x@one.test"}`, 400, "rcpt:", ""},
		{"retry pages", "POST", "/api/v1/messages/retry?limit=5", "", 400, "limit:", ""},
		{"retry bad filter", "POST", "/api/v1/messages/retry?status=queued", "", 400, "status:", ""},
		{"retry ids and filter", "POST", "/api/v1/messages/retry?domain=one.test", `{"ids":["1"]}`, 400, "not both", ""},
		{"retry bad id", "POST", "/api/v1/messages/retry", `{"ids":["1","zz"]}`, 400, `ids: "zz" is not a message id`, ""},
		{"retry bad body", "POST", "/api/v1/messages/retry", `{"ids":`, 400, "body:", ""},
		{"retry unknown field", "POST", "/api/v1/messages/retry", `{"id":["1"]}`, 400, "body:", ""},

		{"cancel by ids with rcpt", "POST", "/api/v1/messages/cancel", `{"ids":["2"],"rcpt":"W@three.test"}`,
			200, `{"matched":1}`, "cancel 2 rcpt=W@three.test"},
		{"cancel absent rcpt", "POST", "/api/v1/messages/cancel", `{"ids":["1"],"rcpt":"nobody@one.test"}`, 200, `{"matched":0}`, ""},
		{"cancel by ids", "POST", "/api/v1/messages/cancel", `{"ids":["1","5"]}`, 200, `{"matched":2}`, "cancel 1,5 rcpt="},
		{"cancel by domain leaves mixed messages", "POST", "/api/v1/messages/cancel?domain=one.test", "",
			200, `{"matched":1,"skipped":1}`, "cancel 1 rcpt="},
		{"cancel one rcpt by domain", "POST", "/api/v1/messages/cancel?domain=one.test", `{"rcpt":"x2@one.test"}`,
			200, `{"matched":1}`, "cancel 5 rcpt=x2@one.test"},
		{"cancel by queue", "POST", "/api/v1/messages/cancel?queue=bulk", "", 200, `{"matched":1}`, "cancel 2 rcpt="},
		{"cancel nothing selected", "POST", "/api/v1/messages/cancel", "", 400, "refusing to cancel everything: give ids or a filter", ""},
		{"cancel empty filter", "POST", "/api/v1/messages/cancel?queue=", `{"rcpt":"x@one.test"}`, 400, "refusing to cancel everything", ""},
		{"cancel bad id", "POST", "/api/v1/messages/cancel", `{"ids":["00000000000000zz"]}`, 400, `"00000000000000zz"`, ""},

		{"suspend", "POST", "/api/v1/queues/bulk/suspend", "", 200, `{"queue":"bulk","suspended":true}`, "suspend bulk true"},
		{"resume", "POST", "/api/v1/queues/default/resume", "", 200, `{"queue":"default","suspended":false}`, "suspend default false"},
		{"suspend unknown", "POST", "/api/v1/queues/nope/suspend", "", 404, `no queue "nope"`, ""},
		{"resume unknown", "POST", "/api/v1/queues/nope/resume", "", 404, `no queue "nope"`, ""},

		{"GET retry", "GET", "/api/v1/messages/retry", "", 405, "use POST", ""},
		{"GET cancel", "GET", "/api/v1/messages/cancel", "", 405, "use POST", ""},
		{"DELETE suspend", "DELETE", "/api/v1/queues/bulk/suspend", "", 405, "use POST", ""},
		{"POST list", "POST", "/api/v1/messages", "", 405, "use GET", ""},
		{"POST show", "POST", "/api/v1/messages/0000000000000001", "", 405, "use GET", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctl := &fakeControl{}
			w := do(t, Handler(controlFixture(), ctl), tt.method, tt.target, tt.body)
			if w.Code != tt.code {
				t.Errorf("status %d, want %d: %s", w.Code, tt.code, w.Body)
			}
			if w.Code == 200 {
				if got := strings.Join(strings.Fields(w.Body.String()), ""); got != tt.answer {
					t.Errorf("answer %s, want %s", got, tt.answer)
				}
			} else {
				var e Error
				if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || !strings.Contains(e.Error, tt.answer) {
					t.Errorf("error %q (%v), want it to contain %q", e.Error, err, tt.answer)
				}
			}
			if w.Code == 405 && w.Header().Get("Allow") == "" {
				t.Error("405 without Allow")
			}
			want := []string{}
			if tt.call != "" {
				want = []string{tt.call}
			}
			if fmt.Sprint(ctl.calls) != fmt.Sprint(want) {
				t.Errorf("calls %q, want %q", ctl.calls, want)
			}
		})
	}
}

func TestWriteWithoutControl(t *testing.T) {
	h := Handler(controlFixture(), nil)
	for _, target := range []string{"/api/v1/messages/retry", "/api/v1/messages/cancel?queue=bulk", "/api/v1/queues/bulk/suspend", "/api/v1/queues/bulk/resume"} {
		if w := do(t, h, "POST", target, `{"ids":["1"]}`); w.Code != http.StatusNotImplemented {
			t.Errorf("POST %s: %d, want 501", target, w.Code)
		}
	}
	if w := do(t, h, "GET", "/api/v1/messages/retry", ""); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET retry without a control: %d, want 405", w.Code)
	}
}

// More than MaxSelect messages, by ids or by filter, are refused whole.
func TestWriteTooMany(t *testing.T) {
	src := &fakeSource{}
	raw := make([]string, 0, MaxSelect+1)
	for i := range MaxSelect + 1 {
		src.envs = append(src.envs, &messages.Envelope{ID: messages.MsgID(i + 1), Rcpts: []messages.Recipient{pending("a@d.test", "default", 0)}})
		raw = append(raw, messages.MsgID(i+1).String())
	}
	body, err := json.Marshal(SelectRequest{IDs: raw})
	if err != nil {
		t.Fatal(err)
	}
	ctl := &fakeControl{}
	h := Handler(src, ctl)
	for _, r := range []struct{ target, body string }{
		{"/api/v1/messages/retry", string(body)},
		{"/api/v1/messages/retry?domain=d.test", ""},
	} {
		w := do(t, h, "POST", r.target, r.body)
		if w.Code != 400 || !strings.Contains(w.Body.String(), "more than 100000 messages") {
			t.Errorf("%s with %d bytes: %d %s", r.target, len(r.body), w.Code, w.Body)
		}
	}
	if len(ctl.calls) != 0 {
		t.Errorf("calls %q on a refused selection", ctl.calls)
	}
}
