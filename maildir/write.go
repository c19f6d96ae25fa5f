package maildir

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// maxTries bounds the attempts at a fresh name when one is taken.
const maxTries = 3

var subdirs = [...]string{"tmp", "new", "cur"}

// checkMailbox returns errNoMailbox when mbox is not an existing directory,
// another error when that cannot be told.
func checkMailbox(mbox string) error {
	fi, err := os.Stat(mbox)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return errNoMailbox
	case err != nil:
		return err
	case !fi.IsDir():
		return errNoMailbox
	}
	return nil
}

// ensureSubdirs creates whichever of tmp/, new/ and cur/ mbox lacks, and
// then fsyncs mbox so that they survive a crash.
func ensureSubdirs(mbox string) error {
	created := false
	for _, sub := range subdirs {
		p := filepath.Join(mbox, sub)
		_, err := os.Stat(p)
		if err == nil {
			continue
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		created = true // or a concurrent Deliver did, and may not have synced yet
	}
	if created {
		return syncDir(mbox)
	}
	return nil
}

// writeMessage stores head and the bodySize bytes of body as a new message
// of mbox: a file in tmp/, written and fsynced, hard-linked into new/, new/
// fsynced, the tmp/ name removed. err says the message is not stored (and
// whatever it left behind was removed where possible); cleanup reports what
// could not be removed. file, when not nil, is the file open for reading,
// complete and synced, even if err is not nil; the caller closes it.
func writeMessage(mbox, host string, head []byte, body io.Reader, bodySize int64) (file *os.File, cleanup, err error) {
	size := int64(len(head)) + bodySize
	tmpDir, newDir := filepath.Join(mbox, "tmp"), filepath.Join(mbox, "new")
	f, name, err := createUnique(tmpDir, host, size)
	if err != nil {
		return nil, nil, err
	}
	tmp := filepath.Join(tmpDir, name)
	if err := writeSync(f, head, body); err != nil {
		return nil, errors.Join(f.Close(), remove(tmp)), err
	}
	dst, err := linkUnique(tmp, newDir, name, host, size)
	if err != nil {
		return f, remove(tmp), err
	}
	if err := syncDir(newDir); err != nil {
		return f, errors.Join(remove(dst), remove(tmp)), err
	}
	return f, remove(tmp), nil
}

// createUnique creates a new file in dir under a fresh unique name, open
// for reading too: later copies of the message are read back from it.
func createUnique(dir, host string, size int64) (*os.File, string, error) {
	for try := 1; ; try++ {
		name := uniqueName(time.Now(), host, size)
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil || !errors.Is(err, fs.ErrExist) || try == maxTries {
			return f, name, err
		}
	}
}

// linkUnique hard-links tmp into dir as name, or under a fresh name if name
// is taken there, and returns the new path.
func linkUnique(tmp, dir, name, host string, size int64) (string, error) {
	for try := 1; ; try++ {
		dst := filepath.Join(dir, name)
		err := os.Link(tmp, dst)
		if err == nil {
			return dst, nil
		}
		if !errors.Is(err, fs.ErrExist) || try == maxTries {
			return "", err
		}
		name = uniqueName(time.Now(), host, size)
	}
}

// writeSync writes head and body to f and fsyncs it.
func writeSync(f *os.File, head []byte, body io.Reader) error {
	_, err := f.Write(head)
	if err == nil {
		_, err = io.Copy(f, body)
	}
	if err == nil {
		err = f.Sync()
	}
	return err
}

// syncDir fsyncs a directory, making the names created in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// remove removes path; that it is already gone is not an error.
func remove(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
