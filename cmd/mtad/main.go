// Command mtad is the mtad daemon and its command line.
//
//	mtad serve [--config FILE] [--data-dir DIR] [--listen ADDR] [--relay HOST:PORT]
//	mtad config default        print the embedded default configuration
//	mtad config check FILE     validate a configuration file
//	mtad queue list|show|summary|retry|cancel|suspend|resume
//	                           read and steer the queue through the management API
//
// It only wires: flags, configuration, logger, the node (package server) and
// signals.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/mtad/mtad/config"
	"github.com/mtad/mtad/server"
)

const usage = `usage:
  mtad serve [--config FILE] [--data-dir DIR] [--listen ADDR] [--relay HOST:PORT]
  mtad config default
  mtad config check FILE
  mtad queue list|show|summary|retry|cancel|suspend|resume [--api URL] [--token TOKEN] [--json]   (mtad queue for details)
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stderr)
	case "config":
		return configCmd(args[1:], stdout, stderr)
	case "queue":
		return queueCmd(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "mtad: unknown command %q\n%s", args[0], usage)
	return 2
}

func configCmd(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 1 && args[0] == "default":
		_, _ = stdout.Write(config.DefaultText())
		return 0
	case len(args) == 2 && args[0] == "check":
		if _, err := config.Load(args[1]); err != nil {
			fmt.Fprintf(stderr, "mtad: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: ok\n", args[1])
		return 0
	}
	fmt.Fprint(stderr, usage)
	return 2
}

func serve(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "", "configuration file (default: the embedded default)")
	dataDir := fs.String("data-dir", "", "data directory (overrides server.data-dir)")
	listen := fs.String("listen", "", "submission address host:port (replaces the configured listeners)")
	relay := fs.String("relay", "", "send every recipient through this smart host, host:port")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this loopback address, for profiling")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := loadConfig(*file, *dataDir, *listen, *relay)
	if err != nil {
		fmt.Fprintf(stderr, "mtad: %v\n", err)
		return 1
	}
	log := newLogger(stderr, cfg.Log.Level)
	tuneGC(cfg, log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if *pprofAddr != "" {
		if err := servePprof(*pprofAddr, log); err != nil {
			fmt.Fprintf(stderr, "mtad: --pprof: %v\n", err)
			return 1
		}
	}
	srv, err := server.Start(cfg, log)
	if err != nil {
		log.Error("mtad did not start", "err", err)
		return 1
	}
	log.Info("mtad started", "config", cfg.File, "data_dir", cfg.Server.DataDir)
	srv.SetReloader(func() (*config.Config, error) { return loadConfig(*file, *dataDir, *listen, *relay) })
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for reloading := true; reloading; {
		select {
		case <-hup:
			log.Info("SIGHUP: reloading the configuration")
			_ = srv.Reload() // a refusal is logged, and the old configuration stays
		case <-ctx.Done():
			reloading = false
		}
	}
	stop() // a second signal kills the process at once
	log.Info("stopping", "timeout", cfg.Server.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("stopped with work cut short; it is retried at the next start", "err", err)
		return 0
	}
	log.Info("stopped")
	return 0
}

func loadConfig(file, dataDir, listen, relay string) (*config.Config, error) {
	var cfg *config.Config
	var err error
	if file == "" {
		cfg, err = config.Default()
	} else {
		cfg, err = config.Load(file)
	}
	if err != nil {
		return nil, err
	}
	if dataDir != "" {
		cfg.Server.DataDir = dataDir
	}
	if listen != "" {
		err = errors.Join(err, cfg.SetListen(listen))
	}
	if relay != "" {
		err = errors.Join(err, cfg.SetRelay(relay))
	}
	return cfg, err
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// tuneGC applies server.gc-percent and server.memory-limit, unless the
// environment sets GOGC or GOMEMLIMIT.
func tuneGC(cfg *config.Config, log *slog.Logger) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(cfg.Server.GCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" && cfg.Server.MemoryLimit > 0 {
		debug.SetMemoryLimit(cfg.Server.MemoryLimit)
	}
	log.Debug("garbage collector", "gogc_env", os.Getenv("GOGC"), "gomemlimit_env", os.Getenv("GOMEMLIMIT"),
		"gc_percent", cfg.Server.GCPercent, "memory_limit", debug.SetMemoryLimit(-1)) // -1 only reads it
}
