package persistence

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mtad/mtad/messages"
)

func TestCodecRoundTrip(t *testing.T) {
	full := sampleEnvelope(42)
	tests := []struct {
		name string
		env  *messages.Envelope
	}{
		{"zero", &messages.Envelope{ID: 1}},
		{"full", full},
		{"epoch is not zero", &messages.Envelope{ID: 2, Arrival: time.Unix(0, 0), Size: -1, Priority: 1 << 40}},
		{"null sender", &messages.Envelope{ID: 3, Ret: messages.RetFull, Body: messages.BodyBinaryMIME}},
		{"require tls only", &messages.Envelope{ID: 4, RequireTLS: true}},
		{"metadata", &messages.Envelope{ID: 5, Metadata: map[string]string{"tenant": "acme", "campaign": "", "z": "é"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, n, err := decodeEnvelope(tt.env.ID, appendEnvelope(nil, tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if n != len(tt.env.Rcpts) {
				t.Errorf("recipient count %d, want %d", n, len(tt.env.Rcpts))
			}
			got.Rcpts = tt.env.Rcpts
			if v := appendEnvelope(nil, tt.env)[0]; (v == envelopeV3) != (len(tt.env.Metadata) > 0) {
				t.Errorf("written as version %d with %d metadata pairs", v, len(tt.env.Metadata))
			}
			checkEqual(t, got, tt.env)
			if got.Arrival.IsZero() != tt.env.Arrival.IsZero() {
				t.Errorf("Arrival zero = %v, want %v", got.Arrival.IsZero(), tt.env.Arrival.IsZero())
			}
		})
	}
	for _, r := range full.Rcpts {
		got, err := decodeRecipient(r.Index, appendRecipient(nil, &r))
		if err != nil {
			t.Fatal(err)
		}
		got.NextAttempt, r.NextAttempt = utc(got.NextAttempt), utc(r.NextAttempt)
		if !reflect.DeepEqual(got, r) {
			t.Errorf("recipient %d:\n got %+v\nwant %+v", r.Index, got, r)
		}
	}
}

// TestDecodeEnvelopeSeeds reads envelope records as committed under
// testdata. "full" and "zero" are version 1 records, written before
// RequireTLS was stored: they must keep loading, with RequireTLS false.
// "full-v2" is today's format, which appendEnvelope must still produce.
func TestDecodeEnvelopeSeeds(t *testing.T) {
	v1 := sampleEnvelope(7)
	v1.Rcpts, v1.RequireTLS = nil, false
	v2 := sampleEnvelope(7)
	v2.Rcpts = nil
	tests := []struct {
		seed    string
		version byte
		want    *messages.Envelope
		rcpts   int
	}{
		{"full", envelopeV1, v1, 3},
		{"zero", envelopeV1, &messages.Envelope{ID: 7}, 0},
		{"full-v2", envelopeV2, v2, 3},
	}
	for _, tt := range tests {
		t.Run(tt.seed, func(t *testing.T) {
			v := readSeed(t, filepath.Join("testdata", "fuzz", "FuzzDecodeEnvelope", tt.seed))
			if v[0] != tt.version {
				t.Fatalf("seed is version %d, want %d", v[0], tt.version)
			}
			got, n, err := decodeEnvelope(7, v)
			if err != nil {
				t.Fatal(err)
			}
			if n != tt.rcpts {
				t.Errorf("recipient count %d, want %d", n, tt.rcpts)
			}
			checkEqual(t, got, tt.want)
			if tt.version == envelopeV2 {
				if again := appendEnvelope(nil, sampleEnvelope(7)); !bytes.Equal(again, v) {
					t.Errorf("appendEnvelope changed the format:\n got %q\nwant %q", again, v)
				}
			}
		})
	}
}

func TestDecodeEnvelopeRefuses(t *testing.T) {
	v2 := appendEnvelope(nil, sampleEnvelope(7))
	tests := []struct {
		name string
		v    []byte
		want string
	}{
		{"version 0", append([]byte{0}, v2[1:]...), "unknown record version 0"},
		{"version 4", append([]byte{4}, v2[1:]...), "unknown record version 4"},
		{"version 3 without metadata", append([]byte{3}, v2[1:]...), "malformed varint"},
		{"version 3 with no pairs", append(append([]byte{3}, v2[1:]...), 0), "metadata count 0"},
		{"version 3 keys out of order", append(append([]byte{3}, v2[1:]...), 2, 1, 'b', 0, 1, 'a', 0), "out of order"},
		{"unknown flag", append(v2[:len(v2)-1:len(v2)-1], 0x03), "unknown bits"},
		{"version 2 without flags", v2[:len(v2)-1], "malformed varint"},
		{"version 1 with flags", append([]byte{envelopeV1}, v2[1:]...), "1 trailing bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := decodeEnvelope(7, tt.v)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// readSeed returns the []byte value of a committed fuzz seed file.
func readSeed(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	header, value, _ := bytes.Cut(data, []byte("\n"))
	lit, ok := strings.CutPrefix(strings.TrimSpace(string(value)), "[]byte(")
	if string(header) != "go test fuzz v1" || !ok || !strings.HasSuffix(lit, ")") {
		t.Fatalf("%s: not a one-value []byte seed", path)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(s)
}

// FuzzDecodeEnvelope checks that the decoder never panics, and that what
// it accepts encodes back to a record that decodes to the same value.
func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(appendEnvelope(nil, sampleEnvelope(7)))
	f.Add(appendEnvelope(nil, &messages.Envelope{}))
	f.Fuzz(func(t *testing.T, data []byte) {
		env, n, err := decodeEnvelope(9, data)
		if err != nil || n > 1<<12 { // a huge count would only test the allocator
			return
		}
		env.Rcpts = make([]messages.Recipient, n)
		again, n2, err := decodeEnvelope(9, appendEnvelope(nil, env))
		if err != nil || n2 != n {
			t.Fatalf("re-decode: %v, %d recipients, want %d", err, n2, n)
		}
		again.Rcpts = env.Rcpts
		if !reflect.DeepEqual(again, env) {
			t.Fatalf("re-decode differs:\n got %+v\nwant %+v", again, env)
		}
	})
}

func FuzzDecodeRecipient(f *testing.F) {
	for _, r := range sampleEnvelope(7).Rcpts {
		f.Add(appendRecipient(nil, &r))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeRecipient(3, data)
		if err != nil {
			return
		}
		again, err := decodeRecipient(3, appendRecipient(nil, &r))
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("re-decode differs:\n got %+v\nwant %+v", again, r)
		}
	})
}
