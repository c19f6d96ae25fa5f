package maildir

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mtad/mtad/messages"
)

const body = "Subject: hi\r\n\r\nhello\r\n"

func TestDeliver(t *testing.T) {
	bad := []string{"../x@example.com", "a/b@example.com", ".hidden@example.com", "x\x00y@example.com",
		"alice@..", "alice@a/b", "alice", "@example.com", "alice@", "a\r\nb@example.com"}
	badWant := slices.Repeat([]string{"550 5.1.3"}, len(bad))
	tests := []struct {
		name  string
		from  string
		rcpts []string
		want  []string
		got   map[string]string // mailbox -> the Delivered-To of its one new message
	}{
		{"two mailboxes", "sender@example.org", []string{"alice@example.com", "bob@Example.COM"},
			[]string{"250 2.0.0", "250 2.0.0"},
			map[string]string{"example.com/alice": "alice@example.com", "example.com/bob": "bob@Example.COM"}},
		{"null sender", "", []string{"alice@example.com"}, []string{"250 2.0.0"},
			map[string]string{"example.com/alice": "alice@example.com"}},
		{"unknown user", "s@example.org", []string{"carol@example.com"}, []string{"550 5.1.1"}, nil},
		{"unknown domain", "s@example.org", []string{"alice@nowhere.test"}, []string{"550 5.1.1"}, nil},
		{"mailbox is a file", "s@example.org", []string{"file@example.com"}, []string{"550 5.1.1"}, nil},
		{"bad local parts and domains", "s@example.org", bad, badWant, nil},
		{"same mailbox twice", "s@example.org", []string{"alice@example.com", "alice@EXAMPLE.com"},
			[]string{"250 2.0.0", "250 2.0.0"}, map[string]string{"example.com/alice": "alice@example.com"}},
		{"mixed, in order", "s@example.org", []string{"a/b@example.com", "bob@example.com", "nobody@example.com"},
			[]string{"550 5.1.3", "250 2.0.0", "550 5.1.1"}, map[string]string{"example.com/bob": "bob@example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, s := fixture(t)
			replies, err := s.Deliver(context.Background(), tt.from, addrs(tt.rcpts...), strings.NewReader(body), int64(len(body)))
			if err != nil {
				t.Errorf("Deliver error: %v", err)
			}
			checkReplies(t, base, replies, tt.want)
			checkMailboxes(t, s, tt.from, tt.got)
			if got := names(t, base); !slices.Equal(got, []string{"root"}) {
				t.Errorf("written next to the root: %v", got)
			}
		})
	}
}

func checkReplies(t *testing.T, base string, replies []messages.Reply, want []string) {
	t.Helper()
	if len(replies) != len(want) {
		t.Fatalf("got %d replies, want %d", len(replies), len(want))
	}
	for i, r := range replies {
		if short(r) != want[i] {
			t.Errorf("reply %d = %v, want %s", i, r, want[i])
		}
		if strings.Contains(r.Text, base) || strings.Contains(r.Text, "/") {
			t.Errorf("reply %d names a path: %v", i, r)
		}
	}
}

// checkMailboxes checks every mailbox of the fixture: one message in new/
// with the right content where got says so, none elsewhere, tmp/ empty.
func checkMailboxes(t *testing.T, s *Store, from string, got map[string]string) {
	t.Helper()
	for _, mb := range []string{"example.com/alice", "example.com/bob", "example.com/a/b", "x", "example.com/.hidden"} {
		msgs := readNew(t, s, mb)
		rcpt, ok := got[mb]
		switch {
		case !ok && len(msgs) != 0:
			t.Errorf("%s: %d unexpected messages", mb, len(msgs))
		case ok && len(msgs) != 1:
			t.Errorf("%s: %d messages, want 1", mb, len(msgs))
		case ok:
			want := "Return-Path: <" + from + ">\r\nDelivered-To: " + rcpt + "\r\n" + body
			if msgs[0] != want {
				t.Errorf("%s: content\n%q\nwant\n%q", mb, msgs[0], want)
			}
			if n := names(t, filepath.Join(s.Root, mb, "cur")); n != nil {
				t.Errorf("%s: cur/ not empty: %v", mb, n)
			}
		}
		if n := names(t, filepath.Join(s.Root, mb, "tmp")); n != nil {
			t.Errorf("%s: tmp/ not empty: %v", mb, n)
		}
	}
}

func TestReadOnlyNew(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores permissions")
	}
	base, s := fixture(t)
	newDir := filepath.Join(s.Root, "example.com/alice/new")
	if err := os.Chmod(newDir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(newDir, 0o700) })
	replies, err := s.Deliver(context.Background(), "s@example.org", addrs("alice@example.com"), strings.NewReader(body), int64(len(body)))
	checkReplies(t, base, replies, []string{"451 4.3.0"})
	if replies[0].Class != ClassLocal || !replies[0].Temporary() {
		t.Errorf("reply %v: want temporary, class %q", replies[0], ClassLocal)
	}
	var e *Error
	if !errors.As(err, &e) || !e.Temporary() || e.Rcpt != "alice@example.com" || !errors.Is(err, os.ErrPermission) {
		t.Errorf("error %v: want a temporary *Error for alice wrapping EACCES", err)
	}
	checkMailboxes(t, s, "", nil)
}

// countdown is a context whose Err turns to Canceled after n calls.
type countdown struct {
	context.Context
	n atomic.Int32
}

func (c *countdown) Err() error {
	if c.n.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

func TestCanceled(t *testing.T) {
	rcpts := addrs("alice@example.com", "bob@example.com", "alice@example.com")
	done, cancel := context.WithCancel(context.Background())
	cancel()
	midway := &countdown{Context: context.Background()}
	midway.n.Store(1)
	tests := []struct {
		name string
		ctx  context.Context
		want []string
		got  map[string]string
	}{
		{"before", done, []string{"451 4.3.0", "451 4.3.0", "451 4.3.0"}, nil},
		// The repeated alice shares the reply of her delivered copy.
		{"after one", midway, []string{"250 2.0.0", "451 4.3.0", "250 2.0.0"},
			map[string]string{"example.com/alice": "alice@example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, s := fixture(t)
			replies, err := s.Deliver(tt.ctx, "", rcpts, strings.NewReader(body), int64(len(body)))
			checkReplies(t, base, replies, tt.want)
			for _, r := range replies {
				if r.Code == 451 && (r.Class != ClassCanceled || !r.Temporary()) {
					t.Errorf("reply %v: want temporary, class %q", r, ClassCanceled)
				}
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("error %v: want context.Canceled", err)
			}
			checkMailboxes(t, s, "", tt.got)
		})
	}
}

func TestConcurrent(t *testing.T) {
	_, s := fixture(t)
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			replies, err := s.Deliver(context.Background(), "", addrs("bob@example.com"), strings.NewReader(fmt.Sprintf("%d\r\n", i)), int64(len(fmt.Sprintf("%d\r\n", i))))
			if err != nil || !replies[0].Success() {
				t.Errorf("delivery %d: %v, %v", i, replies, err)
			}
		})
	}
	wg.Wait()
	msgs := readNew(t, s, "example.com/bob")
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("Return-Path: <>\r\nDelivered-To: bob@example.com\r\n%d\r\n", i))
	}
	slices.Sort(msgs)
	slices.Sort(want)
	if !slices.Equal(msgs, want) {
		t.Errorf("new/ holds %d messages %q, want the %d distinct ones", len(msgs), msgs, n)
	}
}

func TestRefuseAll(t *testing.T) {
	tests := []struct {
		name string
		root string
		from string
		want string
	}{
		{"no root", "", "s@example.org", "451 4.3.0"},
		{"sender with CRLF", "root", "s@example.org\r\nBcc: x", "550 5.1.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			s := &Store{Hostname: testHost}
			if tt.root != "" {
				s.Root = filepath.Join(base, tt.root)
			}
			replies, err := s.Deliver(context.Background(), tt.from, addrs("a@example.com", "b@example.com"), strings.NewReader(body), int64(len(body)))
			checkReplies(t, base, replies, []string{tt.want, tt.want})
			if err == nil {
				t.Error("no error to log")
			}
		})
	}
}

func TestHeaderLineEnds(t *testing.T) {
	tests := []struct {
		body string
		want string
	}{
		{"a\r\nb\n", "Return-Path: <s@x>\r\nDelivered-To: r@y\r\n"},
		{"a\nb\r\n", "Return-Path: <s@x>\nDelivered-To: r@y\n"},
		{"", "Return-Path: <s@x>\r\nDelivered-To: r@y\r\n"},
		{"\n", "Return-Path: <s@x>\nDelivered-To: r@y\n"},
	}
	for _, tt := range tests {
		if got := string(header("s@x", "r@y", endsCRLF([]byte(tt.body)))); got != tt.want {
			t.Errorf("body %q: header %q, want %q", tt.body, got, tt.want)
		}
	}
}

func TestNoRecipients(t *testing.T) {
	_, s := fixture(t)
	replies, err := s.Deliver(context.Background(), "", nil, strings.NewReader(body), int64(len(body)))
	if len(replies) != 0 || err != nil {
		t.Errorf("got %v, %v; want no replies, no error", replies, err)
	}
	if files := regularFiles(t, s.Root); !slices.Equal(files, []string{"example.com/file"}) {
		t.Errorf("files written: %v", files)
	}
}
