package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mtad/mtad/config"
	"github.com/mtad/mtad/deliverylog"
)

// startNode starts a node on a temp data dir with the given TOML on top of
// a test base (listener on 127.0.0.1:0, quick retries).
func startNode(t *testing.T, extra string) (*Server, string) {
	t.Helper()
	dir := t.TempDir()
	text := fmt.Sprintf(`
[server]
hostname = "mtad.test"
data-dir = %q
shutdown-timeout = "5s"
[server.listener.submission]
bind = ["127.0.0.1:0"]
`, dir)
	if !strings.Contains(extra, "[queue.virtual.default]") {
		text += "[queue.virtual.default]\nidle-timeout = \"300ms\"\n"
	}
	text += extra
	cfg, err := config.Parse("test.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := Start(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s, dir
}

// send submits one message and returns the reply error (nil for 250).
func send(t *testing.T, addr, from string, rcpts []string, body string) error {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, body); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

func message(id string) string {
	return "From: a@sender.test\r\nTo: x@example.test\r\nSubject: test " + id + "\r\nX-Test-Id: " + id + "\r\n\r\nHello " + id + "\r\n"
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// events reads the delivery log of a node's data dir.
func events(t *testing.T, dir string) []deliverylog.Event {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "delivery.log"))
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []deliverylog.Event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e deliverylog.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("delivery log line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

// waitEvent waits up to 5 s for an event of kind for rcpt in the delivery
// log, which is written in batches every 50 ms, and returns the last one
// (nil when none came).
func waitEvent(t *testing.T, dir, kind, rcpt string) *deliverylog.Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if e := eventFor(events(t, dir), kind, rcpt); e != nil || time.Now().After(deadline) {
			return e
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventFor finds the last event of kind for rcpt.
func eventFor(evs []deliverylog.Event, kind, rcpt string) *deliverylog.Event {
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Event == kind && strings.EqualFold(evs[i].Rcpt, rcpt) {
			return &evs[i]
		}
	}
	return nil
}
