package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeTXT answers from a map of names to records; a missing name is
// NXDOMAIN, a name in fail is a server failure.
type fakeTXT struct {
	records map[string][]string
	fail    map[string]bool
}

func (f fakeTXT) LookupTXT(ctx context.Context, name string) ([]string, error) {
	if f.fail[name] {
		return nil, &net.DNSError{Err: "server misbehaving", Name: name, IsTemporary: true}
	}
	if r, ok := f.records[name]; ok {
		return r, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

// submitted is what a fake Submit was given.
type submitted struct {
	from  string
	rcpts []string
	msg   []byte
}

// collector is an https rua: it keeps the bodies of the POSTs it accepts.
type collector struct {
	mu      sync.Mutex
	bodies  map[string][]byte // by path
	release chan struct{}     // closed to end requests to /slow
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/broken":
		http.Error(w, "nope", http.StatusInternalServerError)
		return
	case r.URL.Path == "/slow":
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-c.release:
		}
		// Never answer: a 200 written on the way out could reach a client
		// still waiting and pass for a delivered report.
		panic(http.ErrAbortHandler)
	case r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/tlsrpt+gzip":
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	body, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.bodies[r.URL.Path] = body
	c.mu.Unlock()
	w.WriteHeader(http.StatusCreated)
}

func TestSend(t *testing.T) {
	coll := &collector{bodies: make(map[string][]byte)}
	srv := httptest.NewTLSServer(coll)
	defer srv.Close()
	if host, _, _ := net.SplitHostPort(srv.Listener.Addr().String()); host != "127.0.0.1" {
		t.Fatalf("test server on %s, want 127.0.0.1", host)
	}

	r := NewRecorder()
	at := day1.Add(time.Hour)
	for _, d := range []string{"both.example", "none.example", "bad.example", "broken.example", "servfail.example", "two.example"} {
		r.Record(Result{Domain: d, Success: true}, at)
	}
	reports := r.Take(at)

	var mu sync.Mutex
	var subs []submitted
	s := &Sender{
		TXT: fakeTXT{
			records: map[string][]string{
				"_smtp._tls.both.example.":   {"v=spf1 -all", "v=TLSRPTv1; rua=mailto:tls@both.example," + srv.URL + "/both,mailto:tls@both.example"},
				"_smtp._tls.bad.example.":    {"v=TLSRPTv1; rua=ftp://bad.example/"},
				"_smtp._tls.broken.example.": {"v=TLSRPTv1; rua=" + srv.URL + "/broken"},
				"_smtp._tls.two.example.":    {"v=TLSRPTv1; rua=mailto:a@two.example", "v=TLSRPTv1; rua=mailto:b@two.example"},
			},
			fail: map[string]bool{"_smtp._tls.servfail.example.": true},
		},
		Submit: func(from string, rcpts []string, msg []byte) error {
			mu.Lock()
			defer mu.Unlock()
			subs = append(subs, submitted{from, rcpts, msg})
			return nil
		},
		From: `"TLS Reports" <` + testContact + ">",
		Org:  testOrg,
		HTTP: srv.Client(),
		Now:  func() time.Time { return testNow },
	}
	err := s.Send(context.Background(), reports)
	for _, d := range []string{"bad.example", "broken.example", "servfail.example"} {
		if err == nil || !strings.Contains(err.Error(), "report for "+d) {
			t.Errorf("Send's error does not name %s: %v", d, err)
		}
	}
	for _, d := range []string{"both.example", "none.example", "two.example"} {
		if err != nil && strings.Contains(err.Error(), d) {
			t.Errorf("Send's error names %s: %v", d, err)
		}
	}

	if len(subs) != 1 || subs[0].from != testContact || !slices.Equal(subs[0].rcpts, []string{"tls@both.example"}) {
		t.Fatalf("submitted %+v, want one message from %s to tls@both.example", subs, testContact)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(subs[0].msg))
	if err != nil {
		t.Fatal(err)
	}
	if got := msg.Header.Get("TLS-Report-Domain"); got != "both.example" {
		t.Errorf("TLS-Report-Domain %q", got)
	}

	js, err := reports["both.example"].JSON()
	if err != nil {
		t.Fatal(err)
	}
	checkSchema(t, js)
	if !strings.Contains(string(js), `"contact-info": "`+testContact+`"`) {
		t.Errorf("contact-info is not the report address:\n%s", js)
	}
	coll.mu.Lock()
	body := coll.bodies["/both"]
	coll.mu.Unlock()
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST body is not gzip: %v", err)
	}
	got, _ := io.ReadAll(zr)
	if !bytes.Equal(got, js) {
		t.Errorf("POST body holds\n%s\nwant\n%s", got, js)
	}
}

// TestSendTimeout checks that a POST to a server that never answers ends
// at Sender.Timeout.
func TestSendTimeout(t *testing.T) {
	coll := &collector{release: make(chan struct{})}
	srv := httptest.NewTLSServer(coll)
	defer srv.Close()
	defer close(coll.release)
	r := NewRecorder()
	r.Record(Result{Domain: "slow.example", Success: true}, day1)
	s := &Sender{
		TXT:     fakeTXT{records: map[string][]string{"_smtp._tls.slow.example.": {"v=TLSRPTv1; rua=" + srv.URL + "/slow"}}},
		Submit:  func(string, []string, []byte) error { return errors.New("unexpected") },
		From:    testContact,
		Org:     testOrg,
		HTTP:    srv.Client(),
		Timeout: 200 * time.Millisecond,
	}
	start := time.Now()
	err := s.Send(context.Background(), r.Take(day1))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Send = %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Send took %v", d)
	}
}

func TestSendSubmitError(t *testing.T) {
	r := NewRecorder()
	r.Record(Result{Domain: "example.com", Success: true}, day1)
	s := &Sender{
		TXT:    fakeTXT{records: map[string][]string{"_smtp._tls.example.com.": {"v=TLSRPTv1; rua=mailto:tls@example.com"}}},
		Submit: func(string, []string, []byte) error { return errors.New("queue full") },
		From:   testContact,
		Org:    testOrg,
	}
	err := s.Send(context.Background(), r.Take(day1))
	if err == nil || !strings.Contains(err.Error(), "queue full") {
		t.Errorf("Send = %v, want the Submit error", err)
	}
}

func TestSendCanceled(t *testing.T) {
	r := NewRecorder()
	r.Record(Result{Domain: "example.com", Success: true}, day1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := &Sender{TXT: fakeTXT{}, From: testContact, Org: testOrg}
	if err := s.Send(ctx, r.Take(day1)); !errors.Is(err, context.Canceled) {
		t.Errorf("Send = %v, want context.Canceled", err)
	}
}
