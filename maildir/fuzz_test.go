package maildir

import (
	"path/filepath"
	"strings"
	"testing"
)

// FuzzMailboxDir checks that an accepted address always names exactly
// <root>/<domain>/<local>: two plain elements below the root, never a path
// that escapes it.
func FuzzMailboxDir(f *testing.F) {
	for _, seed := range []string{"alice@example.com", "../x@example.com", "a/b@c", ".hidden@x",
		"x\x00y@z", "alice@..", `"a@b"@example.com`, "..@..", "a@b@c", "İ@İ"} {
		f.Add(seed)
	}
	root := "/srv/mail"
	s := &Store{Root: root}
	f.Fuzz(func(t *testing.T, addr string) {
		p, ok := s.mailboxDir(addr)
		if !ok {
			return
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || filepath.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") {
			t.Fatalf("%q: %q escapes the root (rel %q, %v)", addr, p, rel, err)
		}
		parts := strings.Split(rel, "/")
		if len(parts) != 2 || filepath.Join(root, parts[0], parts[1]) != p {
			t.Fatalf("%q: %q is not two elements below the root", addr, p)
		}
		for _, e := range parts {
			if e == "" || e[0] == '.' || strings.ContainsRune(e, 0) || len(e) > maxName {
				t.Fatalf("%q: unsafe element %q", addr, e)
			}
		}
	})
}
