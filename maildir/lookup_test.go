package maildir

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLookup(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "x.test", "alice"), 0o750); err != nil {
		t.Fatal(err)
	}
	s := &Store{Root: root}
	if r := s.Lookup("alice@X.test"); r != nil {
		t.Errorf("alice: %+v, want nil", r)
	}
	if r := s.Lookup("bob@x.test"); r == nil || r.Code != 550 || r.Enhanced != "5.1.1" {
		t.Errorf("bob: %+v, want 550 5.1.1", r)
	}
	if r := s.Lookup("../alice@x.test"); r == nil || r.Enhanced != "5.1.3" {
		t.Errorf("escape: %+v, want 5.1.3", r)
	}
	if _, err := os.Stat(filepath.Join(root, "x.test", "alice", "new")); err == nil {
		t.Errorf("Lookup created the mailbox subdirectories")
	}
}
