package submission

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
)

// streamConn is a net.Conn whose reads come from r, as much as asked for
// in one call, counted; a read that reaches the end returns io.EOF with
// its bytes when eofWithData is set.
type streamConn struct {
	net.Conn
	r           io.Reader
	reads       int
	eofWithData bool
}

func (c *streamConn) Read(p []byte) (int, error) {
	c.reads++
	n, err := c.r.Read(p)
	if c.eofWithData && err == nil {
		if br, ok := c.r.(*bytes.Reader); ok && br.Len() == 0 {
			err = io.EOF
		}
	}
	return n, err
}

// TestReadAhead: with bulk set, small reads are served from one large
// socket read; the bytes come out as the socket gave them, also after
// bulk is cleared with bytes still read ahead; without bulk each read is
// a socket read of its own size.
func TestReadAhead(t *testing.T) {
	data := make([]byte, 3*dataBuffer+1000)
	for i := range data {
		data[i] = byte(i*7 + i/251)
	}
	sc := &streamConn{r: bytes.NewReader(data)}
	c := &trackedConn{Conn: sc}

	var got []byte
	p := make([]byte, 4096)
	read := func() {
		t.Helper()
		n, err := c.Read(p)
		if err != nil {
			t.Fatalf("read after %d bytes: %v", len(got), err)
		}
		got = append(got, p[:n]...)
	}
	read() // bulk off: one socket read of 4096
	if sc.reads != 1 || len(got) != 4096 {
		t.Fatalf("without bulk: %d socket reads for %d bytes, want 1 for 4096", sc.reads, len(got))
	}
	c.bulk.Store(true)
	for len(got) < 4096+dataBuffer {
		read()
	}
	if sc.reads != 2 {
		t.Errorf("with bulk: %d socket reads for %d bytes, want 2", sc.reads, len(got))
	}
	read() // starts a new read-ahead
	c.bulk.Store(false)
	for c.ahead != nil {
		read() // what was read ahead still comes first, in order
	}
	want := sc.reads + (len(data)-len(got)+4095)/4096
	for len(got) < len(data) {
		read()
	}
	if sc.reads != want {
		t.Errorf("after bulk: %d socket reads, want about %d", sc.reads, want)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the bytes read differ from those sent")
	}
	if n, err := c.Read(p); n != 0 || err != io.EOF {
		t.Errorf("at the end: %d, %v; want 0, EOF", n, err)
	}
	if !c.readFailed.Load() {
		t.Error("readFailed not set by the failed read")
	}
}

// TestReadAheadErrorAfterBytes: an error that came with bytes is given
// after those bytes, not before.
func TestReadAheadErrorAfterBytes(t *testing.T) {
	sc := &streamConn{r: bytes.NewReader([]byte(strings.Repeat("x", 10000))), eofWithData: true}
	c := &trackedConn{Conn: sc}
	c.bulk.Store(true)
	p := make([]byte, 4096)
	total := 0
	for {
		n, err := c.Read(p)
		total += n
		if err != nil {
			if !errors.Is(err, io.EOF) || total != 10000 {
				t.Fatalf("error %v after %d bytes, want EOF after 10000", err, total)
			}
			break
		}
		if n == 0 {
			t.Fatal("empty read without error")
		}
	}
	if sc.reads != 1 {
		t.Errorf("%d socket reads, want 1", sc.reads)
	}
}
