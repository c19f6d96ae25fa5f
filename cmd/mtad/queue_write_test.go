package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// writeAPI answers the write endpoints and records each request as
// "METHOD PATH?QUERY BODY".
type writeAPI struct {
	mu   sync.Mutex
	reqs []string
	srv  *httptest.Server
}

func newWriteAPI(t *testing.T) *writeAPI {
	a := &writeAPI{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/messages/retry", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"matched":2}`))
	})
	mux.HandleFunc("POST /api/v1/messages/cancel", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"matched":1,"skipped":3}`))
	})
	mux.HandleFunc("POST /api/v1/queues/{name}/{op}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if name == "nope" {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"no queue \"nope\""}`))
			return
		}
		fmt.Fprintf(w, `{"queue":%q,"suspended":%v}`, name, r.PathValue("op") == "suspend")
	})
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "a bearer token is required", http.StatusUnauthorized)
			return
		}
		body, _ := io.ReadAll(r.Body)
		if len(body) > 0 && r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: body without Content-Type application/json", r.Method, r.URL)
		}
		a.mu.Lock()
		a.reqs = append(a.reqs, strings.TrimSpace(fmt.Sprintf("%s %s %s", r.Method, r.URL.RequestURI(), body)))
		a.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *writeAPI) take() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.reqs
	a.reqs = nil
	return r
}

func TestQueueWrite(t *testing.T) {
	api := newWriteAPI(t)
	t.Setenv("MTAD_API", api.srv.URL)
	t.Setenv("MTAD_TOKEN", "tok")
	tests := []struct {
		args []string
		code int
		req  string // the request sent, "" for none
		out  string // stdout, or a part of stderr when code != 0
	}{
		{[]string{"retry", "0000000000000001", "3"}, 0,
			`POST /api/v1/messages/retry {"ids":["0000000000000001","3"]}`, "2 messages scheduled for retry\n"},
		{[]string{"retry", "--domain", "one.test", "--status", "pending"}, 0,
			`POST /api/v1/messages/retry?domain=one.test&status=pending {}`, "2 messages scheduled for retry\n"},
		{[]string{"retry", "--json", "--queue", "bulk"}, 0, `POST /api/v1/messages/retry?queue=bulk {}`, `{"matched":2}`},
		{[]string{"retry", "1", "--domain", "one.test"}, 2, "", "give message ids or filters, not both"},
		{[]string{"retry", "--limit", "5"}, 2, "", "flag provided but not defined: -limit"},

		{[]string{"cancel", "0000000000000002", "--rcpt", "w@three.test"}, 0,
			`POST /api/v1/messages/cancel {"ids":["0000000000000002"],"rcpt":"w@three.test"}`, "1 message cancelled\n3 messages left alone"},
		{[]string{"cancel", "--rcpt", "w@three.test"}, 0,
			`POST /api/v1/messages/cancel?rcpt=w%40three.test {"rcpt":"w@three.test"}`, "1 message cancelled\n"},
		{[]string{"cancel", "--sender", "<>", "--json"}, 0,
			`POST /api/v1/messages/cancel?sender=%3C%3E {}`, `{"matched":1,"skipped":3}`},
		{[]string{"cancel"}, 2, "", "refusing to cancel every message in the queue: give message ids or a filter"},
		{[]string{"cancel", "--queue", ""}, 2, "", "refusing to cancel every message in the queue"},

		{[]string{"suspend", "bulk"}, 0, `POST /api/v1/queues/bulk/suspend`, "queue bulk suspended: its mail stays queued and keeps its expiry\n"},
		{[]string{"resume", "bulk", "--json"}, 0, `POST /api/v1/queues/bulk/resume`, `{"queue":"bulk","suspended":false}`},
		{[]string{"suspend", "nope"}, 1, `POST /api/v1/queues/nope/suspend`, `no queue "nope" (404)`},
		{[]string{"suspend"}, 2, "", "queue suspend takes a queue name, or domain DOMAIN, or sender DOMAIN"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(append([]string{"queue"}, tt.args...), &out, &errb)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tt.code, errb.String())
			}
			got := out.String()
			if code != 0 {
				got = errb.String()
			}
			if code == 0 && !strings.HasPrefix(got, tt.out) || code != 0 && !strings.Contains(got, tt.out) {
				t.Errorf("output %q, want %q", got, tt.out)
			}
			var want []string
			if tt.req != "" {
				want = []string{tt.req}
			}
			if reqs := api.take(); fmt.Sprint(reqs) != fmt.Sprint(want) {
				t.Errorf("requests %q, want %q", reqs, want)
			}
		})
	}
}

// A server without engine control says so.
func TestQueueWriteNotImplemented(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotImplemented)
		_, _ = w.Write([]byte(`{"error":"this server does not offer write operations"}`))
	}))
	t.Cleanup(srv.Close)
	var out, errb bytes.Buffer
	code := run([]string{"queue", "retry", "1", "--api", srv.URL, "--token", "tok"}, &out, &errb)
	if want := "cannot change the queue: this server does not offer write operations (501)"; code != 1 || !strings.Contains(errb.String(), want) {
		t.Errorf("exit %d, stderr %q; want %q", code, errb.String(), want)
	}
}
