package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestProfilerFetches(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.RequestURI())
		mu.Unlock()
		if r.URL.Path == "/debug/pprof/heap" {
			w.Write([]byte("heap"))
			return
		}
		w.Write([]byte("cpu"))
	}))
	defer srv.Close()
	dir := t.TempDir()
	p := &profiler{addr: strings.TrimPrefix(srv.URL, "http://"), seconds: 7,
		cpuPath: filepath.Join(dir, "cpu.pprof"), memPath: filepath.Join(dir, "mem.pprof")}
	ctx := context.Background()
	p.startCPU(ctx)
	p.startCPU(ctx) // once only
	p.writeHeap(ctx)
	p.writeHeap(ctx)
	notes := p.finish()
	if len(notes) != 2 || !strings.Contains(notes[0], "go tool pprof -top "+p.memPath) || !strings.Contains(notes[1], "cpu: "+p.cpuPath) {
		t.Errorf("notes %q", notes)
	}
	for path, want := range map[string]string{p.cpuPath: "cpu", p.memPath: "heap"} {
		if b, err := os.ReadFile(path); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v", path, b, err)
		}
	}
	if len(paths) != 2 || !strings.Contains(strings.Join(paths, " "), "/debug/pprof/profile?seconds=7") {
		t.Errorf("requests %q", paths)
	}
}

func TestProfilerReportsWhatItCouldNotTake(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	dir := t.TempDir()
	p := &profiler{addr: strings.TrimPrefix(srv.URL, "http://"), seconds: 1,
		cpuPath: filepath.Join(dir, "cpu"), memPath: filepath.Join(dir, "mem")}
	p.writeHeap(context.Background())
	notes := p.finish()
	if len(notes) != 2 || !strings.Contains(notes[0], "404") || !strings.Contains(notes[1], "cpu: not taken") {
		t.Errorf("notes %q", notes)
	}
	if _, err := os.Stat(p.memPath); !os.IsNotExist(err) {
		t.Errorf("a failed fetch left %s", p.memPath)
	}
	var none *profiler
	none.startCPU(context.Background())
	none.writeHeap(context.Background())
	if none.finish() != nil || none.pprofAddr() != "" {
		t.Error("a nil profiler did something")
	}
}

func TestThroughputWithProfilesOfFakeMtad(t *testing.T) {
	dir := t.TempDir()
	cpu, mem := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "mem.pprof")
	cfg := fakeMtadConfig(t, "relay", "-n", "50", "-c", "2", "-timeout", "15s",
		"-cpuprofile", cpu, "-memprofile", mem, "-profile-seconds", "1")
	rep, err := runTest(t, cfg)
	if err != nil || !rep.OK {
		t.Fatalf("%v, problems %v", err, rep.Problems)
	}
	if len(rep.Profiles) != 2 {
		t.Errorf("profiles %q", rep.Profiles)
	}
	for _, f := range []string{cpu, mem} {
		if fi, err := os.Stat(f); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}
