package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// testConfig is the default command line with a small run.
func testConfig(t *testing.T, args ...string) config {
	t.Helper()
	var cfg config
	if err := newFlagSet(&cfg).Parse(args); err != nil {
		t.Fatal(err)
	}
	if err := cfg.check(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func runTest(t *testing.T, cfg config) (*report, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	rep := &report{}
	err := run(ctx, cfg, runEnv{}, rep)
	rep.conclude()
	return rep, err
}

func TestDirectRun(t *testing.T) {
	cfg := testConfig(t, "-direct-only", "-n", "200", "-c", "4", "-size", "2000", "-timeout", "15s")
	rep, err := runTest(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Main
	if s != rep.Direct || !rep.OK {
		t.Fatalf("report not OK: %v", rep.Problems)
	}
	got := [...]int64{s.Injected, s.Accepted, s.Rejected, s.Errors, s.RcptsAccepted, s.Expected, s.Delivered, s.Complete, s.Missing, s.Duplicates, s.Foreign, s.Malformed, s.SinkSessions}
	want := [...]int64{200, 200, 0, 0, 200, 200, 200, 200, 0, 0, 0, 0, 4}
	if got != want {
		t.Errorf("counts %v, want %v", got, want)
	}
	if s.AcceptRate <= 0 || s.DeliverRate <= 0 || s.AcceptToDelivered.Count != 200 {
		t.Errorf("rates %v / %v, latencies %+v", s.AcceptRate, s.DeliverRate, s.AcceptToDelivered)
	}
}

func TestDirectInjectionSeesSinkRefusals(t *testing.T) {
	p, _ := newPlan(300, minSize, 2, 3, 0.2, 0.2)
	l, s := newTestSink(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	inject(ctx, l, s.addr(), 3)
	var refused, wholeMessages int64
	for id := range p.n {
		ok := 0
		for j := range p.rcpts {
			if p.class(id*p.rcpts+j) == classOK {
				ok++
			}
		}
		refused += int64(p.rcpts - ok)
		if ok == 0 {
			wholeMessages++
		}
	}
	if l.rcptsRejected.Load() != refused || l.rejected.Load() != wholeMessages || l.errors.Load() != 0 {
		t.Errorf("refused rcpts %d (want %d), rejected messages %d (want %d), errors %d",
			l.rcptsRejected.Load(), refused, l.rejected.Load(), wholeMessages, l.errors.Load())
	}
	if !l.complete() || l.duplicates.Load() != 0 {
		t.Errorf("done %d of %d expected, duplicates %d", l.done.Load(), l.expected.Load(), l.duplicates.Load())
	}
}

func TestRunMainDirectOnlyJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	code := runMain([]string{"-direct-only", "-n", "100", "-c", "2", "-json", "-timeout", "15s"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	text, js, found := strings.Cut(out.String(), "\n{")
	if !found || !strings.Contains(text, "result                  OK") || !strings.Contains(text, "-direct-only=true") {
		t.Fatalf("report:\n%s", out.String())
	}
	var rep report
	if err := json.Unmarshal([]byte("{"+js), &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Main == nil || rep.Main.Complete != 100 || rep.PeakRSSKiB != nil {
		t.Errorf("JSON report: %+v", rep)
	}
}

func TestRunMainBadFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := runMain([]string{"-target", "192.0.2.1:25"}, &out, &errOut); code != 2 {
		t.Errorf("exit %d, want 2; stderr %s", code, errOut.String())
	}
}

// fakeMtadConfig runs the test binary as mtad in the given mode.
func fakeMtadConfig(t *testing.T, mode string, args ...string) config {
	t.Helper()
	return testConfig(t, append([]string{"-mtad", fakeMtadExe(t, mode), "-skip-direct"}, args...)...)
}

// fakeMtadExe is the test binary, set to act as mtad in the given mode
// when the harness starts it.
func fakeMtadExe(t *testing.T, mode string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(fakeMtadEnv, mode)
	return exe
}

func TestMtadRunWithFailures(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	cfg := fakeMtadConfig(t, "relay", "-n", "200", "-c", "4", "-rcpts", "2", "-domains", "3",
		"-temp-fail", "0.1", "-perm-fail", "0.1", "-data-dir", dataDir, "-timeout", "15s")
	rep, err := runTest(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.MtadExit != "exited cleanly" || rep.PeakRSSKiB == nil || *rep.PeakRSSKiB <= 0 {
		t.Fatalf("report: ok %v, exit %q, rss %v, problems %v", rep.OK, rep.MtadExit, rep.PeakRSSKiB, rep.Problems)
	}
	p, _ := newPlan(200, minSize, 2, 3, 0.1, 0.1)
	var count [3]int64
	for slot := range p.slots() {
		count[p.class(slot)]++
	}
	s := rep.Main
	if s.Accepted != 200 || s.RcptsAccepted != 400 || s.Expected != 400-count[classPerm] || s.Delivered != s.Expected {
		t.Errorf("accepted %d, rcpts %d, expected %d, delivered %d", s.Accepted, s.RcptsAccepted, s.Expected, s.Delivered)
	}
	if s.TempFails != count[classTemp] || s.PermFails != count[classPerm] || s.Duplicates != 0 {
		t.Errorf("451s %d (want %d), 550s %d (want %d), duplicates %d",
			s.TempFails, count[classTemp], s.PermFails, count[classPerm], s.Duplicates)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "journal")); err != nil {
		t.Errorf("mtad did not get -data-dir: %v", err)
	}
}

// TestMtadRunPairs: -pairs 2 runs two direct and two mtad phases, each
// mtad phase with its own mtad and data directory, and pools the ratio.
func TestMtadRunPairs(t *testing.T) {
	cfg := testConfig(t, "-mtad", fakeMtadExe(t, "relay"), "-n", "100", "-c", "4", "-pairs", "2", "-timeout", "30s")
	rep, err := runTest(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	tp := rep.Pairs
	if !rep.OK || tp == nil || len(tp.Direct) != 2 || len(tp.Mtad) != 2 || len(tp.PairRatios) != 2 {
		t.Fatalf("report: ok %v, problems %v, pairs %+v", rep.OK, rep.Problems, tp)
	}
	for i, p := range append(append([]*phaseStats(nil), tp.Direct...), tp.Mtad...) {
		if p.Delivered != 100 || p.Accepted != 100 {
			t.Errorf("phase %d: accepted %d, delivered %d", i, p.Accepted, p.Delivered)
		}
	}
	if tp.Mtad[0] == tp.Mtad[1] || rep.Main != tp.Mtad[0] || rep.Direct != tp.Direct[0] {
		t.Error("the mtad phases are not distinct, or Main and Direct not the first of each")
	}
	secs := func(ps []*phaseStats) float64 { return ps[0].DeliverSeconds + ps[1].DeliverSeconds }
	want := 100 * (200 / secs(tp.Mtad)) / (200 / secs(tp.Direct))
	if rep.RatioPct == nil || math.Abs(*rep.RatioPct-want) > 1e-9 || *rep.DirectRate != tp.DirectRate {
		t.Errorf("ratio %v, want the pooled %.3f", rep.RatioPct, want)
	}
	if rep.MtadExit != "exited cleanly" || rep.PeakRSSKiB == nil {
		t.Errorf("exit %q, rss %v", rep.MtadExit, rep.PeakRSSKiB)
	}
	var buf bytes.Buffer
	if err := rep.writeText(&buf); err != nil || !regexp.MustCompile(`pooled +over 2 pairs in ABBA order: mtad [0-9.]+ delivered/s, direct [0-9.]+/s\n +pair ratios +[0-9.]+%, [0-9.]+%`).MatchString(buf.String()) {
		t.Errorf("text report (%v):\n%s", err, buf.String())
	}
}

func TestMtadRunTimesOutWhenNothingIsDelivered(t *testing.T) {
	cfg := fakeMtadConfig(t, "blackhole", "-n", "20", "-c", "2", "-timeout", "1s")
	rep, err := runTest(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || rep.Main.Accepted != 20 || rep.Main.Missing != 20 {
		t.Errorf("ok %v, accepted %d, missing %d", rep.OK, rep.Main.Accepted, rep.Main.Missing)
	}
}

func TestMtadThatDoesNotStart(t *testing.T) {
	cfg := fakeMtadConfig(t, "crash", "-n", "10", "-timeout", "10s")
	_, err := runTest(t, cfg)
	if err == nil || !strings.Contains(err.Error(), "cannot open journal") {
		t.Errorf("error %v, want one quoting mtad's log", err)
	}
}

func TestTargetRun(t *testing.T) {
	sinkAddr, err := freeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	relay := startFakeRelay(t, sinkAddr)
	cfg := testConfig(t, "-target", relay, "-sink-listen", sinkAddr, "-n", "100", "-c", "3",
		"-perm-fail", "0.2", "-timeout", "15s")
	rep, err := runTest(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Direct == nil || rep.RatioPct == nil || rep.PeakRSSKiB != nil || rep.MtadExit != "" {
		t.Fatalf("report: %+v", rep)
	}
	if s := rep.Main; s.Accepted != 100 || s.Delivered != s.Expected || s.PermFails != 100-s.Expected {
		t.Errorf("accepted %d, delivered %d of %d, 550s %d", s.Accepted, s.Delivered, s.Expected, s.PermFails)
	}
}

// startFakeRelay runs the fake mtad's relay in this process, on a loopback
// port, relaying to relay; it returns its address.
func startFakeRelay(t *testing.T, relay string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &fakeRelay{relay: relay}
	srv := smtp.NewServer(r)
	srv.ErrorLog = log.New(io.Discard, "", 0)
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		r.wg.Wait()
	})
	return ln.Addr().String()
}

func TestInjectGivesUpOnDeadTarget(t *testing.T) {
	dead, err := freeLoopbackAddr() // nothing listens there any more
	if err != nil {
		t.Fatal(err)
	}
	p, _ := newPlan(10, minSize, 1, 1, 0, 0)
	l := newLedger(p)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	inject(ctx, l, dead, 2)
	if l.injected.Load() != 0 || l.connFailures.Load() != 2*maxDialFailures || l.firstError.Load() == nil {
		t.Errorf("injected %d, failed connects %d, first error %v", l.injected.Load(), l.connFailures.Load(), l.firstError.Load())
	}
}
