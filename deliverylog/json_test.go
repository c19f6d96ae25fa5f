package deliverylog

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// checkSame fails t unless appendJSON and appendLine write what
// json.Marshal does, or fail as it does.
func checkSame(t *testing.T, e *Event) {
	t.Helper()
	want, err := json.Marshal(e)
	line, lineErr := appendLine([]byte("prefix"), e)
	if err != nil {
		if e.marshalable() || lineErr == nil || lineErr.Error() != err.Error() || string(line) != "prefix" {
			t.Fatalf("json.Marshal fails with %v; marshalable %v, appendLine %q, %v", err, e.marshalable(), line, lineErr)
		}
		return
	}
	if !e.marshalable() {
		t.Fatalf("marshalable is false for an event json.Marshal encodes: %s", want)
	}
	if got := e.appendJSON([]byte("prefix")); string(got) != "prefix"+string(want) {
		t.Fatalf("appendJSON\n got %s\nwant prefix%s", got, want)
	}
	if lineErr != nil || string(line) != "prefix"+string(want)+"\n" {
		t.Fatalf("appendLine: %q, %v; want prefix%s and a newline", line, lineErr, want)
	}
}

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	empty, plain := "", "sender@example.com"
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	east, west := time.FixedZone("", 5*3600+30*60), time.FixedZone("PDT", -7*3600)
	var allASCII strings.Builder
	for c := range 128 {
		allASCII.WriteByte(byte(c))
	}
	tests := []struct {
		name string
		e    Event
	}{
		{"zero event", Event{}},
		{"typical delivery", Event{Time: now, Event: Delivered, MsgID: "00000000000a1b2c", Rcpt: "a@b.test",
			Sender: &plain, Queue: "default", Domain: "b.test", Host: "mx.b.test", IP: "2001:db8::1", Attempt: 1,
			Code: 250, Enhanced: "2.0.0", Reply: "250 2.0.0 Ok", Size: 5120, Rcpts: 3}},
		{"empty sender is written", Event{Time: now, Sender: &empty}},
		{"nil sender is omitted", Event{Time: now, Rcpt: "x"}},
		{"quote and backslash", Event{Time: now, Reply: `say "hi" \ back\\slash`}},
		{"short escapes", Event{Time: now, Reply: "\b\f\n\r\t"}},
		{"every ASCII byte", Event{Time: now, Reply: allASCII.String()}},
		{"control characters", Event{Time: now, Reply: "\x00\x01\x1a\x1f\x7f"}},
		{"HTML", Event{Time: now, Reply: "<script>a && b</script>"}},
		{"line and paragraph separators", Event{Time: now, Reply: "a\u2028b\u2029c\u2027\u202a"}},
		{"valid UTF-8", Event{Time: now, Reply: "héllo wörld 日本 😀 \ufffd"}},
		{"invalid UTF-8", Event{Time: now, Reply: "a\xffb\xc3\x28c\xe2\x80d\xed\xa0\x80e\xf4\x90\x80\x80\xc0\xaf\x80"}},
		{"truncated rune at the end", Event{Time: now, Reply: "abc\xe2\x80"}},
		{"escapes in every string field", Event{Time: now, Event: "<", MsgID: ">", Rcpt: "&", Sender: &plain,
			Queue: "\n", Domain: "\u2028", Host: "\xff", IP: `"`, Enhanced: "\\", Reply: "\t", DSN: "\x01",
			Rule: "\u2029", Action: "\x7f"}},
		{"negative ints", Event{Time: now, Attempt: -1, Code: math.MinInt, Size: math.MinInt64, Rcpts: -42}},
		{"large ints", Event{Time: now, Attempt: math.MaxInt, Code: 999, Size: math.MaxInt64, Rcpts: math.MaxInt32}},
		{"zero next try is omitted", Event{Time: now, Event: Deferred}},
		{"zero instant in a zone is still zero", Event{Time: now, NextTry: time.Time{}.In(east)}},
		{"next try", Event{Time: now, NextTry: now.Add(90 * time.Minute)}},
		{"nanoseconds", Event{Time: time.Date(2025, 1, 2, 3, 4, 5, 123456789, time.UTC),
			NextTry: time.Date(2025, 1, 2, 3, 4, 5, 1, time.UTC)}},
		{"trailing zeros trimmed", Event{Time: time.Date(2025, 1, 2, 3, 4, 5, 120000000, time.UTC),
			NextTry: time.Date(2025, 1, 2, 3, 4, 5, 100, time.UTC)}},
		{"zones east and west", Event{Time: now.In(east), NextTry: now.In(west)}},
		{"offset under a minute", Event{Time: now.In(time.FixedZone("", 59)), NextTry: now.In(time.FixedZone("", -59))}},
		{"offset with seconds", Event{Time: now.In(time.FixedZone("", 3600+61)), NextTry: now.In(time.FixedZone("", -3600-61))}},
		{"offset of 23:59", Event{Time: now.In(time.FixedZone("", 86399)), NextTry: now.In(time.FixedZone("", -86399))}},
		{"local zone", Event{Time: now.Local(), NextTry: time.Now()}},
		{"zone with daylight saving", Event{Time: now.In(newYork), NextTry: now.AddDate(0, 6, 0).In(newYork)}},
		{"first instant of year 0", Event{Time: time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"last instant of year 9999", Event{Time: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)}},
		{"year 0 only in its zone", Event{Time: time.Date(0, 1, 1, 0, 30, 0, 0, east)}},
		{"year 9999 only in its zone", Event{Time: time.Date(9999, 12, 31, 23, 0, 0, 0, west)}},
		// json.Marshal fails on these: appendLine must fail too.
		{"year -1", Event{Time: time.Date(-1, 12, 31, 23, 59, 59, 0, time.UTC)}},
		{"year 10000", Event{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"year 10000 only in its zone", Event{Time: time.Date(9999, 12, 31, 23, 0, 0, 0, time.UTC).In(east)}},
		{"year -1 only in its zone", Event{Time: time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC).In(west)}},
		{"next try in year 10000", Event{Time: now, NextTry: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"offset of a day", Event{Time: now.In(time.FixedZone("", 86400))}},
		{"offset of minus a day", Event{Time: now, NextTry: now.In(time.FixedZone("", -86400))}},
		{"offset of 100 hours", Event{Time: now.In(time.FixedZone("", 100*3600))}},
		{"extreme times", Event{Time: time.Unix(math.MaxInt64, 999999999), NextTry: time.Unix(math.MinInt64, 0)}},
		{"empty metadata is omitted", Event{Time: now, Metadata: map[string]string{}}},
		{"metadata", Event{Time: now, Metadata: map[string]string{"tenant": "t1", "campaign": "c<1>"}}},
		{"metadata order", Event{Time: now, Metadata: map[string]string{
			"b": "1", "a": "2", "B": "3", "": "4", "aa": "5", "é": "6", "\xff": "7", "\u2028": "8", "<": "9", "\n": "10"}}},
		{"more metadata than the stack holds", Event{Time: now, Metadata: map[string]string{
			"k1": "", "k2": "", "k3": "", "k4": "", "k5": "", "k6": "", "k7": "", "k8": "", "k9": "", "k10": ""}}},
		{"arrival is never written", Event{Time: now, Arrival: now}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkSame(t, &tt.e) })
	}
}

// An Event field that appendJSON does not know about fails here: every
// field is set, then compared with json.Marshal.
func TestAppendJSONCoversEveryField(t *testing.T) {
	var e Event
	v := reflect.ValueOf(&e).Elem()
	for i := range v.NumField() {
		f, name := v.Field(i), v.Type().Field(i).Name
		switch f.Interface().(type) {
		case string:
			f.SetString("s-" + name)
		case int, int64:
			f.SetInt(int64(i + 1))
		case *string:
			s := "p-" + name
			f.Set(reflect.ValueOf(&s))
		case time.Time:
			f.Set(reflect.ValueOf(time.Date(2025, 1, 1, 0, 0, i, 0, time.UTC)))
		case map[string]string:
			f.Set(reflect.ValueOf(map[string]string{"k-" + name: "v"}))
		default:
			t.Fatalf("field %s has type %s: teach appendJSON and this test about it", name, f.Type())
		}
	}
	checkSame(t, &e)
}

// appendJSON allocates nothing once the buffer has grown, metadata
// included.
func TestAppendJSONDoesNotAllocate(t *testing.T) {
	e := benchEvent()
	e.Metadata = map[string]string{"tenant": "t1", "campaign": "c1"}
	b := e.appendJSON(nil)
	if n := testing.AllocsPerRun(100, func() { b = e.appendJSON(b[:0]) }); n != 0 {
		t.Errorf("%v allocations an event", n)
	}
}

// The writer's output is json.Encoder's: the line TestWritesJSONLines
// checks by parsing, compared byte for byte.
func TestWriterMatchesEncoder(t *testing.T) {
	var got, want bytes.Buffer
	l := New(&got, 16, discard())
	enc := json.NewEncoder(&want)
	from := "s@example.com"
	events := []Event{
		{Time: time.Unix(1, 5).UTC(), Event: Delivered, MsgID: "1", Sender: &from, Reply: "250 <ok> \u2028"},
		{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Event: Failed}, // not written: Time.MarshalJSON fails
		{Time: time.Unix(2, 0).UTC(), Event: Deferred, NextTry: time.Unix(100, 0).UTC(), Metadata: map[string]string{"b": "1", "a": "2"}},
	}
	for _, e := range events {
		l.Write(e)
		_ = enc.Encode(e) // fails on the second, writing nothing, as the writer must
	}
	l.Close()
	if got.String() != want.String() {
		t.Errorf("log\n%s\nencoding/json\n%s", got.String(), want.String())
	}
}

func FuzzAppendJSON(f *testing.F) {
	f.Add("delivered", "00000000000a1b2c", "a@b.test", true, 1, 250, int64(5120), int64(1741064767), int64(0), 0, int64(0), int64(0), 0)
	f.Add("<&>", "\u2028\u2029", "\xff\xfe\n\x00", false, -1, 0, int64(-7), int64(1741064767), int64(123456789), 19800, int64(1741068367), int64(1), -25200)
	f.Add("", "", "", true, 0, 0, int64(0), int64(253402300799), int64(999999999), -3600, int64(-62167219200), int64(0), 3600)
	f.Add("a", "b", "c", false, 0, 0, int64(0), int64(253402300800), int64(0), 0, int64(0), int64(0), 86400)
	f.Add("x", "y", "z", true, 3, 3, int64(1), int64(1741064767), int64(0), 1, int64(1762000000), int64(0), 2)
	f.Fuzz(func(t *testing.T, s1, s2, s3 string, sender bool, n1, n2 int, size, sec, nsec int64, off int,
		nextSec, nextNsec int64, nextOff int) {
		e := Event{Time: fuzzTime(sec, nsec, off), Event: s1, MsgID: s2, Rcpt: s3, Queue: s1 + s2, Domain: s3,
			Host: s2, IP: s1, Attempt: n1, Code: n2, Enhanced: s3, Reply: s1 + s3, Size: size, Rcpts: n1 ^ n2,
			NextTry: fuzzTime(nextSec, nextNsec, nextOff), DSN: s2, Rule: s3, Action: s1,
			Metadata: map[string]string{s1: s2, s2: s3, s3: s1}}
		if sender {
			e.Sender = &s2
		}
		if n1%3 == 0 { // exercise omission too
			e.Event, e.Reply, e.Metadata = "", "", nil
		}
		checkSame(t, &e)
	})
}

// newYork is a zone with daylight saving time, or UTC without tzdata.
var newYork = func() *time.Location {
	if l, err := time.LoadLocation("America/New_York"); err == nil {
		return l
	}
	return time.UTC
}()

// fuzzTime makes a time in UTC (off 0), in the Local zone (off 1), in
// New York (off 2) or at off seconds east of UTC; sec 0 with nsec 0 is
// the zero time.
func fuzzTime(sec, nsec int64, off int) time.Time {
	if sec == 0 && nsec == 0 {
		return time.Time{}
	}
	t := time.Unix(sec, nsec)
	switch off {
	case 0:
		return t.UTC()
	case 1:
		return t.Local()
	case 2:
		return t.In(newYork)
	}
	return t.In(time.FixedZone("", off))
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
