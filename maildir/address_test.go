package maildir

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestMailboxDir(t *testing.T) {
	long := strings.Repeat("a", maxName)
	tests := []struct {
		addr string
		want string // relative to the root; "" for refused
	}{
		{"alice@example.com", "example.com/alice"},
		{"Alice@EXAMPLE.Com", "example.com/Alice"},
		{`"a@b"@example.com`, `example.com/"a@b"`},
		{"ünï@exämple.com", "exämple.com/ünï"},
		{"a.b@example.com", "example.com/a.b"},
		{long + "@example.com", "example.com/" + long},
		{long + "a@example.com", ""},
		{"../x@example.com", ""},
		{"..@example.com", ""},
		{".@example.com", ""},
		{"a/b@example.com", ""},
		{"/etc@example.com", ""},
		{".hidden@example.com", ""},
		{"x\x00y@example.com", ""},
		{"x\ny@example.com", ""},
		{"x\x7fy@example.com", ""},
		{"x\xffy@example.com", ""},
		{"alice@..", ""},
		{"alice@.", ""},
		{"alice@.example.com", ""},
		{"alice@a/b", ""},
		{"alice@", ""},
		{"@example.com", ""},
		{"alice", ""},
		{"", ""},
	}
	s := &Store{Root: "/srv/mail"}
	for _, tt := range tests {
		got, ok := s.mailboxDir(tt.addr)
		want := ""
		if tt.want != "" {
			want = filepath.Join(s.Root, tt.want)
		}
		if ok != (want != "") || got != want {
			t.Errorf("mailboxDir(%q) = %q, %v; want %q", tt.addr, got, ok, want)
		}
	}
}
