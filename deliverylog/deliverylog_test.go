package deliverylog

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestWritesJSONLines(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, 16, slog.New(slog.NewTextHandler(io.Discard, nil)))
	from := ""
	l.Write(Event{Event: Delivered, MsgID: "0000000000000001", Rcpt: "a@b.test", Sender: &from, Code: 250, Attempt: 1})
	l.Write(Event{Event: Deferred, MsgID: "0000000000000002", NextTry: time.Unix(100, 0).UTC()})
	l.Close()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines: %q", len(lines), buf.String())
	}
	var e Event
	if err := json.Unmarshal([]byte(lines[0]), &e); err != nil || e.Event != Delivered || e.Time.IsZero() || e.Sender == nil || *e.Sender != "" {
		t.Errorf("first line %s: %+v %v", lines[0], e, err)
	}
	if !strings.Contains(lines[1], `"next_attempt":"1970-01-01T00:01:40Z"`) || strings.Contains(lines[0], "next_attempt") {
		t.Errorf("next_attempt wrong: %s / %s", lines[0], lines[1])
	}
}

// A full buffer drops instead of blocking, and Write after Close is safe.
func TestNeverBlocksAndSafeAfterClose(t *testing.T) {
	pr, pw := io.Pipe() // nobody reads: the writer goroutine blocks
	l := New(pw, 2, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for range 10 {
		l.Write(Event{Event: Attempt})
	}
	if l.Dropped() == 0 {
		t.Errorf("nothing dropped with a blocked writer and a buffer of 2")
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				l.Write(Event{Event: Attempt})
			}
		}()
	}
	l.Close()
	wg.Wait()
	l.Write(Event{Event: Attempt})
}

// Events reach the file without Close: the first of a batch wakes the
// writer, which writes after gatherFor; a batch that reaches a quarter of
// the buffer is written without waiting that long. (The bounds are loose
// for slow CI machines; the point is that lines do not wait for Close.)
func TestWritesWithoutClose(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return buf.Write(p) })
	lines := func() int { mu.Lock(); defer mu.Unlock(); return strings.Count(buf.String(), "\n") }
	l := New(w, 4000, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer l.Close()
	for i := range 3 { // each after the last was written: every one wakes the writer
		l.Write(Event{Event: Attempt})
		waitLines(t, lines, i+1, 200*gatherFor)
	}
	for range 1000 { // kickAt
		l.Write(Event{Event: Attempt})
	}
	waitLines(t, lines, 1003, 200*gatherFor)
	if l.Dropped() != 0 {
		t.Errorf("%d dropped", l.Dropped())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func waitLines(t *testing.T, lines func() int, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for lines() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%d lines written after %v, want %d", lines(), within, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// benchEvent is one typical line: a delivery.
func benchEvent() Event {
	from := "sender@example.com"
	return Event{Time: time.Now(), Event: Delivered, MsgID: "00000000000a1b2c", Rcpt: "someone@example.net", Sender: &from,
		Queue: "default", Domain: "example.net", Host: "mx1.example.net", IP: "192.0.2.10", Attempt: 1, Code: 250,
		Enhanced: "2.0.0", Reply: "250 2.0.0 Ok: queued as 4XyZ", Size: 5120}
}

// BenchmarkEncode is the cost of one typical line with encoding/json, as
// the writer encoded it before appendJSON: compare with BenchmarkAppendJSON.
func BenchmarkEncode(b *testing.B) {
	e := benchEvent()
	enc := json.NewEncoder(io.Discard)
	b.ReportAllocs()
	for b.Loop() {
		_ = enc.Encode(e)
	}
}

// BenchmarkAppendJSON is the cost of one typical line as the writer
// encodes it.
func BenchmarkAppendJSON(b *testing.B) {
	e := benchEvent()
	var line []byte
	b.ReportAllocs()
	for b.Loop() {
		line, _ = appendLine(line[:0], &e)
	}
}
