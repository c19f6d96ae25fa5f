// Command bench is mtad's load-test harness. It injects messages into an
// mtad over SMTP, receives what mtad relays at a sink of its own, and reports
// how fast mail went through, how long each message waited between mtad's
// 250 and its delivery, and mtad's peak memory. It talks only to 127.0.0.1
// and [::1], and every loop in it is bounded in count and in time.
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
// It exits 1 when a message was not accepted or an expected delivery did
// not arrive, and 2 on bad flags. Examples:
//
//	go run ./bench -n 20000 -c 20                    # build and drive mtad
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
	return fs
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
	if c.directOnly {
		return c.checkDirectOnly()
	}
	if c.target != "" {
		return c.checkTarget()
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
	if err := cfg.check(); err != nil {
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
