package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// configCheckBound bounds `mtad config check`.
const configCheckBound = 30 * time.Second

// mtadConf is what a scenario needs from mtad's configuration. Everything
// else keeps mtad's defaults, so the scenarios measure mtad as shipped.
type mtadConf struct {
	management     string   // [server.management] bind, loopback host:port
	retry          []string // [queue.schedule.default] retry; nil keeps the default schedule
	expire         string   // [queue.schedule.default] expire, with retry
	maxMessageSize int64    // [session] max-message-size in bytes; 0 keeps the default
}

// The TOML shape of mtadConf, in mtad's key names (config/default.toml).
type (
	tomlConf struct {
		Server  tomlServer   `toml:"server"`
		Session *tomlSession `toml:"session,omitempty"`
		Queue   *tomlQueue   `toml:"queue,omitempty"`
	}
	tomlServer struct {
		Management tomlManagement `toml:"management"`
	}
	tomlManagement struct {
		Bind string `toml:"bind"`
	}
	tomlSession struct {
		MaxMessageSize string `toml:"max-message-size"`
	}
	tomlQueue struct {
		Schedule map[string]tomlSchedule `toml:"schedule"`
	}
	tomlSchedule struct {
		Queue  string   `toml:"queue"`
		Retry  []string `toml:"retry"`
		Notify []string `toml:"notify"`
		Expire string   `toml:"expire"`
	}
)

// render writes the configuration as TOML, headed by a comment naming the
// scenario.
func (c mtadConf) render(scenario string) ([]byte, error) {
	t := tomlConf{Server: tomlServer{Management: tomlManagement{Bind: c.management}}}
	if c.maxMessageSize > 0 {
		t.Session = &tomlSession{MaxMessageSize: sizeKB(c.maxMessageSize)}
	}
	if c.retry != nil {
		t.Queue = &tomlQueue{Schedule: map[string]tomlSchedule{"default": {
			Queue: "default", Retry: c.retry, Notify: []string{}, Expire: c.expire,
		}}}
	}
	body, err := toml.Marshal(t)
	if err != nil {
		return nil, err
	}
	head := fmt.Sprintf("# mtad configuration written by the bench harness for -scenario %s.\n"+
		"# Keys not set here keep mtad's defaults (mtad config default).\n\n", scenario)
	return append([]byte(head), body...), nil
}

// sizeKB renders n bytes in whole KB (KiB), rounded up, as mtad reads them.
func sizeKB(n int64) string { return fmt.Sprintf("%dKB", (n+1023)/1024) }

// writeMtadConf renders c into dir/mtad-<scenario>.toml and has bin check
// it; it returns the path and the text.
func writeMtadConf(ctx context.Context, bin, dir, scenario string, c mtadConf) (string, string, error) {
	text, err := c.render(scenario)
	if err != nil {
		return "", "", fmt.Errorf("mtad config: %w", err)
	}
	path := filepath.Join(dir, "mtad-"+scenario+".toml")
	if err := os.WriteFile(path, text, 0o600); err != nil {
		return "", "", err
	}
	if err := checkMtadConf(ctx, bin, path); err != nil {
		return "", "", err
	}
	return path, string(text), nil
}

// checkMtadConf runs `bin config check path`; its error quotes mtad.
func checkMtadConf(ctx context.Context, bin, path string) error {
	ctx, cancel := context.WithTimeout(ctx, configCheckBound)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "config", "check", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mtad config check %s failed (%v): %s", path, err, strings.TrimSpace(string(bytes.ToValidUTF8(out, nil))))
	}
	return nil
}
