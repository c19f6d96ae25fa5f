package main

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// newTestSink starts a sink for p on a loopback port, closed at the end of
// the test.
func newTestSink(t *testing.T, p *plan) (*ledger, *sink) {
	t.Helper()
	l := newLedger(p)
	s, err := startSink("127.0.0.1:0", l)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.close() })
	return l, s
}

func dialTest(t *testing.T, addr string) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello(ehloName); err != nil {
		t.Fatal(err)
	}
	return c
}

// sendTo runs one transaction of message id to the given slots and fails
// the test on any refusal.
func sendTo(t *testing.T, c *smtp.Client, p *plan, id int, slots ...int) {
	t.Helper()
	msg, err := newGenerator(p).build(nil, id, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rcpts := make([]string, len(slots))
	for i, s := range slots {
		rcpts[i] = p.addr(s)
	}
	if err := c.SendMail(senderAddr, rcpts, strings.NewReader(string(msg))); err != nil {
		t.Fatalf("send message %d: %v", id, err)
	}
}

func wantSMTPError(t *testing.T, err error, code int, enh smtp.EnhancedCode) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != code || se.EnhancedCode != enh {
		t.Fatalf("got %v, want %d %v", err, code, enh)
	}
}

func TestSinkTempFailsOnceThenAccepts(t *testing.T) {
	p, _ := newPlan(4, minSize, 1, 1, 1, 0) // every recipient temp-fails once
	l, s := newTestSink(t, p)
	c := dialTest(t, s.addr())
	if err := c.Mail(senderAddr, nil); err != nil {
		t.Fatal(err)
	}
	wantSMTPError(t, c.Rcpt(p.addr(2), nil), 451, smtp.EnhancedCode{4, 7, 1})
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	sendTo(t, c, p, 2, 2) // the retry is accepted and delivered
	if got := l.tempFails.Load(); got != 1 {
		t.Errorf("tempFails = %d, want 1", got)
	}
	if l.deliveredAt[2].Load() == 0 || l.deliveries.Load() != 1 {
		t.Errorf("slot 2 not delivered once: deliveries %d", l.deliveries.Load())
	}
}

func TestSinkPermFailsAlways(t *testing.T) {
	p, _ := newPlan(4, minSize, 1, 1, 0, 1)
	l, s := newTestSink(t, p)
	c := dialTest(t, s.addr())
	if err := c.Mail(senderAddr, nil); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		wantSMTPError(t, c.Rcpt(p.addr(1), nil), 550, smtp.EnhancedCode{5, 1, 1})
	}
	if got := l.permFails.Load(); got != 3 {
		t.Errorf("permFails = %d, want 3", got)
	}
}

func TestSinkCountsDuplicatesByRecipient(t *testing.T) {
	p, _ := newPlan(3, minSize, 2, 1, 0, 0)
	l, s := newTestSink(t, p)
	c := dialTest(t, s.addr())
	sendTo(t, c, p, 1, 2)    // message 1, first recipient
	sendTo(t, c, p, 1, 3)    // message 1, second recipient: not a duplicate
	sendTo(t, c, p, 1, 2, 3) // both again
	sendTo(t, c, p, 0, 0)
	if got := l.duplicates.Load(); got != 2 {
		t.Errorf("duplicates = %d, want 2", got)
	}
	if got := l.deliveries.Load(); got != 5 {
		t.Errorf("deliveries = %d, want 5", got)
	}
	if got := l.sinkMessages.Load(); got != 4 {
		t.Errorf("sink messages = %d, want 4", got)
	}
}

func TestSinkForeignMessages(t *testing.T) {
	p, _ := newPlan(3, minSize, 1, 1, 0, 0)
	other, _ := newPlan(3, minSize, 1, 1, 0, 0) // another run: same addresses, other tag
	l, s := newTestSink(t, p)
	c := dialTest(t, s.addr())
	dsn := "From: <>\r\nSubject: Undelivered Mail\r\n\r\nbounce\r\n"
	if err := c.SendMail("", []string{senderAddr}, strings.NewReader(dsn)); err != nil {
		t.Fatal(err)
	}
	sendTo(t, c, other, 1, 1)
	if got := l.foreign.Load(); got != 2 {
		t.Errorf("foreign = %d, want 2", got)
	}
	if got := l.deliveries.Load(); got != 0 {
		t.Errorf("deliveries = %d, want 0", got)
	}
}

func TestLedgerCompletesInEitherOrder(t *testing.T) {
	p, _ := newPlan(3, minSize, 1, 1, 0, 0)
	l := newLedger(p)
	l.accept(0, []int{0})
	l.deliver(0, 0)
	l.deliver(1, 0) // delivered before the injector saw the 250
	l.accept(1, []int{1})
	l.deliver(2, 0) // never accepted: not expected
	if got := l.done.Load(); got != 2 {
		t.Errorf("done = %d, want 2", got)
	}
	if got := l.expected.Load(); got != 2 {
		t.Errorf("expected = %d, want 2", got)
	}
	if l.deliver(0, 0) {
		t.Error("a second delivery of slot 0 was not a duplicate")
	}
}

func TestParseBenchHeaders(t *testing.T) {
	const run = "0123456789abcdef"
	long := "X-Long: " + strings.Repeat("x", 10000) + "\r\n"
	tests := []struct {
		name string
		in   string
		want benchHeaders
	}{
		{"plain", "X-Bench-Run: " + run + "\r\nX-Bench-Id: 42\r\nX-Bench-Sent: 1700000000000000000\r\n\r\nbody X-Bench-Id: 9\r\n",
			benchHeaders{ours: true, id: 42, sent: 1700000000000000000}},
		{"case and spaces", "x-bench-run:" + run + "  \r\nX-BENCH-ID:\t7\r\nx-Bench-sent: 5\r\n\r\n",
			benchHeaders{ours: true, id: 7, sent: 5}},
		{"bare LF", "X-Bench-Run: " + run + "\nX-Bench-Id: 3\n\n", benchHeaders{ours: true, id: 3}},
		{"no body", "X-Bench-Run: " + run + "\r\nX-Bench-Id: 3\r\n", benchHeaders{ours: true, id: 3}},
		{"long and folded lines", long + "Subject: a\r\n folded X-Bench-Id: 8\r\nX-Bench-Run: " + run + "\r\nX-Bench-Id: 4\r\n\r\n",
			benchHeaders{ours: true, id: 4}},
		{"other run", "X-Bench-Run: fedcba9876543210\r\nX-Bench-Id: 1\r\n\r\n", benchHeaders{id: 1}},
		{"bad id", "X-Bench-Run: " + run + "\r\nX-Bench-Id: 1x\r\n\r\n", benchHeaders{}},
		{"sent overflows", "X-Bench-Run: " + run + "\r\nX-Bench-Id: 1\r\nX-Bench-Sent: 99999999999999999999\r\n\r\n",
			benchHeaders{ours: true, id: 1}},
		{"empty", "", benchHeaders{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseBenchHeaders(bufio.NewReaderSize(strings.NewReader(tt.in), 64), run)
			if err != nil || got != tt.want {
				t.Errorf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestParseDigits(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"9223372036854775807", 1<<63 - 1, true}, {"9223372036854775808", 0, false},
		{"", 0, false}, {"-1", 0, false}, {"12a", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseDigits([]byte(tt.in))
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseDigits(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func BenchmarkReadBenchHeaders(b *testing.B) {
	p, _ := newPlan(10, 5120, 1, 1, 0, 0)
	msg, _ := newGenerator(p).build(nil, 3, time.Now())
	r := bytes.NewReader(msg)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(msg)
		if h, _, err := readBenchHeaders(r, p.run); err != nil || !h.ours {
			b.Fatal(h, err)
		}
	}
}

func TestSinkDeferSwitch(t *testing.T) {
	p, _ := newPlan(4, minSize, 1, 1, 0, 0)
	l, s := newTestSink(t, p)
	s.setDefer(true)
	c := dialTest(t, s.addr())
	if err := c.Mail(senderAddr, nil); err != nil {
		t.Fatal(err)
	}
	for _, to := range []string{p.addr(1), p.addr(1), "postmaster@elsewhere.test"} {
		err := c.Rcpt(to, nil)
		wantSMTPError(t, err, 451, smtp.EnhancedCode{4, 7, 1})
		if se := err.(*smtp.SMTPError); se.Message != "try later" {
			t.Errorf("message %q", se.Message)
		}
	}
	first := l.firstRcptAt[1].Load()
	if l.deferred.Load() != 3 || first == 0 || l.deliveries.Load() != 0 {
		t.Errorf("deferred %d, first RCPT at %d, deliveries %d", l.deferred.Load(), first, l.deliveries.Load())
	}
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	s.setDefer(false)
	sendTo(t, c, p, 1, 1)
	if l.deliveredAt[1].Load() == 0 || l.deferred.Load() != 3 || l.firstRcptAt[1].Load() != first {
		t.Errorf("after release: delivered at %d, deferred %d, first RCPT moved", l.deliveredAt[1].Load(), l.deferred.Load())
	}
	s.setDefer(true)
	if err := c.Mail(senderAddr, nil); err != nil {
		t.Fatal(err)
	}
	wantSMTPError(t, c.Rcpt(p.addr(2), nil), 451, smtp.EnhancedCode{4, 7, 1})
}

func TestSinkChecksBodySize(t *testing.T) {
	p, _ := newPlan(3, 3000, 1, 1, 0, 0)
	l, s := newTestSink(t, p)
	c := dialTest(t, s.addr())
	msg, err := newGenerator(p).build(nil, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	trace := "Received: from bench.localhost by mtad; Sat, 28 Nov 2026 10:00:00 +0000\r\n"
	for _, m := range []string{trace + string(msg), string(msg[:len(msg)-lineBytes]), string(msg) + "x\r\n"} {
		if err := c.SendMail(senderAddr, []string{p.addr(0)}, strings.NewReader(m)); err != nil {
			t.Fatal(err)
		}
	}
	if got := l.sizeMismatches.Load(); got != 2 {
		t.Errorf("size mismatches = %d, want 2 (a trace field in the header section is no mismatch)", got)
	}
}

func TestReadBenchHeadersCountsBody(t *testing.T) {
	p, _ := newPlan(2, 5000, 1, 1, 0, 0)
	sent := time.Now()
	msg, _ := newGenerator(p).build(nil, 1, sent)
	h, body, err := readBenchHeaders(bytes.NewReader(msg), p.run)
	if err != nil || !h.ours || body != int64(p.bodySize(1, sent.UnixNano())) {
		t.Errorf("headers %+v, body %d, want %d, %v", h, body, p.bodySize(1, sent.UnixNano()), err)
	}
}
