package maildir

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{syscall.ENOSPC, "452 4.2.2"},
		{syscall.EDQUOT, "452 4.2.2"},
		{&fs.PathError{Op: "write", Path: "/m/tmp/x", Err: syscall.ENOSPC}, "452 4.2.2"},
		{fmt.Errorf("close: %w", &fs.PathError{Op: "close", Path: "/m", Err: syscall.EDQUOT}), "452 4.2.2"},
		{&fs.PathError{Op: "link", Path: "/m/new/x", Err: syscall.EACCES}, "451 4.3.0"},
		{syscall.EIO, "451 4.3.0"},
		{errors.New("unknown"), "451 4.3.0"},
	}
	for _, tt := range tests {
		r := classify(tt.err)
		if short(r) != tt.want || r.Class != ClassLocal || !r.Temporary() || strings.Contains(r.Text, "/") {
			t.Errorf("classify(%v) = %+v, want %s, temporary, class %q, no path", tt.err, r, tt.want, ClassLocal)
		}
	}
}
