package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const cannedList = `{"messages":[
 {"id":"0000000000000001","from":"s@sender.test","arrival":"2026-01-01T00:00:00Z","size":233,"source":"trusted","rcpt_count":3,"pending":1,
  "recipients":[{"index":0,"addr":"a@one.test","status":"pending","queue":"default","attempts":2,"next_attempt":"2026-01-01T01:00:00Z",
                 "last_reply":{"code":451,"enhanced":"4.7.1","text":"try later"}},
                {"index":2,"addr":"c@one.test","status":"failed","queue":"default","attempts":1,"last_reply":{"code":550,"enhanced":"5.1.1","text":"no such user"}}]},
 {"id":"0000000000000002","from":"","arrival":"2026-01-01T00:00:01Z","size":1200,"rcpt_count":1,"pending":1,
  "recipients":[{"index":0,"addr":"s@sender.test","status":"pending","queue":"bounces","attempts":0,"next_attempt":"2026-01-01T00:00:01Z"}]}],
 "next_cursor":"0000000000000002"}`

// fakeAPI serves canned answers behind a token and records the queries.
func fakeAPI(t *testing.T, queries *[]string) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/messages", func(w http.ResponseWriter, r *http.Request) {
		*queries = append(*queries, r.URL.RawQuery)
		_, _ = w.Write([]byte(cannedList))
	})
	mux.HandleFunc("GET /api/v1/messages/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":"no message ` + r.PathValue("id") + ` in the queue"}`))
	})
	mux.HandleFunc("GET /api/v1/summary", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"messages":2,"pending_messages":2,"pending_recipients":2,"oldest_pending_age_seconds":3700,
			"oldest_pending_id":"0000000000000001","by_queue":{"default":1,"bounces":1},"by_status":{"pending":2,"failed":1},
			"by_domain":[{"domain":"one.test","count":1},{"domain":"sender.test","count":1}]}`))
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "a bearer token is required", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestQueueList(t *testing.T) {
	t.Setenv("MTAD_API", "")
	t.Setenv("MTAD_TOKEN", "")
	var queries []string
	srv := fakeAPI(t, &queries)
	var out, errb bytes.Buffer
	if code := run([]string{"queue", "list", "--api", srv.URL, "--token", "tok", "--domain", "one.test", "--status", "pending"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if len(queries) != 1 || queries[0] != "domain=one.test&status=pending" {
		t.Errorf("queries %q", queries)
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) != 6 {
		t.Fatalf("want header, 4 rows and a footer:\n%s", out.String())
	}
	// Aligned: every row's recipient starts where the header's RECIPIENT does.
	col := strings.Index(lines[0], "RECIPIENT")
	for i, want := range []string{"a@one.test", "c@one.test", "(1 more: mtad queue show 0000000000000001)", "s@sender.test"} {
		if !strings.HasPrefix(lines[i+1][col:], want) {
			t.Errorf("row %d: %q lacks %q at column %d", i+1, lines[i+1], want, col)
		}
	}
	for row, want := range map[int]string{1: "0000000000000001", 2: "550 5.1.1 no such user", 4: "<>"} {
		if !strings.Contains(lines[row], want) {
			t.Errorf("row %d: %q lacks %q", row, lines[row], want)
		}
	}
	if !strings.HasSuffix(lines[1], "451 4.7.1 try later") {
		t.Errorf("row 1: %q does not end with the last reply", lines[1])
	}
	if strings.Contains(lines[2], "0000000000000001") {
		t.Errorf("the message's columns repeat on its second recipient: %q", lines[2])
	}
	if lines[5] != "2 messages; more with --cursor 0000000000000002" {
		t.Errorf("footer %q", lines[5])
	}

	out.Reset()
	if code := run([]string{"queue", "list", "--json", "--api", srv.URL, "--token", "tok"}, &out, &errb); code != 0 || out.String() != cannedList {
		t.Errorf("--json: exit %d, output %q", code, out.String())
	}
}

func TestQueueShowAndSummary(t *testing.T) {
	t.Setenv("MTAD_TOKEN", "tok")
	var queries []string
	srv := fakeAPI(t, &queries)
	t.Setenv("MTAD_API", srv.URL)
	var out, errb bytes.Buffer
	if code := run([]string{"queue", "summary"}, &out, &errb); code != 0 {
		t.Fatalf("summary: exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"Pending recipients:  2", "Oldest pending:      1h1m40s (0000000000000001)", "bounces  1", "one.test     1", "failed     1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	errb.Reset()
	if code := run([]string{"queue", "show", "00000000000000ff", "--json"}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "no message 00000000000000ff in the queue") {
		t.Errorf("show of an absent message: exit %d, stderr %q", code, errb.String())
	}
	if code := run([]string{"queue", "show"}, &out, &errb); code != 2 {
		t.Errorf("show without an id: exit %d", code)
	}
}

func TestQueueErrors(t *testing.T) {
	t.Setenv("MTAD_API", "")
	t.Setenv("MTAD_TOKEN", "")
	var queries []string
	srv := fakeAPI(t, &queries)
	var out, errb bytes.Buffer
	if code := run([]string{"queue", "list", "--api", srv.URL}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "401") || !strings.Contains(errb.String(), "set --token or MTAD_TOKEN") {
		t.Errorf("without a token: exit %d, stderr %q", code, errb.String())
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	errb.Reset()
	code := run([]string{"queue", "list", "--api", addr, "--token", "tok"}, &out, &errb)
	want := "cannot reach the management API at http://" + addr + ": is mtad running with [server.management] bind set?"
	if code != 1 || !strings.Contains(errb.String(), want) {
		t.Errorf("API down: exit %d, stderr %q; want %q", code, errb.String(), want)
	}
}
