package limits

import (
	"strings"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Rate
		err  string // a part of the error; "" means no error
	}{
		{"50/1s", Rate{50, time.Second}, ""},
		{"10/1m", Rate{10, time.Minute}, ""},
		{"1000/1h", Rate{1000, time.Hour}, ""},
		{"5000/1d", Rate{5000, 24 * time.Hour}, ""},
		{"3/1d12h", Rate{3, 36 * time.Hour}, ""},
		{"100/90s", Rate{100, 90 * time.Second}, ""},
		{"5/500ms", Rate{5, 500 * time.Millisecond}, ""},
		{"10/m", Rate{10, time.Minute}, ""},
		{"10/s", Rate{10, time.Second}, ""},
		{" 20 / 1h ", Rate{20, time.Hour}, ""},
		{"", Rate{}, `missing "/"`},
		{"50", Rate{}, `missing "/"`},
		{"50 1s", Rate{}, `missing "/"`},
		{"/1s", Rate{}, "missing count"},
		{"50/", Rate{}, "missing period"},
		{"0/1s", Rate{}, "count must be positive"},
		{"-5/1s", Rate{}, "count must be positive"},
		{"five/1s", Rate{}, "not a whole number"},
		{"1.5/1s", Rate{}, "not a whole number"},
		{"99999999999999999999/1s", Rate{}, "too large"},
		{"50/0s", Rate{}, "period must be positive"},
		{"50/-1s", Rate{}, "period must be positive"},
		{"50/0d", Rate{}, "period must be positive"},
		{"50/1w", Rate{}, "bad period"},
		{"50/1x", Rate{}, "bad period"},
		{"50/sec", Rate{}, "bad period"},
		{"50/1s/2", Rate{}, "bad period"},
		{"50/xd", Rate{}, "bad period"},
		{"50/99999999d", Rate{}, "bad period"},
		{"50/106751d24h", Rate{}, "too long"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseRate(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseRate(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.err)
				}
				if !strings.Contains(err.Error(), tc.in) {
					t.Errorf("error %q does not quote the input", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseRate(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestRateString(t *testing.T) {
	for _, tc := range []struct {
		r    Rate
		want string
	}{
		{Rate{50, time.Second}, "50/1s"},
		{Rate{10, time.Minute}, "10/1m"},
		{Rate{1000, time.Hour}, "1000/1h"},
		{Rate{7, 90 * time.Minute}, "7/1h30m"},
		{Rate{5000, 48 * time.Hour}, "5000/2d"},
		{Rate{5, 500 * time.Millisecond}, "5/500ms"},
		{Rate{}, "none"},
	} {
		if got := tc.r.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.r, got, tc.want)
		}
		if tc.r.IsZero() {
			continue
		}
		if back, err := ParseRate(tc.want); err != nil || back != tc.r {
			t.Errorf("ParseRate(%q) = %v, %v; want %#v", tc.want, back, err, tc.r)
		}
	}
}

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"50/1s", "10/1m", "1000/1h", "1/1d12h", "10/s", "0/1s", "-1/1s", "5/0s", "x/y", "1/", "/", "1/1d1d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRate(s)
		if err != nil {
			if r != (Rate{}) {
				t.Fatalf("ParseRate(%q) = %#v with error %v", s, r, err)
			}
			return
		}
		if r.N <= 0 || r.Per <= 0 {
			t.Fatalf("ParseRate(%q) = %#v: not positive", s, r)
		}
		back, err := ParseRate(r.String())
		if err != nil || back != r {
			t.Fatalf("ParseRate(%q) = %#v; String %q reads back as %#v, %v", s, r, r.String(), back, err)
		}
	})
}
