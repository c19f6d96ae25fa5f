package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mtad/mtad/internal/testsink"
)

// Queue quotas are right after a SIGKILL and a restart: rebuilt from the
// journal, they still refuse the 4th message, and free up as mail leaves.
func TestQuotaAfterCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemon")
	}
	bin := buildMtad(t)
	sink := testsink.Start(t)
	var accept atomic.Bool
	sink.SetRcptReply(func(string) *smtp.SMTPError {
		if accept.Load() {
			return nil
		}
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "not yet"}
	})
	dir, addr := t.TempDir(), freeAddr(t)
	cfg := filepath.Join(t.TempDir(), "mtad.toml")
	toml := "[log]\nlevel = \"warn\"\n[queue.schedule.default]\nretry = [\"1s\"]\n[queue.quota.global]\nmessages = 3\n"
	if err := os.WriteFile(cfg, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"serve", "--config", cfg, "--data-dir", dir, "--listen", addr, "--relay", sink.Addr}
	submit := func() error {
		c, err := smtp.Dial(addr)
		if err != nil {
			return err
		}
		defer c.Close()
		return c.SendMail("s@sender.test", []string{"r@one.test"}, bytes.NewBufferString("Subject: q\r\n\r\nq\r\n"))
	}
	full := func(err error) bool {
		var se *smtp.SMTPError
		return errors.As(err, &se) && se.Code == 452 && se.EnhancedCode == (smtp.EnhancedCode{4, 3, 1})
	}
	d1 := startDaemon(t, bin, args...)
	waitListening(t, d1, addr)
	for i := range 3 {
		if err := submit(); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if err := submit(); !full(err) {
		t.Fatalf("4th message before the crash: %v, want 452 4.3.1", err)
	}
	_ = d1.cmd.Process.Signal(syscall.SIGKILL)
	<-d1.done

	d2 := startDaemon(t, bin, args...)
	waitListening(t, d2, addr)
	if err := submit(); !full(err) {
		t.Fatalf("4th message after the restart: %v, want 452 4.3.1 (quota rebuilt from the journal)", err)
	}
	accept.Store(true)
	deadline := time.Now().Add(20 * time.Second)
	for submit() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the quota never freed; mtad stderr:\n%s", d2.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
