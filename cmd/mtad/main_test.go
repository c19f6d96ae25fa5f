package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigCommands(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"config", "default"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "[queue.strategy]") {
		t.Fatalf("config default: exit %d, output %q", code, out.String())
	}
	good := filepath.Join(t.TempDir(), "good.toml")
	if err := os.WriteFile(good, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := run([]string{"config", "check", good}, &out, &errb); code != 0 {
		t.Errorf("config check of the default: exit %d: %s", code, errb.String())
	}
	bad := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(bad, []byte("[queue.schedule.default]\nretry = [\"2m\", \"later\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	code := run([]string{"config", "check", bad}, &out, &errb)
	if code == 0 || !strings.Contains(errb.String(), bad) || !strings.Contains(errb.String(), "queue.schedule.default.retry[1]") {
		t.Errorf("config check of a bad file: exit %d, stderr %q; want non-zero naming the file and key", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"serve", "--config", bad}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "retry[1]") {
		t.Errorf("serve with a bad file: exit %d, stderr %q", code, errb.String())
	}
	if code := run([]string{"bogus"}, &out, &errb); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
}

// A second mtad on the same data directory refuses to start, saying why;
// SIGTERM stops the first cleanly.
func TestSecondInstanceRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemon")
	}
	bin := buildMtad(t)
	dir := t.TempDir()
	addr1, addr2 := freeAddr(t), freeAddr(t)
	d1 := startDaemon(t, bin, "serve", "--data-dir", dir, "--listen", addr1, "--relay", "127.0.0.1:9")
	waitListening(t, d1, addr1)
	d2 := startDaemon(t, bin, "serve", "--data-dir", dir, "--listen", addr2, "--relay", "127.0.0.1:9")
	select {
	case <-d2.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the second mtad did not exit")
	}
	if d2.cmd.ProcessState.ExitCode() == 0 || !strings.Contains(d2.stderr.String(), "in use by another mtad") {
		t.Errorf("second mtad: exit %d, stderr %q", d2.cmd.ProcessState.ExitCode(), d2.stderr)
	}
	if code := d1.terminate(t); code != 0 {
		t.Errorf("mtad exit code %d after SIGTERM, want 0; stderr:\n%s", code, d1.stderr)
	}
}
