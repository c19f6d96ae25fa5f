package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// Bounds on profile fetches beyond the profile's own length.
const (
	profileSlack = 30 * time.Second
	heapBound    = time.Minute
)

// profiler fetches mtad's CPU and heap profiles from its --pprof listener
// into the -cpuprofile and -memprofile files. Its methods are safe on a
// nil profiler (no profile asked for) and are called by the scenario's
// goroutine only; the CPU fetch runs on a goroutine of its own, owned by
// the profiler and bounded by profile-seconds plus profileSlack.
type profiler struct {
	addr             string // pprof listener, loopback host:port
	cpuPath, memPath string
	seconds          int

	cpuDone    chan struct{} // closed when the CPU fetch ends
	cpuErr     error         // read only after cpuDone is closed
	cpuStarted bool
	heapDone   bool
	notes      []string // what was written where, or why not
}

// newProfiler returns nil unless cfg asks for a profile. The caller starts
// mtad with --pprof on the returned listener address.
func newProfiler(cfg config) (*profiler, error) {
	if cfg.cpuProfile == "" && cfg.memProfile == "" {
		return nil, nil
	}
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	return &profiler{addr: addr, cpuPath: cfg.cpuProfile, memPath: cfg.memProfile, seconds: cfg.profileSeconds}, nil
}

// pprofAddr is the --pprof address to start mtad with, "" for none.
func (p *profiler) pprofAddr() string {
	if p == nil {
		return ""
	}
	return p.addr
}

// startCPU begins the CPU profile of the next profile-seconds, once.
func (p *profiler) startCPU(ctx context.Context) {
	if p == nil || p.cpuPath == "" || p.cpuStarted {
		return
	}
	p.cpuStarted = true
	p.cpuDone = make(chan struct{})
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.addr, p.seconds)
	bound := time.Duration(p.seconds)*time.Second + profileSlack
	go func() {
		defer close(p.cpuDone)
		p.cpuErr = fetchProfile(ctx, url, p.cpuPath, bound)
	}()
}

// writeHeap fetches the heap profile now, once.
func (p *profiler) writeHeap(ctx context.Context) {
	if p == nil || p.memPath == "" || p.heapDone {
		return
	}
	p.heapDone = true
	url := fmt.Sprintf("http://%s/debug/pprof/heap", p.addr)
	p.note("heap", p.memPath, fetchProfile(ctx, url, p.memPath, heapBound))
}

// finish waits for the CPU profile, if one was started, and returns the
// notes for the report. Call it before stopping mtad.
func (p *profiler) finish() []string {
	if p == nil {
		return nil
	}
	switch {
	case p.cpuDone != nil:
		<-p.cpuDone // bounded by the fetch's own timeout
		p.note("cpu", p.cpuPath, p.cpuErr)
		p.cpuDone = nil
	case p.cpuPath != "" && !p.cpuStarted:
		p.notes = append(p.notes, "cpu: not taken (the run ended before its delivery phase)")
	}
	if p.memPath != "" && !p.heapDone {
		p.notes = append(p.notes, "heap: not taken (the run ended before its peak queue)")
	}
	return p.notes
}

func (p *profiler) note(kind, path string, err error) {
	if err != nil {
		p.notes = append(p.notes, fmt.Sprintf("%s: not written: %v", kind, err))
		return
	}
	abs, _ := filepath.Abs(path)
	p.notes = append(p.notes, fmt.Sprintf("%s: %s (read with: go tool pprof -top %s)", kind, abs, abs))
}

// fetchProfile GETs url (on loopback) into path within bound.
func fetchProfile(ctx context.Context, url, path string, bound time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, msg)
	}
	return writeFile(path, resp.Body)
}

// writeFile copies r into a new file at path; a partial file is removed.
func writeFile(path string, r io.Reader) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	err = errors.Join(err, f.Close())
	if err != nil {
		os.Remove(path)
	}
	return err
}
