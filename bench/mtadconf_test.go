package main

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// parseTOML decodes a generated configuration generically.
func parseTOML(t *testing.T, text []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := toml.Unmarshal(text, &m); err != nil {
		t.Fatalf("generated TOML does not parse: %v\n%s", err, text)
	}
	return m
}

// lookup follows a dotted key through nested tables.
func lookup(m map[string]any, key string) (any, bool) {
	var v any = m
	for _, k := range strings.Split(key, ".") {
		t, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = t[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

func TestMtadConfRender(t *testing.T) {
	tests := []struct {
		name   string
		conf   mtadConf
		want   map[string]any // dotted key -> value
		absent []string
	}{
		{"backlog", queueingConf(), map[string]any{
			"queue.schedule.default.queue":  "default",
			"queue.schedule.default.retry":  []any{"30s"},
			"queue.schedule.default.notify": []any{},
			"queue.schedule.default.expire": "30d",
		}, []string{"session"}},
		{"failures", mtadConf{retry: []string{failuresRetry}, expire: longExpiry}, map[string]any{
			"queue.schedule.default.retry": []any{"2s"},
		}, []string{"session"}},
		{"large", mtadConf{maxMessageSize: 50<<20 + largeSizeHeadroom}, map[string]any{
			"session.max-message-size": "52224KB",
		}, []string{"queue"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.conf.management = "127.0.0.1:18025"
			text, err := tt.conf.render(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			m := parseTOML(t, text)
			tt.want["server.management.bind"] = "127.0.0.1:18025"
			for k, want := range tt.want {
				if got, ok := lookup(m, k); !ok || !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %#v (present %v), want %#v\n%s", k, got, ok, want, text)
				}
			}
			for _, k := range tt.absent {
				if _, ok := lookup(m, k); ok {
					t.Errorf("%s is set; mtad's default should stay\n%s", k, text)
				}
			}
			if !strings.HasPrefix(string(text), "# mtad configuration written by the bench harness for -scenario "+tt.name) {
				t.Errorf("no header comment:\n%s", text)
			}
		})
	}
}

func TestSizeKB(t *testing.T) {
	for n, want := range map[int64]string{1: "1KB", 1024: "1KB", 1025: "2KB", 11 << 20: "11264KB"} {
		if got := sizeKB(n); got != want {
			t.Errorf("sizeKB(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestWriteMtadConfQuotesFailedCheck(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "mtad")
	script := "#!/bin/sh\necho \"mtad: config $3: line 1: unknown key queue.bogus\" >&2\nexit 1\n"
	if err := os.WriteFile(bin, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	_, _, err := writeMtadConf(context.Background(), bin, dir, "backlog", queueingConf())
	if err == nil || !strings.Contains(err.Error(), "unknown key queue.bogus") || !strings.Contains(err.Error(), "mtad-backlog.toml") {
		t.Errorf("error %v, want one quoting mtad's complaint about the file", err)
	}
	ok := filepath.Join(dir, "ok")
	if err := os.WriteFile(ok, []byte("#!/bin/sh\nexit 0\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	path, text, err := writeMtadConf(context.Background(), ok, dir, "failures", mtadConf{retry: []string{"2s"}, expire: "30d"})
	if err != nil || !strings.Contains(text, "retry = ['2s']") {
		t.Fatalf("%v\n%s", err, text)
	}
	if b, _ := os.ReadFile(path); string(b) != text {
		t.Errorf("file %s holds %q, want the text", path, b)
	}
}
