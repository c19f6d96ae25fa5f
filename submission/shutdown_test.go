package submission

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

const bye = "421 4.3.2 mx.test Service shutting down, closing transmission channel"

// shutdownAsync runs Shutdown on a goroutine.
func shutdownAsync(srv *Server, ctx context.Context) <-chan error {
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	return done
}

func waitErr(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(waitFor):
		t.Fatal("Shutdown did not return")
		return nil
	}
}

// waitRefused polls until the server's address refuses connections.
func waitRefused(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("listener still accepting")
}

func TestShutdownIdle(t *testing.T) {
	h := start(t, testConfig())
	afterEHLO := h.raw(true)
	greeted := h.raw(false)
	afterMessage := h.raw(true)
	afterMessage.transaction("a@sender.example", []string{"b@local.test"}, "\r\n")

	if err := waitErr(t, shutdownAsync(h.srv, t.Context())); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for name, c := range map[string]*rawClient{"after EHLO": afterEHLO, "greeted": greeted, "after a message": afterMessage} {
		if got := c.closed(); len(got) < 1 || got[0] != bye {
			t.Errorf("%s: read %q, want %q then close", name, got, bye)
		}
	}
	h.waitServed()
	if _, err := net.Dial("tcp", h.addr); err == nil {
		t.Error("still accepting after Shutdown")
	}
	checkAccepted(t, h, 1)
}

// TestShutdownTransaction: a transaction open when Shutdown starts is let
// finish, and then its session is closed.
func TestShutdownTransaction(t *testing.T) {
	h := start(t, testConfig())
	c := h.client()
	if err := c.Mail("a@sender.example", nil); err != nil {
		t.Fatal(err)
	}
	idle := h.raw(true)

	done := shutdownAsync(h.srv, t.Context())
	waitRefused(t, h.addr)
	if got := idle.closed(); len(got) < 1 || got[0] != bye {
		t.Errorf("idle session read %q, want %q", got, bye)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a transaction open", err)
	default:
	}

	if err := c.Rcpt("b@local.test", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("Subject: late\r\n\r\nx\r\n"))
	if err := w.Close(); err != nil {
		t.Fatalf("DATA during shutdown: %v", err)
	}
	if err := waitErr(t, done); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	var se *smtp.SMTPError
	if err := c.Noop(); !errors.As(err, &se) || se.Code != 421 {
		// The 421 was sent after the 250; reading it is the reply to NOOP.
		t.Errorf("NOOP after the transaction: %v, want 421", err)
	}
	h.waitServed()
	checkAccepted(t, h, 1)
}

// TestShutdownDeadline: a transaction that does not finish in time is cut.
func TestShutdownDeadline(t *testing.T) {
	h := start(t, testConfig())
	entered, release := h.acc.holdNext()
	defer release()
	c := h.raw(true)
	c.expect("MAIL FROM:<a@sender.example>", "250 ")
	c.expect("RCPT TO:<b@local.test>", "250 ")
	c.expect("DATA", "354 ")
	c.send("\r\n.\r\n")
	<-entered

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := waitErr(t, shutdownAsync(h.srv, ctx)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want deadline exceeded", err)
	}
	if got := c.closed(); strings.Contains(strings.Join(got, "\n"), "250") {
		t.Errorf("read %q from a cut session", got)
	}
	h.waitServed()
}

func TestShutdownTwiceAndServeAfter(t *testing.T) {
	h := start(t, testConfig())
	h.raw(false) // Serve is running once the greeting came
	if err := h.srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := h.srv.Shutdown(t.Context()); !errors.Is(err, smtp.ErrServerClosed) {
		t.Errorf("second Shutdown: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.srv.Serve(l); !errors.Is(err, smtp.ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v", err)
	}
	if c, err := net.Dial("tcp", l.Addr().String()); err == nil {
		c.Close()
		t.Error("listener given to Serve after Shutdown still open")
	}
}
