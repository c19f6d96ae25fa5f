package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mtad/mtad/internal/testsink"
)

// buildMtad compiles the daemon once for the test.
func buildMtad(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mtad")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// daemon is a running mtad child process.
type daemon struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan struct{}
}

func startDaemon(t *testing.T, bin string, args ...string) *daemon {
	t.Helper()
	d := &daemon{cmd: exec.Command(bin, args...), stderr: &bytes.Buffer{}, done: make(chan struct{})}
	d.cmd.Stderr = &lockedWriter{w: d.stderr}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		_ = d.cmd.Process.Kill()
		<-d.done
	})
	return d
}

// terminate sends SIGTERM and waits up to 30 s for the process to exit,
// failing the test if it does not; it returns the exit code.
func (d *daemon) terminate(t *testing.T) int {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		t.Fatal("mtad did not stop on SIGTERM")
	}
	return d.cmd.ProcessState.ExitCode()
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func waitListening(t *testing.T, d *daemon, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			t.Fatalf("mtad exited early: %s", d.stderr)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("mtad did not listen on %s", addr)
}

var testID = regexp.MustCompile(`X-Test-Id: (\d+)`)

// TestCrashLosesNothing kills the daemon with SIGKILL in the middle of a
// stream of submissions and deliveries, restarts it on the same data
// directory, and checks that every message answered 250 reaches the sink.
func TestCrashLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemon")
	}
	bin := buildMtad(t)
	sink := testsink.Start(t)
	dir, addr := t.TempDir(), freeAddr(t)
	cfg := filepath.Join(t.TempDir(), "mtad.toml")
	if err := os.WriteFile(cfg, []byte("[server]\nhostname = \"crash.test\"\n[log]\nlevel = \"warn\"\n[queue.schedule.default]\nretry = [\"1s\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"serve", "--config", cfg, "--data-dir", dir, "--listen", addr, "--relay", sink.Addr}
	d1 := startDaemon(t, bin, args...)
	waitListening(t, d1, addr)

	var accepted sync.Map
	var n atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			submitStream(addr, w, stop, &accepted, &n)
		}()
	}
	waitCount(t, &n, 300, 30*time.Second)
	if err := d1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-d1.done
	close(stop)
	wg.Wait()
	before := len(sink.Rcpts())
	t.Logf("killed after %d messages answered 250; %d delivered before the kill", n.Load(), before)

	d2 := startDaemon(t, bin, args...)
	waitListening(t, d2, addr)
	want := collect(&accepted)
	deadline := time.Now().Add(60 * time.Second)
	for missing(sink, want) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if m := missing(sink, want); m > 0 {
		t.Fatalf("%d of %d messages answered 250 never reached the sink\nmtad stderr:\n%s", m, len(want), d2.stderr)
	}
	t.Logf("all %d accepted messages delivered; duplicates: %d", len(want), duplicates(sink))
	_ = d2.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d2.done:
	case <-time.After(30 * time.Second):
		t.Errorf("mtad did not stop within 30s of SIGTERM")
	}
}

// submitStream sends messages one after another on one connection per
// message batch until stop, recording each id that got a 250.
func submitStream(addr string, worker int, stop chan struct{}, accepted *sync.Map, n *atomic.Int64) {
	for i := 0; i < 100000; i++ {
		select {
		case <-stop:
			return
		default:
		}
		id := fmt.Sprintf("%d%06d", worker+1, i)
		body := fmt.Sprintf("Subject: crash %s\r\nX-Test-Id: %s\r\n\r\nbody %s\r\n", id, id, id)
		c, err := smtp.Dial(addr)
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		err = c.SendMail("s@sender.test", []string{"r" + id + "@crash.test"}, bytes.NewBufferString(body))
		_ = c.Close()
		if err == nil {
			accepted.Store(id, true)
			n.Add(1)
		}
	}
}

func waitCount(t *testing.T, n *atomic.Int64, want int64, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for n.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("only %d messages accepted in %v", n.Load(), d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func collect(m *sync.Map) map[string]bool {
	out := map[string]bool{}
	m.Range(func(k, _ any) bool { out[k.(string)] = true; return true })
	return out
}

func seen(sink *testsink.Sink) map[string]int {
	out := map[string]int{}
	for _, tx := range sink.Txs() {
		if m := testID.FindSubmatch(tx.Data); m != nil {
			out[string(m[1])]++
		}
	}
	return out
}

func missing(sink *testsink.Sink, want map[string]bool) int {
	got := seen(sink)
	n := 0
	for id := range want {
		if got[id] == 0 {
			n++
		}
	}
	return n
}

func duplicates(sink *testsink.Sink) int {
	n := 0
	for _, c := range seen(sink) {
		n += c - 1
	}
	return n
}
