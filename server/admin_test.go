package server

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mtad/mtad/admin"
	"github.com/mtad/mtad/internal/testsink"
)

// The management API over real HTTP: two messages deferred by the sink are
// listed with their journaled state and counted in the summary, and
// nothing is served without the token.
func TestAdminAPI(t *testing.T) {
	sink := testsink.Start(t)
	sink.SetRcptReply(func(string) *smtp.SMTPError {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "try later"}
	})
	s, _ := startNode(t, relayConfig(sink.Addr, "1h")+`
[server.management]
bind = "127.0.0.1:0"
token = "s3cret"
`)
	for _, rcpt := range []string{"a@one.test", "b@two.test"} {
		if err := send(t, s.Addrs()[0].String(), "s@sender.test", []string{rcpt}, message(rcpt)); err != nil {
			t.Fatal(err)
		}
	}
	base := "http://" + s.ManagementAddr().String()
	if code := apiGet(t, base+"/api/v1/messages", "", nil); code != http.StatusUnauthorized {
		t.Errorf("without the token: %d, want 401", code)
	}
	var list admin.ListResponse
	waitFor(t, "both recipients deferred", 10*time.Second, func() bool {
		apiGet(t, base+"/api/v1/messages?status=pending", "s3cret", &list)
		n := 0
		for _, m := range list.Messages {
			for _, r := range m.Recipients {
				if r.Attempts >= 1 && r.LastReply.Code == 451 && r.NextAttempt.After(time.Now()) {
					n++
				}
			}
		}
		return n == 2
	})
	if len(list.Messages) != 2 || list.Messages[0].From != "s@sender.test" || list.Messages[1].Recipients[0].Addr != "b@two.test" {
		t.Errorf("list: %+v", list)
	}
	var one admin.ListResponse
	apiGet(t, base+"/api/v1/messages?domain=two.test", "s3cret", &one)
	if len(one.Messages) != 1 || one.Messages[0].ID != list.Messages[1].ID {
		t.Errorf("domain=two.test: %+v", one)
	}
	var sum admin.Summary
	if code := apiGet(t, base+"/api/v1/summary", "s3cret", &sum); code != 200 {
		t.Fatalf("summary: %d", code)
	}
	if sum.Messages != 2 || sum.PendingRcpts != 2 || sum.ByQueue["default"] != 2 || sum.ByStatus["pending"] != 2 || len(sum.ByDomain) != 2 {
		t.Errorf("summary: %+v", sum)
	}
	var m admin.Message
	if code := apiGet(t, base+"/api/v1/messages/"+list.Messages[0].ID, "s3cret", &m); code != 200 || m.Helo != "client.test" {
		t.Errorf("show: %d %+v", code, m)
	}
}

// apiRequest sends a request to the management API with the bearer token
// (none when ""), and a JSON body unless body is nil; the caller closes
// the response's body.
func apiRequest(t *testing.T, method, url, token string, body io.Reader) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// apiGet fetches url with the bearer token (none when ""), decodes a 200
// into out and returns the status code.
func apiGet(t *testing.T, url, token string, out any) int {
	t.Helper()
	resp := apiRequest(t, "GET", url, token, nil)
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}
