package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Bounds on the daemon's life cycle.
const (
	readyBound   = time.Minute // from start until --listen accepts
	readyPoll    = 50 * time.Millisecond
	stopBound    = 30 * time.Second // from SIGTERM until SIGKILL
	logTailBytes = 4 << 10
)

// requireLoopback accepts only 127.0.0.1 and ::1 host:port addresses: the
// harness talks to nothing else.
func requireLoopback(hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("address %q: %w", hostport, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || (ip != netip.IPv6Loopback() && ip != netip.AddrFrom4([4]byte{127, 0, 0, 1})) {
		return fmt.Errorf("address %q: only 127.0.0.1 and [::1] are allowed", hostport)
	}
	return nil
}

// freeLoopbackAddr picks a free TCP port on 127.0.0.1. Another process may
// take it before mtad binds it; mtad then fails to start and says so.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// buildMtad builds ./cmd/mtad of the current module into dir.
func buildMtad(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "mtad")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/mtad").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build ./cmd/mtad (run from the module root, or pass -mtad): %w\n%s", err, out)
	}
	return bin, nil
}

// daemon is an mtad child process. Only the goroutine that started it
// calls its methods; the waiter goroutine only sets waitErr and closes
// exited.
type daemon struct {
	cmd       *exec.Cmd
	listen    string
	logPath   string
	startedAt time.Time     // just before the exec
	profiled  bool          // started with --pprof
	exited    chan struct{} // closed once the process has exited
	waitErr   error         // cmd.Wait's result; read only after exited is closed
}

// daemonSpec is how to run one mtad.
type daemonSpec struct {
	bin, dataDir string
	config       string // --config; "" for the embedded default
	relay        string // --relay host:port
	pprof        string // --pprof host:port; "" for none
	logPath      string // stdout and stderr
}

// startDaemon starts `bin serve` listening on a free loopback port as spec
// says.
func startDaemon(spec daemonSpec) (*daemon, error) {
	listen, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	args := []string{"serve", "--data-dir", spec.dataDir, "--listen", listen, "--relay", spec.relay}
	if spec.config != "" {
		args = append(args, "--config", spec.config)
	}
	if spec.pprof != "" {
		args = append(args, "--pprof", spec.pprof)
	}
	logf, err := os.Create(spec.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(spec.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	d := &daemon{cmd: cmd, listen: listen, logPath: spec.logPath, profiled: spec.pprof != "",
		startedAt: time.Now(), exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start mtad: %w", err)
	}
	go func() {
		d.waitErr = cmd.Wait()
		close(d.exited)
	}()
	return d, nil
}

// waitReady polls until mtad accepts TCP connections on its listen address,
// it exits, ctx ends or readyBound passes.
func (d *daemon) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyBound)
	defer cancel()
	t := time.NewTicker(readyPoll)
	defer t.Stop()
	for {
		dl := net.Dialer{Timeout: readyPoll}
		if conn, err := dl.DialContext(ctx, "tcp", d.listen); err == nil {
			return conn.Close()
		}
		select {
		case <-d.exited:
			return fmt.Errorf("mtad exited before listening on %s: %v", d.listen, d.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("mtad not listening on %s: %w", d.listen, ctx.Err())
		case <-t.C:
		}
	}
}

// peakRSS reads the process's peak resident set size (VmHWM), in KiB.
func (d *daemon) peakRSS() (int64, error) { return d.statusKiB("VmHWM") }

// rss reads the process's resident set size (VmRSS), in KiB.
func (d *daemon) rss() (int64, error) { return d.statusKiB("VmRSS") }

func (d *daemon) statusKiB(field string) (int64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	return parseStatusKiB(status, field)
}

// parseVmHWM finds "VmHWM:    1234 kB" in a /proc/<pid>/status text.
func parseVmHWM(status []byte) (int64, error) { return parseStatusKiB(status, "VmHWM") }

// parseStatusKiB finds "<field>:    1234 kB" in a /proc/<pid>/status text.
func parseStatusKiB(status []byte, field string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), field+":")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			break
		}
		return strconv.ParseInt(fields[0], 10, 64)
	}
	return 0, fmt.Errorf("no %s line in /proc status", field)
}

// kill sends SIGKILL and waits for the process to be gone.
func (d *daemon) kill() {
	_ = d.cmd.Process.Kill()
	<-d.exited // SIGKILL cannot be caught: the wait is short
}

// stop sends SIGTERM, waits up to stopBound, then SIGKILLs, and describes
// how the process ended.
func (d *daemon) stop() string {
	select {
	case <-d.exited:
		return "had exited: " + d.exitText()
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(stopBound)
	defer t.Stop()
	select {
	case <-d.exited:
		return d.exitText()
	case <-t.C:
	}
	_ = d.cmd.Process.Kill()
	<-d.exited
	return fmt.Sprintf("killed after %s without exiting on SIGTERM", stopBound)
}

// exitedCleanly is exitText of a daemon that exited with status 0.
const exitedCleanly = "exited cleanly"

func (d *daemon) exitText() string {
	if d.waitErr == nil {
		return exitedCleanly
	}
	return d.waitErr.Error()
}

// cleanExit reports whether the process ended with status 0.
func (d *daemon) cleanExit() bool {
	select {
	case <-d.exited:
		return d.waitErr == nil
	default:
		return false
	}
}

// logTail is the end of the daemon's log, for error reports.
func (d *daemon) logTail() string {
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		return ""
	}
	if len(b) > logTailBytes {
		b = b[len(b)-logTailBytes:]
	}
	return string(b)
}
