package persistence

import (
	"errors"
	"fmt"
	"os"
)

// lockName is the file in the data directory that mtad holds an exclusive
// flock on while the journal is open; it also holds the holder's pid, so a
// second mtad can say who is in the way. Pebble's own LOCK file is taken
// after it.
const lockName = "mtad.lock"

// ErrLocked is returned, wrapped with the directory, by Open when another
// process (or another Open in this one) holds the data directory.
var ErrLocked = errors.New("persistence: data directory locked")

// lockedError says who holds the data directory.
type lockedError struct {
	dir string
	pid int // 0 when unknown
}

func (e *lockedError) Error() string {
	switch {
	case e.pid == 0:
		return fmt.Sprintf("data directory %s is in use by another mtad", e.dir)
	case e.pid == os.Getpid():
		return fmt.Sprintf("data directory %s is already open in this process (pid %d)", e.dir, e.pid)
	}
	return fmt.Sprintf("data directory %s is in use by another mtad (pid %d)", e.dir, e.pid)
}

func (e *lockedError) Is(target error) bool { return target == ErrLocked }
