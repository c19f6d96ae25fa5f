package quota

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/mtad/mtad/messages"
)

// mkEnv builds an envelope; a recipient written "!addr" is already final.
func mkEnv(id messages.MsgID, from string, size int64, rcpts ...string) *messages.Envelope {
	env := &messages.Envelope{ID: id, From: from, Size: size}
	for i, a := range rcpts {
		rc := messages.Recipient{Index: uint32(i), Addr: strings.TrimPrefix(a, "!")}
		if strings.HasPrefix(a, "!") {
			rc.Status = messages.StatusDelivered
		}
		env.Rcpts = append(env.Rcpts, rc)
	}
	return env
}

// usage renders b's usage as "quota:key=messages/bytes ..." ("" for the
// global key).
func usage(b *Book) string {
	var parts []string
	for _, u := range b.Usage() {
		parts = append(parts, fmt.Sprintf("%s:%s=%d/%d", u.Quota, u.KeyValue, u.Messages, u.Bytes))
	}
	return strings.Join(parts, " ")
}

func notDomain(d string) func(*messages.Envelope, *messages.Recipient) bool {
	return func(_ *messages.Envelope, rc *messages.Recipient) bool {
		return rc == nil || messages.Domain(rc.Addr) != d
	}
}

// step is one call on a Book. op is admit, charge, release or drop; for
// admit, exceeded is the quota expected to refuse ("" for admitted); usage
// is the Book's usage after the step.
type step struct {
	op       string
	env      *messages.Envelope
	idx      uint32
	exceeded string
	usage    string
}

func TestBook(t *testing.T) {
	a1 := mkEnv(1, "s@a.example", 100, "r1@x.example", "r2@x.example")
	a2 := mkEnv(2, "s@a.example", 100, "r1@x.example")
	a3 := mkEnv(3, "s@a.example", 100, "r1@x.example")
	a4 := mkEnv(4, "s@a.example", 100, "r1@x.example")
	big := mkEnv(5, "s@a.example", 1000, "r1@x.example")
	b1 := mkEnv(6, "t@B.example", 10, "r1@x.example")
	two := mkEnv(7, "s@a.example", 50, "p@x.example", "q@y.example", "r@X.example")
	same := mkEnv(8, "s@a.example", 10, "p@x.example", "P@x.example", "q@x.example")
	mixed := mkEnv(9, "s@a.example", 10, "p@skip.example", "q@x.example")
	skip := mkEnv(10, "s@a.example", 10, "p@skip.example")
	part := mkEnv(11, "s@a.example", 10, "!p@x.example", "q@y.example")
	done := mkEnv(12, "s@a.example", 10, "!p@x.example")
	none := mkEnv(13, "s@a.example", 10)
	upper := mkEnv(14, "S@A.example", 10, "r@x.example")

	tests := []struct {
		name   string
		quotas []Quota
		steps  []step
	}{
		{"global messages", []Quota{{Name: "g", Messages: 3}}, []step{
			{op: "admit", env: a1, usage: "g:=1/100"},
			{op: "admit", env: a2, usage: "g:=2/200"},
			{op: "admit", env: a3, usage: "g:=3/300"},
			{op: "admit", env: a4, exceeded: "g", usage: "g:=3/300"},
			{op: "release", env: a1, idx: 0, usage: "g:=3/300"},
			{op: "admit", env: a4, exceeded: "g", usage: "g:=3/300"},
			{op: "release", env: a1, idx: 1, usage: "g:=2/200"},
			{op: "admit", env: a4, usage: "g:=3/300"},
		}},
		{"bytes", []Quota{{Name: "g", Bytes: 250}}, []step{
			{op: "admit", env: big, exceeded: "g", usage: ""},
			{op: "admit", env: a1, usage: "g:=1/100"},
			{op: "admit", env: a2, usage: "g:=2/200"},
			{op: "admit", env: a3, exceeded: "g", usage: "g:=2/200"},
			{op: "admit", env: b1, usage: "g:=3/210"},
		}},
		{"sender domain counts per domain", []Quota{{Name: "sd", Key: SenderDomain, Messages: 2}}, []step{
			{op: "admit", env: a1, usage: "sd:a.example=1/100"},
			{op: "admit", env: a2, usage: "sd:a.example=2/200"},
			{op: "admit", env: a3, exceeded: "sd", usage: "sd:a.example=2/200"},
			{op: "admit", env: b1, usage: "sd:a.example=2/200 sd:b.example=1/10"},
		}},
		{"sender is case-insensitive", []Quota{{Name: "s", Key: Sender, Messages: 1}}, []step{
			{op: "admit", env: a1, usage: "s:s@a.example=1/100"},
			{op: "admit", env: upper, exceeded: "s", usage: "s:s@a.example=1/100"},
		}},
		{"rcpt domain charges each domain once", []Quota{{Name: "rd", Key: RcptDomain, Messages: 5}}, []step{
			{op: "admit", env: two, usage: "rd:x.example=1/50 rd:y.example=1/50"},
			{op: "release", env: two, idx: 1, usage: "rd:x.example=1/50"},
			{op: "release", env: two, idx: 0, usage: "rd:x.example=1/50"},
			{op: "release", env: two, idx: 2, usage: ""},
		}},
		{"rcpt domain released per domain", []Quota{{Name: "rd", Key: RcptDomain, Messages: 5}}, []step{
			{op: "admit", env: two, usage: "rd:x.example=1/50 rd:y.example=1/50"},
			{op: "release", env: two, idx: 0, usage: "rd:x.example=1/50 rd:y.example=1/50"},
			{op: "release", env: two, idx: 2, usage: "rd:y.example=1/50"},
			{op: "release", env: two, idx: 1, usage: ""},
		}},
		{"rcpt counts distinct addresses", []Quota{{Name: "r", Key: Rcpt, Messages: 1}}, []step{
			{op: "admit", env: same, usage: "r:p@x.example=1/10 r:q@x.example=1/10"},
			{op: "release", env: same, idx: 1, usage: "r:p@x.example=1/10 r:q@x.example=1/10"},
			{op: "admit", env: two, exceeded: "r", usage: "r:p@x.example=1/10 r:q@x.example=1/10"},
			{op: "release", env: same, idx: 0, usage: "r:q@x.example=1/10"},
			{op: "admit", env: two, usage: "r:p@x.example=1/50 r:q@x.example=1/10 r:q@y.example=1/50 r:r@x.example=1/50"},
		}},
		{"no match applies always", []Quota{{Name: "g", Messages: 1}}, []step{
			{op: "admit", env: skip, usage: "g:=1/10"},
			{op: "admit", env: a2, exceeded: "g", usage: "g:=1/10"},
		}},
		{"match excludes, message level", []Quota{{Name: "g", Messages: 1, Match: notDomain("skip.example")}}, []step{
			{op: "admit", env: skip, usage: ""},
			{op: "admit", env: a2, usage: "g:=1/100"},
			{op: "admit", env: skip, usage: "g:=1/100"},
			{op: "admit", env: a3, exceeded: "g", usage: "g:=1/100"},
			{op: "admit", env: mixed, usage: "g:=1/100"}, // first recipient decides
		}},
		{"match excludes, per recipient", []Quota{{Name: "rd", Key: RcptDomain, Messages: 1, Match: notDomain("skip.example")}}, []step{
			{op: "admit", env: mixed, usage: "rd:x.example=1/10"},
			{op: "release", env: mixed, idx: 1, usage: ""},
			{op: "release", env: mixed, idx: 0, usage: ""},
			{op: "admit", env: skip, usage: ""},
		}},
		{"all or nothing", []Quota{
			{Name: "g", Messages: 10},
			{Name: "sd", Key: SenderDomain, Messages: 10},
			{Name: "rd", Key: RcptDomain, Messages: 1},
		}, []step{
			{op: "admit", env: a2, usage: "g:=1/100 sd:a.example=1/100 rd:x.example=1/100"},
			{op: "admit", env: b1, exceeded: "rd", usage: "g:=1/100 sd:a.example=1/100 rd:x.example=1/100"},
			{op: "admit", env: two, exceeded: "rd", usage: "g:=1/100 sd:a.example=1/100 rd:x.example=1/100"},
		}},
		{"first quota without room is named", []Quota{
			{Name: "sd", Key: SenderDomain, Messages: 1},
			{Name: "g", Messages: 1},
		}, []step{
			{op: "admit", env: a2, usage: "sd:a.example=1/100 g:=1/100"},
			{op: "admit", env: a3, exceeded: "sd", usage: "sd:a.example=1/100 g:=1/100"},
		}},
		{"charge then release is zero", []Quota{
			{Name: "g", Messages: 1},
			{Name: "rd", Key: RcptDomain, Bytes: 1},
		}, []step{
			{op: "charge", env: two, usage: "g:=1/50 rd:x.example=1/50 rd:y.example=1/50"},
			{op: "charge", env: a1, usage: "g:=2/150 rd:x.example=2/150 rd:y.example=1/50"},
			{op: "charge", env: a1, usage: "g:=2/150 rd:x.example=2/150 rd:y.example=1/50"}, // once per message
			{op: "release", env: two, idx: 0, usage: "g:=2/150 rd:x.example=2/150 rd:y.example=1/50"},
			{op: "release", env: two, idx: 1, usage: "g:=2/150 rd:x.example=2/150"},
			{op: "release", env: two, idx: 2, usage: "g:=1/100 rd:x.example=1/100"},
			{op: "release", env: a1, idx: 1, usage: "g:=1/100 rd:x.example=1/100"},
			{op: "release", env: a1, idx: 0, usage: ""},
		}},
		{"double release", []Quota{{Name: "g", Messages: 5}, {Name: "rd", Key: RcptDomain, Messages: 5}}, []step{
			{op: "admit", env: a1, usage: "g:=1/100 rd:x.example=1/100"},
			{op: "admit", env: same, usage: "g:=2/110 rd:x.example=2/110"},
			{op: "release", env: a1, idx: 0, usage: "g:=2/110 rd:x.example=2/110"},
			{op: "release", env: a1, idx: 0, usage: "g:=2/110 rd:x.example=2/110"},
			{op: "release", env: a1, idx: 1, usage: "g:=1/10 rd:x.example=1/10"},
			{op: "release", env: a1, idx: 1, usage: "g:=1/10 rd:x.example=1/10"},
			{op: "release", env: a1, idx: 7, usage: "g:=1/10 rd:x.example=1/10"},
			{op: "release", env: a2, idx: 0, usage: "g:=1/10 rd:x.example=1/10"}, // unknown message
		}},
		{"final recipients are not charged", []Quota{{Name: "g", Messages: 5}, {Name: "rd", Key: RcptDomain, Messages: 5}}, []step{
			{op: "admit", env: done, usage: ""},
			{op: "admit", env: none, usage: ""},
			{op: "admit", env: part, usage: "g:=1/10 rd:y.example=1/10"},
			{op: "release", env: part, idx: 0, usage: "g:=1/10 rd:y.example=1/10"},
			{op: "release", env: part, idx: 1, usage: ""},
		}},
		{"drop", []Quota{{Name: "g", Messages: 1}, {Name: "rd", Key: RcptDomain, Messages: 5}}, []step{
			{op: "admit", env: two, usage: "g:=1/50 rd:x.example=1/50 rd:y.example=1/50"},
			{op: "release", env: two, idx: 1, usage: "g:=1/50 rd:x.example=1/50"},
			{op: "drop", env: two, usage: ""},
			{op: "drop", env: two, usage: ""},
			{op: "release", env: two, idx: 0, usage: ""},
			{op: "admit", env: a1, usage: "g:=1/100 rd:x.example=1/100"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := NewBook(tt.quotas)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tt.steps {
				run(t, b, i, s)
			}
		})
	}
}

func run(t *testing.T, b *Book, i int, s step) {
	t.Helper()
	switch s.op {
	case "admit":
		err := b.Admit(s.env)
		var ex *Exceeded
		switch {
		case s.exceeded == "" && err != nil:
			t.Errorf("step %d: admit %d: %v", i, s.env.ID, err)
		case s.exceeded != "" && (!errors.As(err, &ex) || ex.Quota != s.exceeded):
			t.Errorf("step %d: admit %d: %v, want quota %q exceeded", i, s.env.ID, err, s.exceeded)
		}
	case "charge":
		b.Charge(s.env)
	case "release":
		b.Release(s.env, s.idx)
	case "drop":
		b.Drop(s.env.ID)
	}
	if got := usage(b); got != s.usage {
		t.Errorf("step %d: %s %d: usage %q, want %q", i, s.op, s.env.ID, got, s.usage)
	}
}

func TestExceeded(t *testing.T) {
	b, err := NewBook([]Quota{{Name: "per-domain", Key: RcptDomain, Messages: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Admit(mkEnv(1, "s@a.example", 1, "r@x.example")); err != nil {
		t.Fatal(err)
	}
	err = b.Admit(mkEnv(2, "s@a.example", 1, "q@y.example", "r@X.example"))
	var ex *Exceeded
	if !errors.As(err, &ex) || ex.Quota != "per-domain" || ex.KeyValue != "x.example" {
		t.Fatalf("err %v, want *Exceeded for per-domain x.example", err)
	}
	var se *smtp.SMTPError
	if !errors.As(fmt.Errorf("admit: %w", err), &se) || se.Code != 452 || se.EnhancedCode != (smtp.EnhancedCode{4, 3, 1}) {
		t.Fatalf("reply %+v, want 452 4.3.1", se)
	}
	if strings.Contains(se.Message, "per-domain") || strings.Contains(se.Message, "x.example") {
		t.Errorf("reply %q names the configuration", se.Message)
	}
	if !errors.Is(err, ErrFull) {
		t.Errorf("errors.Is(%v, ErrFull) is false", err)
	}
}

func TestNewBookErrors(t *testing.T) {
	tests := []struct {
		name   string
		quotas []Quota
		want   string // in the error; "" for none
	}{
		{"ok", []Quota{{Name: "a", Messages: 1}, {Name: "b", Key: Rcpt, Bytes: 1}}, ""},
		{"no quotas", nil, ""},
		{"no limit", []Quota{{Name: "a", Key: Sender}}, `quota[0] "a": neither`},
		{"unknown key", []Quota{{Name: "a", Messages: 1}, {Name: "b", Key: "mx", Messages: 1}}, `quota[1] "b": unknown key "mx"`},
		{"negative", []Quota{{Name: "a", Messages: -1, Bytes: 5}}, "negative"},
		{"no name", []Quota{{Messages: 1}}, "missing name"},
		{"same name", []Quota{{Name: "a", Messages: 1}, {Name: "a", Bytes: 1}}, `quota[1] "a": name used twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewBook(tt.quotas)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("error %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// rebuildQuotas has every key, a match at each level and limits that
// never bind.
func rebuildQuotas() []Quota {
	return []Quota{
		{Name: "global", Messages: 1 << 40},
		{Name: "sender", Key: Sender, Bytes: 1 << 40, Match: notDomain("d0.example")},
		{Name: "sender-domain", Key: SenderDomain, Messages: 1 << 40},
		{Name: "rcpt", Key: Rcpt, Messages: 1 << 40},
		{Name: "rcpt-domain", Key: RcptDomain, Messages: 1 << 40, Bytes: 1 << 40, Match: notDomain("d1.example")},
	}
}

// randomEnv makes a message to 1 to 40 recipients over 4 domains, so some
// take the map in itemIndex.
func randomEnv(r *rand.Rand, id messages.MsgID) *messages.Envelope {
	n := 1 + r.IntN(6)
	if r.IntN(10) == 0 {
		n = 20 + r.IntN(20)
	}
	var rcpts []string
	for range n {
		rcpts = append(rcpts, fmt.Sprintf("u%d@d%d.example", r.IntN(5), r.IntN(4)))
	}
	return mkEnv(id, fmt.Sprintf("s%d@s%d.example", r.IntN(3), r.IntN(2)), int64(1+r.IntN(1000)), rcpts...)
}

// TestRebuild: a Book rebuilt by Charge from the journaled envelopes, with
// the recipients made final meanwhile, has the usage of the Book that
// admitted them, and both go to zero the same way.
func TestRebuild(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	live, _ := NewBook(rebuildQuotas())
	var envs []*messages.Envelope
	for id := range messages.MsgID(300) {
		env := randomEnv(r, id+1)
		if err := live.Admit(env); err != nil {
			t.Fatal(err)
		}
		envs = append(envs, env)
	}
	for _, env := range envs { // finish about half the recipients, some twice
		for i := range env.Rcpts {
			if r.IntN(2) == 0 {
				env.Rcpts[i].Status = messages.StatusFailed
				live.Release(env, env.Rcpts[i].Index)
				if r.IntN(4) == 0 {
					live.Release(env, env.Rcpts[i].Index)
				}
			}
		}
	}
	rebuilt, _ := NewBook(rebuildQuotas())
	for _, env := range envs {
		rebuilt.Charge(env)
	}
	if got, want := usage(rebuilt), usage(live); got != want {
		t.Fatalf("rebuilt usage\n%s\nwant\n%s", got, want)
	}
	if usage(live) == "" {
		t.Fatal("nothing left to compare")
	}
	for _, env := range envs {
		for i := range env.Rcpts {
			live.Release(env, env.Rcpts[i].Index)
			rebuilt.Release(env, env.Rcpts[i].Index)
			if got, want := usage(rebuilt), usage(live); got != want {
				t.Fatalf("after releasing %d/%d: rebuilt usage\n%s\nwant\n%s", env.ID, i, got, want)
			}
		}
	}
	for _, b := range []*Book{live, rebuilt} {
		if u := usage(b); u != "" || len(b.msgs) != 0 {
			t.Errorf("all released: usage %q, %d messages remembered", u, len(b.msgs))
		}
	}
}

// TestConcurrentAdmit: admissions that race never take a quota past its
// limit, with or without releases in between.
func TestConcurrentAdmit(t *testing.T) {
	const limit, workers, tries = 100, 32, 20
	t.Run("fill", func(t *testing.T) {
		b, _ := NewBook([]Quota{{Name: "g", Messages: limit}, {Name: "rd", Key: RcptDomain, Messages: 1 << 20}})
		var next, admitted atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for range tries {
					if b.Admit(mkEnv(messages.MsgID(next.Add(1)), "s@a.example", 1, "r@x.example", "q@y.example")) == nil {
						admitted.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if got := admitted.Load(); got != limit {
			t.Errorf("admitted %d, want %d", got, limit)
		}
		if got := usage(b); got != "g:=100/100 rd:x.example=100/100 rd:y.example=100/100" {
			t.Errorf("usage %s", got)
		}
	})
	t.Run("churn", func(t *testing.T) {
		b, _ := NewBook([]Quota{{Name: "g", Messages: limit}})
		var next, held, most atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for range 200 {
					env := mkEnv(messages.MsgID(next.Add(1)), "s@a.example", 1, "r@x.example")
					if b.Admit(env) != nil {
						continue
					}
					n := held.Add(1)
					for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
					}
					if u := b.Usage(); len(u) != 1 || u[0].Messages > limit {
						t.Errorf("usage %+v", u)
					}
					held.Add(-1)
					b.Release(env, 0)
				}
			})
		}
		wg.Wait()
		if m := most.Load(); m > limit {
			t.Errorf("%d held at once, limit %d", m, limit)
		}
		if u := usage(b); u != "" || len(b.msgs) != 0 {
			t.Errorf("all released: usage %q, %d messages remembered", u, len(b.msgs))
		}
	})
}

func BenchmarkAdmitRelease(b *testing.B) {
	quotas := []Quota{
		{Name: "global", Messages: 1 << 40, Bytes: 1 << 40},
		{Name: "sender-domain", Key: SenderDomain, Messages: 1 << 40},
		{Name: "rcpt-domain", Key: RcptDomain, Messages: 1 << 40},
	}
	cycle := func(book *Book, env *messages.Envelope) {
		if err := book.Admit(env); err != nil {
			b.Fatal(err)
		}
		for i := range env.Rcpts {
			book.Release(env, env.Rcpts[i].Index)
		}
	}
	b.Run("serial", func(b *testing.B) {
		book, _ := NewBook(quotas)
		env := mkEnv(1, "s@a.example", 4096, "r@x.example", "q@y.example")
		b.ReportAllocs()
		for b.Loop() {
			cycle(book, env)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		book, _ := NewBook(quotas)
		var next atomic.Uint64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			env := mkEnv(messages.MsgID(next.Add(1)), "s@a.example", 4096, "r@x.example", "q@y.example")
			for pb.Next() {
				cycle(book, env)
			}
		})
	})
}

// Retune: a raised limit admits at once, charges made before stay and are
// released as before; a changed set of quotas is refused and changes
// nothing.
func TestRetune(t *testing.T) {
	b, err := NewBook([]Quota{{Name: "per-domain", Key: RcptDomain, Messages: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Admit(mkEnv(1, "s@a.example", 1, "r@x.example")); err != nil {
		t.Fatal(err)
	}
	if err := b.Admit(mkEnv(2, "s@a.example", 1, "q@x.example")); !errors.Is(err, ErrFull) {
		t.Fatalf("second message under a limit of 1: %v", err)
	}
	for _, bad := range [][]Quota{
		{{Name: "per-domain", Key: Sender, Messages: 5}},
		{{Name: "per-domain", Key: RcptDomain, Messages: 5}, {Name: "more", Messages: 1}},
		{},
	} {
		if err := b.Retune(bad); err == nil || !strings.Contains(err.Error(), "restart") {
			t.Errorf("Retune(%v) = %v, want a refusal that says a restart is needed", bad, err)
		}
	}
	if err := b.Retune([]Quota{{Name: "per-domain", Key: RcptDomain, Messages: 2}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Admit(mkEnv(2, "s@a.example", 1, "q@x.example")); err != nil {
		t.Fatalf("second message under the raised limit of 2: %v", err)
	}
	b.Release(mkEnv(1, "s@a.example", 1, "r@x.example"), 0)
	b.Release(mkEnv(2, "s@a.example", 1, "q@x.example"), 0)
	if u := usage(b); u != "" {
		t.Errorf("usage after every release: %q, want none", u)
	}
}
