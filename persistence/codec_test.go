package persistence

import (
	"reflect"
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
