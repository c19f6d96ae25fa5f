package outbound

import (
	"bufio"
	"bytes"
	"net/textproto"
	"testing"
)

// The chunked dot-stuffing of CRLF bodies puts the same bytes on the wire
// as net/textproto's DotWriter.
func TestStuffedMatchesDotWriter(t *testing.T) {
	for _, body := range []string{
		"", ".", "a", "a\r\n", ".a\r\n", "a\r\n.\r\nb\r\n", "a\r\n..\r\n", "a\r\n.", "\r\n.\r\n.\r\n",
		"Subject: x\r\n\r\n.hidden\r\nend", "no newline at end", "x\r\n\r\n",
	} {
		if !crlfOnly([]byte(body)) {
			t.Fatalf("%q should count as CRLF-only", body)
		}
		if got, want := stuffedBytes(body), dotWriterBytes(body); got != want {
			t.Errorf("body %q: stuffed %q, DotWriter %q", body, got, want)
		}
	}
	for _, body := range []string{"a\n", "a\rb", "a\r", "\n.\n", "a\r\r\n"} {
		if crlfOnly([]byte(body)) {
			t.Errorf("%q counted as CRLF-only", body)
		}
	}
}

func stuffedBytes(body string) string {
	var out bytes.Buffer
	w := &wire{w: textproto.NewWriter(bufio.NewWriter(&out))}
	_ = w.stuffed([]byte(body))
	return out.String()
}

func dotWriterBytes(body string) string {
	var out bytes.Buffer
	dw := textproto.NewWriter(bufio.NewWriter(&out)).DotWriter()
	_, _ = dw.Write([]byte(body))
	_ = dw.Close()
	return out.String()
}

func FuzzStuffed(f *testing.F) {
	f.Add("a\r\n.\r\nb")
	f.Fuzz(func(t *testing.T, body string) {
		if !crlfOnly([]byte(body)) {
			return
		}
		if got, want := stuffedBytes(body), dotWriterBytes(body); got != want {
			t.Errorf("body %q: stuffed %q, DotWriter %q", body, got, want)
		}
	})
}
