package maildir

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

// A large body, read in odd pieces from a reader that can be read only
// once, reaches every mailbox whole: the later copies are read back from
// the first. The file names carry the copy's size.
func TestDeliverStreams(t *testing.T) {
	base, s := fixture(t)
	var b bytes.Buffer
	for b.Len() < 5<<20 {
		fmt.Fprintf(&b, "line %d\r\n", b.Len())
	}
	big := b.String()
	once := &readOnce{r: iotest.HalfReader(strings.NewReader(big))}
	replies, err := s.Deliver(context.Background(), "s@example.org",
		addrs("alice@example.com", "bob@example.com", "nobody@example.com"), once, int64(len(big)))
	if err != nil {
		t.Fatal(err)
	}
	checkReplies(t, base, replies, []string{"250 2.0.0", "250 2.0.0", "550 5.1.1"})
	for mb, rcpt := range map[string]string{"example.com/alice": "alice@example.com", "example.com/bob": "bob@example.com"} {
		msgs := readNew(t, s, mb)
		want := "Return-Path: <s@example.org>\r\nDelivered-To: " + rcpt + "\r\n" + big
		if len(msgs) != 1 || msgs[0] != want {
			t.Errorf("%s: %d messages; the first is not the body", mb, len(msgs))
			continue
		}
		name := names(t, filepath.Join(s.Root, mb, "new"))[0]
		if !strings.HasSuffix(name, fmt.Sprintf(",S=%d", len(want))) {
			t.Errorf("%s: name %s does not end in S=%d", mb, name, len(want))
		}
	}
}

// readOnce fails a read after it returned io.EOF.
type readOnce struct {
	r   io.Reader
	eof bool
}

func (o *readOnce) Read(p []byte) (int, error) {
	if o.eof {
		return 0, errors.New("body read twice")
	}
	n, err := o.r.Read(p)
	o.eof = err == io.EOF
	return n, err
}

// A body that fails to read, or reads short or long of its size, stores
// nothing: every recipient gets 451 4.3.0 of class journal, and no file is
// left in new/ or tmp/.
func TestDeliverBodyReadError(t *testing.T) {
	readErr := errors.New("journal closed")
	tests := []struct {
		name string
		r    io.Reader
		size int64
	}{
		{"read error", io.MultiReader(strings.NewReader(body), iotest.ErrReader(readErr)), 1000},
		{"read error at once", iotest.ErrReader(readErr), 1000},
		{"short", strings.NewReader(body), int64(len(body)) + 1},
		{"long", strings.NewReader(body), int64(len(body)) - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, s := fixture(t)
			replies, err := s.Deliver(context.Background(), "s@example.org", addrs("alice@example.com", "bob@example.com"), tt.r, tt.size)
			checkReplies(t, base, replies, []string{"451 4.3.0", "451 4.3.0"})
			for _, r := range replies {
				if r.Class != ClassJournal {
					t.Errorf("reply %v: class %q, want %q", r, r.Class, ClassJournal)
				}
			}
			var e *Error
			if !errors.As(err, &e) || !e.Temporary() {
				t.Errorf("error %v: want a temporary *Error", err)
			}
			if tt.name == "read error" && !errors.Is(err, readErr) {
				t.Errorf("error %v does not wrap the read error", err)
			}
			checkMailboxes(t, s, "", nil)
		})
	}
}
