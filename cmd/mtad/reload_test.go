package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// logText reads what the daemon wrote to stderr so far.
func (d *daemon) logText() string {
	lw := d.cmd.Stderr.(*lockedWriter)
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return d.stderr.String()
}

// SIGHUP reloads the configuration file: a good one is put in force, a
// broken one is refused, logged, and the daemon runs on.
func TestSIGHUPReloads(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemon")
	}
	var def, errb bytes.Buffer
	if code := run([]string{"config", "default"}, &def, &errb); code != 0 {
		t.Fatal(errb.String())
	}
	file := filepath.Join(t.TempDir(), "mtad.toml")
	if err := os.WriteFile(file, def.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := buildMtad(t)
	addr := freeAddr(t)
	d := startDaemon(t, bin, "serve", "--config", file, "--data-dir", t.TempDir(), "--listen", addr, "--relay", "127.0.0.1:9")
	waitListening(t, d, addr)
	waitLog := func(what string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(d.logText(), what) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log:\n%s", what, d.logText())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if err := os.WriteFile(file, append(def.Bytes(), "\n[queue.virtual.extra]\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog("configuration reloaded")
	if err := os.WriteFile(file, []byte("[queue.schedule.default]\nretry = [\"soon\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog("configuration reload refused")
	if !strings.Contains(d.logText(), "retry[0]") {
		t.Errorf("the refusal does not name the key:\n%s", d.logText())
	}
	waitListening(t, d, addr) // still serving
	if code := d.terminate(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM; log:\n%s", code, d.logText())
	}
}
