package persistence

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

const lockHelperEnv = "MTAD_PERSISTENCE_LOCK_HELPER"

// TestLockHelperProcess is not a test: TestLockedByOtherProcess runs the
// test binary with only this function, as the other mtad holding the lock.
func TestLockHelperProcess(t *testing.T) {
	dir := os.Getenv(lockHelperEnv)
	if dir == "" {
		t.Skip("helper process only")
	}
	j, err := Open(dir, Options{})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin) // until the parent kills us
	j.Close()
	os.Exit(0)
}

// A second process is kept out with its pid named; once it is killed with
// SIGKILL the kernel has dropped its lock and Open works.
func TestLockedByOtherProcess(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelperProcess$")
	cmd.Env = append(os.Environ(), lockHelperEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	waitReady(t, out)

	_, err = Open(dir, Options{})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("Open: %v, want ErrLocked", err)
	}
	want := fmt.Sprintf("data directory %s is in use by another mtad (pid %d)", dir, cmd.Process.Pid)
	if err.Error() != want {
		t.Errorf("Open: %q, want %q", err, want)
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	j := openT(t, dir)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

// waitReady waits, with a deadline, for the helper to say it holds the lock.
func waitReady(t *testing.T, out io.Reader) {
	t.Helper()
	ready := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			if line := s.Text(); line == "ready" || strings.HasPrefix(line, "open:") {
				ready <- line
				break
			}
		}
		io.Copy(io.Discard, out)
		close(ready)
	}()
	select {
	case line := <-ready:
		if line != "ready" {
			t.Fatalf("helper: %q", line)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("helper did not take the lock within 30s")
	}
}
