//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly || illumos)

package persistence

// dirLock does nothing where flock is missing: Pebble's own LOCK file
// still keeps a second process out, with a less helpful message.
type dirLock struct{}

func lockDir(string) (*dirLock, error) { return &dirLock{}, nil }

func (*dirLock) release() error { return nil }
