//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly || illumos

package persistence

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// dirLock is an exclusive flock on the lock file of a data directory. The
// kernel drops it when the file is closed or the process dies, so a
// SIGKILLed mtad never leaves a stale lock behind.
type dirLock struct{ f *os.File }

// lockDir takes the lock of dir, or returns a lockedError naming the pid
// of the holder.
func lockDir(dir string) (*dirLock, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("persistence: lock data directory: %w", err)
	}
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		pid := readPID(f)
		f.Close()
		return nil, &lockedError{dir: dir, pid: pid}
	}
	if err == nil {
		err = writePID(f)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("persistence: lock data directory %s: %w", dir, err)
	}
	return &dirLock{f: f}, nil
}

// writePID records the holder; it is informational, so it is not synced.
func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return err
}

// readPID returns the pid written by the holder, or 0 if there is none yet.
func readPID(f *os.File) int {
	b, err := io.ReadAll(io.LimitReader(f, 32))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return pid
}

// release drops the lock by closing the file.
func (l *dirLock) release() error { return l.f.Close() }
