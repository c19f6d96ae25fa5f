package expression

import (
	"strings"
	"testing"
)

func TestFunctions(t *testing.T) {
	f := Funcs{LocalDomains: []string{"Local.Test"}}
	cases := []struct {
		src  string
		env  Env
		want string
	}{
		{`is_local_domain(rcpt_domain) ? 'local' : 'mx'`, Env{RcptDomain: "local.test"}, "local"},
		{`is_local_domain(rcpt_domain) ? 'local' : 'mx'`, Env{RcptDomain: "else.test"}, "mx"},
		{`matches('^news[0-9]+@', sender) ? 'bulk' : 'tx'`, Env{Sender: "news42@x.test"}, "bulk"},
		{`contains(rcpt, '+') ? 'a' : 'b'`, Env{Rcpt: "a+b@x.test"}, "a"},
		{`starts_with(mx, 'mx1.') ? 'a' : 'b'`, Env{MX: "mx1.x.test"}, "a"},
		{`ends_with(rcpt_domain, '.example') ? 'a' : 'b'`, Env{RcptDomain: "x.test"}, "b"},
		{`lower(sender_domain)`, Env{SenderDomain: "BIG.Test"}, "big.test"},
		{`retry_num > 3 && last_error == 'tls' ? 'plain' : 'secure'`, Env{RetryNum: 4, LastError: "tls"}, "plain"},
		{`tenant == 'acme' ? 'acme-pool' : 'shared'`, Env{Tenant: "acme"}, "acme-pool"},
		{`metadata['campaign'] == 'black-friday' ? 'bulk' : 'tx'`, Env{Metadata: map[string]string{"campaign": "black-friday"}}, "bulk"},
		{`metadata['campaign'] == '' ? 'none' : 'some'`, Env{}, "none"},
		{`metadata['other'] == '' ? 'none' : 'some'`, Env{Metadata: map[string]string{"campaign": "x"}}, "none"},
	}
	for _, c := range cases {
		t.Run(c.src, func(t *testing.T) {
			s, err := Compile("k", c.src, f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Eval(&c.env)
			if err != nil || got != c.want {
				t.Errorf("= %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

func TestListForm(t *testing.T) {
	raw := []any{
		map[string]any{"if": "priority < 0", "then": "'bulk'"},
		map[string]any{"if": "size > 1000000", "then": "'big'"},
		map[string]any{"else": "'default'"},
	}
	s, err := Compile("queue.strategy.schedule", raw, Funcs{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		env  Env
		want string
	}{{Env{Priority: -1}, "bulk"}, {Env{Size: 2000000}, "big"}, {Env{}, "default"}} {
		if got, _ := s.Eval(&c.env); got != c.want {
			t.Errorf("%+v: %q, want %q", c.env, got, c.want)
		}
	}
	names := s.Names()
	if len(names) != 3 || names["big"] != "queue.strategy.schedule[1]" {
		t.Errorf("Names() = %v", names)
	}
}

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		name string
		raw  any
		want string
	}{
		{"unknown variable", "nonsense == 1 ? 'a' : 'b'", "k"},
		{"not a string", "1 + 2", "k"},
		{"if not bool", []any{map[string]any{"if": "rcpt", "then": "'a'"}, map[string]any{"else": "'b'"}}, "k[0].if"},
		{"else first", []any{map[string]any{"else": "'b'"}, map[string]any{"if": "true", "then": "'a'"}}, "k[0]"},
		{"extra key", []any{map[string]any{"if": "true", "then": "'a'", "than": "x"}, map[string]any{"else": "'b'"}}, "than"},
		{"wrong type", 42, "k"},
		{"empty list", []any{}, "k"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Compile("k", c.raw, Funcs{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want one naming %q", err, c.want)
			}
		})
	}
}

func TestBadRegexIsRunTimeError(t *testing.T) {
	s, err := Compile("k", "matches('(', rcpt) ? 'a' : 'b'", Funcs{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Eval(&Env{Rcpt: "x"}); err == nil || !strings.Contains(err.Error(), "k") {
		t.Errorf("want an error naming the key, got %v", err)
	}
}

func BenchmarkEval(b *testing.B) {
	raw := []any{
		map[string]any{"if": "is_local_domain(rcpt_domain)", "then": "'local'"},
		map[string]any{"if": "retry_num > 3", "then": "'backup'"},
		map[string]any{"else": "'mx'"},
	}
	s, err := Compile("k", raw, Funcs{LocalDomains: []string{"l.test"}})
	if err != nil {
		b.Fatal(err)
	}
	env := Env{RcptDomain: "x.test", RetryNum: 1}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Eval(&env); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzCompile(f *testing.F) {
	for _, s := range []string{"'mx'", "retry_num > 3 ? 'a' : 'b'", "matches('x', rcpt) ? 'a' : 'b'", "lower(rcpt)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		s, err := Compile("k", src, Funcs{})
		if err != nil {
			return
		}
		_, _ = s.Eval(&Env{Rcpt: "a@b.test"})
	})
}
