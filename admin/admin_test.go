package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mtad/mtad/messages"
	"github.com/mtad/mtad/persistence"
)

// fakeSource holds envelopes in id order and counts what Load hands out.
type fakeSource struct {
	envs   []*messages.Envelope
	loaded int
}

func (f *fakeSource) Load(fn func(env *messages.Envelope) error) error {
	for _, e := range f.envs {
		f.loaded++
		c := *e
		c.Rcpts = slices.Clone(e.Rcpts)
		if err := fn(&c); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeSource) Get(id messages.MsgID) (*messages.Envelope, error) {
	for _, e := range f.envs {
		if e.ID == id {
			c := *e
			c.Rcpts = slices.Clone(e.Rcpts)
			return &c, nil
		}
	}
	return nil, fmt.Errorf("persistence: message %v: %w", id, persistence.ErrNotFound)
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func pending(addr, queue string, next time.Duration) messages.Recipient {
	return messages.Recipient{Addr: addr, Queue: queue, Status: messages.StatusPending, NextAttempt: t0.Add(next), Attempts: 1,
		LastReply: messages.Reply{Code: 451, Enhanced: "4.7.1", Text: "try later"}}
}

func final(addr, queue string, s messages.RcptStatus) messages.Recipient {
	return messages.Recipient{Addr: addr, Queue: queue, Status: s, Attempts: 1}
}

func env(id messages.MsgID, from string, arrival time.Duration, rs ...messages.Recipient) *messages.Envelope {
	for i := range rs {
		rs[i].Index = uint32(i)
	}
	return &messages.Envelope{ID: id, From: from, Arrival: t0.Add(arrival), Size: 1000 + int64(id), Source: "trusted", Rcpts: rs}
}

// fixture: four messages with recipients in several states, queues and
// domains.
func fixture() *fakeSource {
	return &fakeSource{envs: []*messages.Envelope{
		env(1, "a@s.test", -3*time.Hour, pending("x@one.test", "default", time.Hour), final("y@two.test", "default", messages.StatusDelivered)),
		env(2, "b@s.test", -2*time.Hour, final("z@one.test", "bulk", messages.StatusFailed), pending("w@three.test", "bulk", 3*time.Hour)),
		env(3, "", -1*time.Hour, pending("a@s.test", "default", 2*time.Hour)),
		env(4, "A@S.test", -4*time.Hour, final("q@two.test", "default", messages.StatusDelivered)),
	}}
}

func get(t *testing.T, h http.Handler, target string, out any) int {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q", target, ct)
	}
	if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
		t.Fatalf("GET %s: %v in %s", target, err, w.Body)
	}
	return w.Code
}

func ids(ms []Message) string {
	var s []string
	for _, m := range ms {
		s = append(s, strings.TrimLeft(m.ID, "0"))
	}
	return strings.Join(s, ",")
}

func TestListFilters(t *testing.T) {
	h := Handler(fixture(), nil)
	at := func(d time.Duration) string { return t0.Add(d).Format(time.RFC3339) }
	tests := []struct {
		query string
		want  string
	}{
		{"", "1,2,3,4"},
		{"queue=bulk", "2"},
		{"queue=default", "1,3,4"},
		{"sender=a@s.test", "1,4"},
		{"sender=<>", "3"},
		{"rcpt=X@One.test", "1"},
		{"domain=one.test", "1,2"},
		{"domain=ONE.TEST", "1,2"},
		{"status=failed", "2"},
		{"status=delivered", "1,4"},
		{"status=pending", "1,2,3"},
		{"status=pending&domain=one.test", "1"},
		{"queue=bulk&status=pending", "2"},
		{"domain=two.test&status=pending", ""},
		{"due_before=" + at(150*time.Minute), "1,3"},
		{"due_after=" + at(90*time.Minute), "2,3"},
		{"due_after=" + at(90*time.Minute) + "&due_before=" + at(150*time.Minute), "3"},
		{"sender=b@s.test&queue=default", ""},
		{"cursor=0000000000000002", "3,4"},
		{"limit=2", "1,2"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			var resp ListResponse
			if code := get(t, h, "/api/v1/messages?"+strings.ReplaceAll(tt.query, "+", "%2B"), &resp); code != 200 {
				t.Fatalf("status %d", code)
			}
			if got := ids(resp.Messages); got != tt.want {
				t.Errorf("got messages %q, want %q", got, tt.want)
			}
		})
	}
}

// A list shows the recipients that matched, and counts them all.
func TestListRecipients(t *testing.T) {
	var resp ListResponse
	get(t, Handler(fixture(), nil), "/api/v1/messages?domain=one.test", &resp)
	if len(resp.Messages) != 2 {
		t.Fatalf("got %d messages", len(resp.Messages))
	}
	m := resp.Messages[1]
	if m.ID != "0000000000000002" || m.RcptCount != 2 || m.Pending != 1 || len(m.Recipients) != 1 || m.Recipients[0].Addr != "z@one.test" {
		t.Errorf("message 2: %+v", m)
	}
	r := resp.Messages[0].Recipients[0]
	if r.Status != "pending" || r.Queue != "default" || !r.NextAttempt.Equal(t0.Add(time.Hour)) || r.LastReply.Code != 451 || r.Attempts != 1 {
		t.Errorf("recipient x@one.test: %+v", r)
	}
	if !m.Recipients[0].NextAttempt.IsZero() {
		t.Errorf("a failed recipient has a next attempt: %+v", m.Recipients[0])
	}
}

// 250 messages, 100 a page: three pages, each message once, and each page
// stops reading the journal once it is full.
func TestListPagination(t *testing.T) {
	src := &fakeSource{}
	for i := range 250 {
		src.envs = append(src.envs, env(messages.MsgID(10*(i+1)), "s@s.test", 0, pending(fmt.Sprintf("r%d@d.test", i), "default", 0)))
	}
	h := Handler(src, nil)
	seen := map[string]bool{}
	var sizes []int
	cursor := ""
	for page := 0; ; page++ {
		if page > 3 {
			t.Fatal("more than 3 pages")
		}
		src.loaded = 0
		var resp ListResponse
		if code := get(t, h, "/api/v1/messages?limit=100&cursor="+cursor, &resp); code != 200 {
			t.Fatalf("page %d: status %d", page, code)
		}
		if len(resp.Messages) == 100 && src.loaded > (page+1)*100+1 {
			t.Errorf("page %d read %d messages: no early stop", page, src.loaded)
		}
		sizes = append(sizes, len(resp.Messages))
		for _, m := range resp.Messages {
			if seen[m.ID] {
				t.Errorf("message %s twice", m.ID)
			}
			seen[m.ID] = true
		}
		if resp.NextCursor == "" {
			break
		}
		if resp.NextCursor != resp.Messages[len(resp.Messages)-1].ID {
			t.Errorf("next_cursor %s is not the page's last id", resp.NextCursor)
		}
		cursor = resp.NextCursor
	}
	if !slices.Equal(sizes, []int{100, 100, 50}) || len(seen) != 250 {
		t.Errorf("pages of %v, %d distinct messages; want 100,100,50 and 250", sizes, len(seen))
	}
}

func TestShow(t *testing.T) {
	src := fixture()
	src.envs[1].Rcpts[1].Notify = messages.NotifyFailure | messages.NotifyDelay
	src.envs[1].EnvID = "env-2"
	h := Handler(src, nil)
	var m Message
	if code := get(t, h, "/api/v1/messages/0000000000000002", &m); code != 200 {
		t.Fatalf("status %d", code)
	}
	if m.From != "b@s.test" || m.EnvID != "env-2" || len(m.Recipients) != 2 || m.Recipients[0].Status != "failed" ||
		m.Recipients[1].Notify != "FAILURE,DELAY" || !m.Recipients[1].NextAttempt.Equal(t0.Add(3*time.Hour)) {
		t.Errorf("show 2: %+v", m)
	}
	var e Error
	if code := get(t, h, "/api/v1/messages/00000000000000ff", &e); code != 404 || !strings.Contains(e.Error, "00000000000000ff") {
		t.Errorf("absent message: %d %q", code, e.Error)
	}
	if code := get(t, h, "/api/v1/messages/nothex", &e); code != 400 || !strings.HasPrefix(e.Error, "id:") {
		t.Errorf("bad id: %d %q", code, e.Error)
	}
	if code := get(t, h, "/api/v1/nothing", &e); code != 404 {
		t.Errorf("unknown endpoint: %d %q", code, e.Error)
	}
}

func TestSummary(t *testing.T) {
	h := newHandler(fixture(), nil, func() time.Time { return t0 })
	var s Summary
	if code := get(t, h, "/api/v1/summary", &s); code != 200 {
		t.Fatalf("status %d", code)
	}
	want := Summary{
		Messages: 4, PendingMessages: 3, PendingRcpts: 3, OldestPendingAge: 3 * 3600, OldestPendingID: "0000000000000001",
		ByQueue:  map[string]int{"default": 2, "bulk": 1},
		ByStatus: map[string]int{"pending": 3, "delivered": 2, "failed": 1},
		ByDomain: []DomainCount{{"one.test", 1}, {"s.test", 1}, {"three.test", 1}},
	}
	if fmt.Sprint(s) != fmt.Sprint(want) {
		t.Errorf("summary\n got %+v\nwant %+v", s, want)
	}
}

// By domain keeps the 50 largest, largest first.
func TestSummaryTopDomains(t *testing.T) {
	var c counter
	for i := range 60 {
		rs := []messages.Recipient{pending(fmt.Sprintf("a@d%02d.test", i), "default", 0)}
		for range i % 3 {
			rs = append(rs, rs[0])
		}
		c.add(env(messages.MsgID(i+1), "s@s.test", 0, rs...))
	}
	s := c.summary(t0)
	if len(s.ByDomain) != TopDomains || s.DomainsNotShown != 10 || s.ByDomain[0] != (DomainCount{"d02.test", 3}) || s.ByDomain[49].Count != 1 {
		t.Errorf("by domain: %v, %d not shown", s.ByDomain, s.DomainsNotShown)
	}
}

func TestBadParameters(t *testing.T) {
	h := Handler(fixture(), nil)
	for _, tt := range []struct{ query, param string }{
		{"limit=0", "limit"},
		{"limit=1001", "limit"},
		{"limit=ten", "limit"},
		{"status=queued", "status"},
		{"due_before=yesterday", "due_before"},
		{"due_after=2026-01-01", "due_after"},
		{"cursor=zz", "cursor"},
		{"recipient=a@b.test", "recipient"},
		{"queue=a&queue=b", "queue"},
	} {
		t.Run(tt.query, func(t *testing.T) {
			var e Error
			if code := get(t, h, "/api/v1/messages?"+tt.query, &e); code != 400 || !strings.HasPrefix(e.Error, tt.param+":") {
				t.Errorf("status %d, error %q; want 400 naming %s", code, e.Error, tt.param)
			}
		})
	}
	var e Error
	if code := get(t, h, "/api/v1/summary?queue=x", &e); code != 400 {
		t.Errorf("summary with a parameter: %d", code)
	}
}

// sitedControl is a Control that also names sites: one.test and
// three.test are served by the "big" provider.
type sitedControl struct{ fakeControl }

func (*sitedControl) SiteOf(_ context.Context, domain string) string {
	if domain == "one.test" || domain == "three.test" {
		return "big"
	}
	return ""
}

// With a Control that names sites, the summary counts by site too.
func TestSummaryBySite(t *testing.T) {
	h := newHandler(fixture(), &sitedControl{}, func() time.Time { return t0 })
	var s Summary
	if code := get(t, h, "/api/v1/summary", &s); code != 200 {
		t.Fatalf("status %d", code)
	}
	if len(s.BySite) != 1 || s.BySite["big"] != 2 {
		t.Errorf("by site %v, want big: 2", s.BySite)
	}
}
