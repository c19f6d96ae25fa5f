// Command bench is mtad's load-test harness. It injects messages into an
// mtad over SMTP, receives what mtad relays at a sink of its own, and reports
// how fast mail went through, how long each message waited between mtad's
// 250 and its delivery, and mtad's peak memory. It talks only to 127.0.0.1
// and [::1], and every loop in it is bounded in count and in time.
//
// # Scenarios
//
// -scenario picks what to measure. Each prints a report (and JSON with
// -json) and exits 1 when its promise is broken; each promise broken is a
// line "FAIL: ..." at the end of the report. Every scenario but throughput
// writes mtad's configuration itself (a temporary file, checked with `mtad
// config check` first, and quoted in the JSON report), so it refuses
// -config, -target and -direct-only. Those configurations turn on the
// management listener on a free loopback port; at the end of each mtad run
// the harness reads its /metrics and reports the journal's gauges
// (mtad_journal_write_amplification, _wal_bytes_written, _flush_bytes,
// _compact_bytes, _user_bytes and any other mtad_journal_* gauge), "n/a"
// when mtad does not expose them. Flags left out take the scenario's
// defaults, shown in parentheses.
//
//   - throughput (the default): the run described below, unchanged. Promise:
//     every message accepted, every expected delivery arrives.
//
//   - backlog (-n 1000000 -size 1024 -c 20 -timeout 1h): the sink answers
//     every RCPT 451 4.7.1 while all -n messages are injected, so mtad queues
//     them all (retry every 30s, expiry 30d); once mtad_queue_messages counts
//     them (bounded wait), the sink accepts and the harness waits for every
//     delivery. mtad's VmRSS is sampled every second throughout. Reports
//     injected/s, queue at release, time to drain, delivered, missing,
//     duplicates, RSS by stage with a timeline, VmHWM and the journal
//     metrics. Promise: every message delivered, and peak RSS (VmHWM, or the
//     largest sample) at most 1 GiB ("FAIL: peak RSS X > 1 GiB").
//
//   - recovery (-n 1000000 -size 1024 -c 20 -timeout 1h): as backlog up to
//     the end of the injection; then SIGKILL, a restart on the same data
//     directory and configuration, and a probe message every 100 ms until
//     one gets its 250 (bounded at 1 min); then the sink accepts. Reports the
//     time from the restart's exec to that 250 and what arrived. Promise:
//     that time at most 10 s; no message accepted before the kill (nor the
//     probe) missing; duplicates no more than the sink's deliveries before
//     the kill (0, as it deferred). RSS above 1 GiB is only a warning here.
//
//   - failures (-n 50000 -temp-fail 0.10 -perm-fail 0.02 -pairs 2): -pairs
//     pairs of passes of -n messages, each pass against a fresh mtad and
//     data directory with a 2s retry: clean passes, and failing ones whose
//     sink answers the -temp-fail share of recipients 451 once (then 250)
//     and the -perm-fail share 550. The passes interleave in ABBA order
//     (clean, failing, failing, clean, clean, failing, ...) so the drift of
//     a shared machine weighs on both kinds alike; pair i is the i-th clean
//     pass with the i-th failing one. A pass's rate is delivered/s over its
//     first-attempt phase: recipients delivered from the start of the
//     injection until every accepted recipient has had its first attempt at
//     the sink (a delivery, 451 or 550), retries landing inside that window
//     included, divided by its length. Each kind's rate is pooled: its
//     passes' deliveries over their windows' total seconds. Promise: pooled
//     failing/clean >= 1 - temp - perm (0.88), and in every failing pass
//     every deferred recipient arrives on its retry; each pair's own ratio
//     is reported to show the spread. The window should span several
//     retries (a warning says when the shortest clean one is under three):
//     an unaffected mtad then scores about 0.95, where with no retries in
//     the window it scores 0.88, at the threshold. Refuses -data-dir.
//
//   - large (-large-sizes 10485760,52428800 -n 20 -c 4 -timeout 30m): for
//     each size, a fresh mtad whose session.max-message-size is the size
//     plus 1 MiB takes -n messages of that size. Reports per size accepted/s,
//     delivered/s, MiB/s, mtad's VmHWM and its ratio to the message size.
//     The sink streams every body, reading only the header section, and
//     checks the body's size. Promise: every message delivered, at its
//     size. Refuses -size and -data-dir.
//
// Profiles: -cpuprofile FILE and -memprofile FILE start mtad with --pprof
// on a free loopback port and fetch /debug/pprof/profile?seconds=N
// (-profile-seconds, 30) and /debug/pprof/heap. The heap is taken at the
// peak of the queue (backlog: just before the release; recovery: after the
// restart's probe; otherwise when the injection ends), the CPU profile
// during delivery (backlog and recovery: from the first delivery after the
// release; otherwise from the start of the injection, as mtad delivers
// while it accepts). failures profiles its first failing pass, large its
// last size. The report says where they went and how to read them (go tool
// pprof -top FILE).
//
// # The throughput run
//
// Usage, from the module root:
//
//	go run ./bench [flags]
//
// By default it builds ./cmd/mtad into a temporary directory and then:
//
//  1. starts a sink (an SMTP server on 127.0.0.1) that counts messages and
//     recipients, answers the -temp-fail share of recipients 451 4.7.1 once
//     (then 250) and the -perm-fail share 550 5.1.1, and records latency
//     and duplicates from the X-Bench-* header fields of each message;
//  2. measures the baseline: the same -n messages of -size bytes over -c
//     sessions straight into a second sink, with no mtad and no failures
//     (skip it with -skip-direct);
//  3. starts `mtad serve` on a fresh data directory, relaying to the sink;
//  4. injects -n messages of exactly -size bytes, each to -rcpts recipients
//     spread over -domains domains, over -c sessions that each reuse their
//     connection, showing progress on stderr;
//  5. waits until every expected delivery (accepted recipients minus those
//     the sink refuses for good) has arrived, or -timeout;
//  6. prints the report to stdout, stops mtad with SIGTERM (SIGKILL after
//     30 s) and removes what it created.
//
// With -pairs N (default 1), steps 2 to 5 run N times each, in ABBA order
// (direct, mtad, mtad, direct, direct, mtad, ...), each mtad phase with a
// fresh mtad, data directory and sink, so that the drift of a shared
// machine weighs on both alike. The ratio is then pooled: each kind's
// deliveries over its phases' total seconds; each pair's own ratio and
// mtad's CPU per message in each phase are listed, and the detailed report
// is that of the first mtad phase (the one profiled).
//
// It exits 1 when a message was not accepted or an expected delivery did
// not arrive, and 2 on bad flags. Examples:
//
//	go run ./bench -n 20000 -c 20                    # build and drive mtad
//	go run ./bench -n 50000 -c 20 -pairs 3           # three pairs, pooled
//	go run ./bench -direct-only -n 20000 -c 20       # injector -> sink only
//	go run ./bench -mtad /tmp/mtad -config bench.toml -temp-fail 0.05
//	go run ./bench -target 127.0.0.1:2525 -sink-listen 127.0.0.1:2526
//
// With -temp-fail, mtad must retry within -timeout: give it a -config with
// a short retry schedule. With -target, the mtad already running there must
// relay to -sink-listen and its queue should be empty.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// config is the harness's command line, validated once by check.
type config struct {
	n, size, conc, rcpts, domains int
	tempFail, permFail            float64
	target, sinkListen            string
	mtadPath, mtadConfig, dataDir string
	timeout                       time.Duration
	skipDirect, directOnly, json  bool

	scenario               string
	largeSizes             sizeList
	cpuProfile, memProfile string
	profileSeconds         int
	pairs                  int             // of direct and mtad phases (throughput), of clean and failing passes (failures)
	set                    map[string]bool // flags given on the command line
}

// newFlagSet declares the flags into cfg, with their defaults.
func newFlagSet(cfg *config) *flag.FlagSet {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.IntVar(&cfg.n, "n", 20000, "messages to inject")
	fs.IntVar(&cfg.size, "size", 5120, fmt.Sprintf("size of each message in bytes, CRLF line ends (at least %d)", minSize))
	fs.IntVar(&cfg.conc, "c", 20, "concurrent SMTP sessions")
	fs.IntVar(&cfg.rcpts, "rcpts", 1, "recipients per message")
	fs.IntVar(&cfg.domains, "domains", 1, "distinct recipient domains")
	fs.Float64Var(&cfg.tempFail, "temp-fail", 0, "share of recipients the sink answers 451 4.7.1 once")
	fs.Float64Var(&cfg.permFail, "perm-fail", 0, "share of recipients the sink answers 550 5.1.1")
	fs.StringVar(&cfg.target, "target", "", "host:port of a running mtad (loopback) instead of starting one")
	fs.StringVar(&cfg.sinkListen, "sink-listen", "127.0.0.1:0", "where the sink listens; with -target, where that mtad relays")
	fs.StringVar(&cfg.mtadPath, "mtad", "", "prebuilt mtad binary (default: build ./cmd/mtad)")
	fs.StringVar(&cfg.mtadConfig, "config", "", "config file passed to mtad")
	fs.StringVar(&cfg.dataDir, "data-dir", "", "mtad data directory, empty or new (default: a temp dir, removed after)")
	fs.DurationVar(&cfg.timeout, "timeout", 10*time.Minute, "bound on the whole run")
	fs.BoolVar(&cfg.skipDirect, "skip-direct", false, "skip the direct injector->sink baseline")
	fs.BoolVar(&cfg.directOnly, "direct-only", false, "run only the direct injector->sink baseline, no mtad")
	fs.BoolVar(&cfg.json, "json", false, "also print the report as JSON")
	fs.StringVar(&cfg.scenario, "scenario", scenarioThroughput, "what to measure: "+strings.Join(scenarioNames, ", "))
	cfg.largeSizes = sizeList{10 << 20, 50 << 20}
	fs.Var(&cfg.largeSizes, "large-sizes", "message sizes in bytes of -scenario large, comma-separated")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write mtad's CPU profile of its delivery phase to this file")
	fs.StringVar(&cfg.memProfile, "memprofile", "", "write mtad's heap profile at its peak queue to this file")
	fs.IntVar(&cfg.profileSeconds, "profile-seconds", 30, "length of the CPU profile")
	fs.IntVar(&cfg.pairs, "pairs", 1, "pairs of phases run in ABBA order, rates pooled: direct and mtad phases (throughput), clean and failing passes (-scenario failures, default 2)")
	return fs
}

// finish completes the flags parsed by fs: it notes which were given,
// applies the scenario's defaults to the others and validates the result.
func (c *config) finish(fs *flag.FlagSet) error {
	c.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { c.set[f.Name] = true })
	c.applyScenarioDefaults(fs)
	return c.check()
}

// check validates the flags together; its errors name the flag.
func (c *config) check() error {
	switch {
	case c.n < 1 || c.conc < 1 || c.rcpts < 1 || c.domains < 1:
		return errors.New("-n, -c, -rcpts and -domains must be at least 1")
	case c.size < minSize:
		return fmt.Errorf("-size must be at least %d", minSize)
	case c.timeout <= 0:
		return errors.New("-timeout must be positive")
	case c.tempFail < 0 || c.permFail < 0 || c.tempFail+c.permFail > 1:
		return errors.New("-temp-fail and -perm-fail must be >= 0 and sum to at most 1")
	}
	if err := requireLoopback(c.sinkListen); err != nil {
		return fmt.Errorf("-sink-listen: %w", err)
	}
	if err := c.checkProfiles(); err != nil {
		return err
	}
	if c.scenario != scenarioThroughput {
		return c.checkScenario()
	}
	if c.set["large-sizes"] {
		return errors.New("-large-sizes applies to -scenario large only")
	}
	if err := c.checkPairs(); err != nil {
		return err
	}
	if c.directOnly {
		return c.checkDirectOnly()
	}
	if c.target != "" {
		return c.checkTarget()
	}
	return nil
}

// checkPairs checks -pairs of the throughput scenario: more than one pair
// needs both phases, each mtad phase with a fresh mtad and journal.
func (c *config) checkPairs() error {
	switch {
	case c.pairs < 1:
		return fmt.Errorf("-pairs %d: at least 1 pair of phases", c.pairs)
	case c.pairs > 1 && (c.directOnly || c.skipDirect || c.target != "" || c.dataDir != ""):
		return fmt.Errorf("-pairs %d alternates direct and mtad phases, each mtad phase with a fresh mtad and journal: drop -direct-only, -skip-direct, -target and -data-dir", c.pairs)
	}
	return nil
}

func (c *config) checkDirectOnly() error {
	switch {
	case c.skipDirect:
		return errors.New("-direct-only and -skip-direct exclude each other")
	case c.target != "" || c.mtadPath != "" || c.mtadConfig != "" || c.dataDir != "":
		return errors.New("-direct-only runs no mtad: drop -target, -mtad, -config and -data-dir")
	case c.tempFail != 0 || c.permFail != 0:
		return errors.New("-direct-only measures the clean path: drop -temp-fail and -perm-fail")
	}
	return nil
}

func (c *config) checkTarget() error {
	if err := requireLoopback(c.target); err != nil {
		return fmt.Errorf("-target: %w", err)
	}
	if strings.HasSuffix(c.sinkListen, ":0") {
		return errors.New("-target needs -sink-listen with the fixed port that mtad relays to")
	}
	if c.mtadPath != "" || c.mtadConfig != "" || c.dataDir != "" {
		return errors.New("-mtad, -config and -data-dir apply only when the harness starts mtad; drop them with -target")
	}
	return nil
}

// flagsText lists every flag with its effective value, in order.
func flagsText(fs *flag.FlagSet) string {
	var parts []string
	fs.VisitAll(func(f *flag.Flag) { parts = append(parts, fmt.Sprintf("-%s=%s", f.Name, f.Value)) })
	return strings.Join(parts, " ")
}

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

// runMain is main with its outputs as arguments; it returns the exit code.
func runMain(args []string, stdout, stderr io.Writer) int {
	var cfg config
	fs := newFlagSet(&cfg)
	fs.SetOutput(stderr)
	switch err := fs.Parse(args); {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		return 2
	}
	if err := cfg.finish(fs); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	rep := newReport(fs, args, cfg)
	env := runEnv{progress: stderr, tty: stderr == os.Stderr && isTerminal(os.Stderr), log: stderr}
	if err := run(ctx, cfg, env, rep); err != nil {
		rep.Problems = append(rep.Problems, err.Error())
	}
	rep.conclude()
	return printReport(rep, cfg, stdout, stderr)
}

func newReport(fs *flag.FlagSet, args []string, cfg config) *report {
	return &report{
		Started: time.Now(),
		Command: "bench " + quoteArgs(args),
		Flags:   flagsText(fs),
		Host:    fmt.Sprintf("%s %s/%s, %d CPUs, GOMAXPROCS %d", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0)),
		Mode:    modeText(cfg),
	}
}

func modeText(cfg config) string {
	switch {
	case cfg.directOnly:
		return "direct only: injector -> sink, no mtad"
	case cfg.target != "":
		return "running mtad at " + cfg.target + ", relaying to sink " + cfg.sinkListen
	case cfg.mtadPath != "":
		return "mtad " + cfg.mtadPath + " started by the harness"
	}
	return "mtad built from ./cmd/mtad and started by the harness"
}

func printReport(rep *report, cfg config, stdout, stderr io.Writer) int {
	if err := rep.writeText(stdout); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
	}
	if cfg.json {
		if err := rep.writeJSON(stdout); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
		}
	}
	if !rep.OK {
		return 1
	}
	return 0
}
