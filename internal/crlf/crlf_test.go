package crlf

import "testing"

func TestOnly(t *testing.T) {
	for s, want := range map[string]bool{
		"": true, "abc": true, "a\r\nb\r\n": true, "\r\n": true,
		"a\nb": false, "\n": false, "a\rb": false, "a\r": false, "\ra\r\n": false,
		"a\r\n\n": false, "a\r\r\n": false, "x\r\ny\n": false,
	} {
		if got := Only([]byte(s)); got != want {
			t.Errorf("Only(%q) = %v, want %v", s, got, want)
		}
	}
}

func FuzzOnly(f *testing.F) {
	f.Add([]byte("a\r\nb\n\r"))
	f.Fuzz(func(t *testing.T, b []byte) {
		want := true
		for i, c := range b {
			switch {
			case c == '\r' && (i+1 == len(b) || b[i+1] != '\n'):
				want = false
			case c == '\n' && (i == 0 || b[i-1] != '\r'):
				want = false
			}
		}
		if got := Only(b); got != want {
			t.Errorf("Only(%q) = %v, want %v", b, got, want)
		}
	})
}
