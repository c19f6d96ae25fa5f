package maildir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/mtad/mtad/messages"
)

const testHost = "mx/1:test"

// fixture builds <base>/root with these mailboxes and returns base and a
// Store on root. alice has her subdirectories, bob has none; "x",
// "example.com/a/b" and "example.com/.hidden" exist so that an address
// escaping its element would land somewhere real; "example.com/file" is a
// regular file.
func fixture(t *testing.T) (string, *Store) {
	t.Helper()
	base := t.TempDir()
	root := filepath.Join(base, "root")
	for _, mb := range []string{"example.com/alice", "example.com/a/b", "x", "example.com/.hidden"} {
		for _, sub := range subdirs {
			mkdir(t, filepath.Join(root, mb, sub))
		}
	}
	mkdir(t, filepath.Join(root, "example.com/bob"))
	if err := os.WriteFile(filepath.Join(root, "example.com/file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return base, &Store{Root: root, Hostname: testHost}
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
}

// names lists dir, sorted; a missing dir is empty.
func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// regularFiles lists every regular file under dir, relative to it.
func regularFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// readNew returns the contents of the messages in mailbox mb's new/.
func readNew(t *testing.T, s *Store, mb string) []string {
	t.Helper()
	dir := filepath.Join(s.Root, mb, "new")
	var out []string
	for _, n := range names(t, dir) {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

func addrs(list ...string) []Rcpt {
	out := make([]Rcpt, len(list))
	for i, a := range list {
		out[i] = Rcpt{Addr: a}
	}
	return out
}

// short renders a reply as "code enhanced", the part tests compare.
func short(r messages.Reply) string { return fmt.Sprintf("%d %s", r.Code, r.Enhanced) }
