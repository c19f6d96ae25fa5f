// Package expression compiles the operator's strategy selectors once, at
// configuration load, and evaluates them per recipient at run time.
//
// A selector is written in TOML either as a bare expression ("'mx'") or as a
// list of { if, then } items closed by one { else }. Expressions use
// github.com/expr-lang/expr over the variables of Env. A selector that does
// not compile, names an unknown variable or does not yield a string is an
// error at load that names its key; nothing falls back silently at run time.
package expression

import (
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
)

// Env is what an expression can see. Fields are filled where the context
// has them and are zero otherwise.
type Env struct {
	Rcpt         string `expr:"rcpt"`
	RcptDomain   string `expr:"rcpt_domain"`
	Sender       string `expr:"sender"`
	SenderDomain string `expr:"sender_domain"`
	Recipients   int    `expr:"recipients"`
	Priority     int    `expr:"priority"`
	Size         int64  `expr:"size"`
	RetryNum     int    `expr:"retry_num"`
	NotifyNum    int    `expr:"notify_num"`
	QueueName    string `expr:"queue_name"`
	QueueAge     int64  `expr:"queue_age"`  // seconds since arrival
	ExpiresIn    int64  `expr:"expires_in"` // seconds until expiry
	LastError    string `expr:"last_error"`
	LastStatus   int    `expr:"last_status"`
	Source       string `expr:"source"`
	ReceivedFrom string `expr:"received_from_ip"`
	MX           string `expr:"mx"`
	RemoteIP     string `expr:"remote_ip"`
	LocalIP      string `expr:"local_ip"`

	// What an HTTP injection attached: metadata["key"] is "" when absent;
	// tenant and campaign are metadata["tenant"] and metadata["campaign"].
	Metadata map[string]string `expr:"metadata"`
	Tenant   string            `expr:"tenant"`
	Campaign string            `expr:"campaign"`
}

// Funcs are the functions expressions may call besides expr's builtins.
type Funcs struct {
	// LocalDomains answers is_local_domain(d).
	LocalDomains []string
}

// Selector is a compiled strategy selector: it yields a strategy name.
type Selector struct {
	key      string
	branches []branch // evaluated in order; the last has no condition
}

type branch struct {
	cond   *vm.Program // nil for else
	then   *vm.Program
	source string
	lit    string // the result when then is a string literal
	isLit  bool
}

// Compile compiles a selector from its decoded TOML value: a string or a
// list of tables. key is the configuration key, used in errors.
func Compile(key string, raw any, f Funcs) (*Selector, error) {
	s := &Selector{key: key}
	switch v := raw.(type) {
	case string:
		b, err := compileThen(key, v, f)
		if err != nil {
			return nil, err
		}
		s.branches = []branch{b}
	case []any:
		if err := s.compileList(v, f); err != nil {
			return nil, err
		}
	case nil:
		return nil, fmt.Errorf("%s: missing", key)
	default:
		return nil, fmt.Errorf("%s: want an expression string or a list of { if, then } items ending with { else }, got %T", key, raw)
	}
	return s, nil
}

func (s *Selector) compileList(items []any, f Funcs) error {
	for i, it := range items {
		ik := fmt.Sprintf("%s[%d]", s.key, i)
		m, ok := it.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: want a table { if, then } or { else }, got %T", ik, it)
		}
		b, isElse, err := compileItem(ik, m, f)
		if err != nil {
			return err
		}
		if isElse != (i == len(items)-1) {
			return fmt.Errorf("%s: the list must end with exactly one { else = ... } item", ik)
		}
		s.branches = append(s.branches, b)
	}
	if len(s.branches) == 0 {
		return fmt.Errorf("%s: empty list", s.key)
	}
	return nil
}

func compileItem(key string, m map[string]any, f Funcs) (branch, bool, error) {
	for k := range m {
		if k != "if" && k != "then" && k != "else" {
			return branch{}, false, fmt.Errorf("%s: unknown key %q (want if, then or else)", key, k)
		}
	}
	if e, ok := m["else"]; ok {
		if len(m) != 1 {
			return branch{}, false, fmt.Errorf("%s: an else item takes no if or then", key)
		}
		src, ok := e.(string)
		if !ok {
			return branch{}, false, fmt.Errorf("%s.else: want an expression string", key)
		}
		b, err := compileThen(key+".else", src, f)
		return b, true, err
	}
	cond, ok1 := m["if"].(string)
	then, ok2 := m["then"].(string)
	if !ok1 || !ok2 {
		return branch{}, false, fmt.Errorf("%s: want both if and then as expression strings", key)
	}
	b, err := compileThen(key+".then", then, f)
	if err != nil {
		return branch{}, false, err
	}
	b.cond, err = expr.Compile(rewriteCalls(cond), options(f, expr.AsBool())...)
	if err != nil {
		return branch{}, false, fmt.Errorf("%s.if: %s", key, oneLine(err))
	}
	return b, false, nil
}

func compileThen(key, src string, f Funcs) (branch, error) {
	p, err := expr.Compile(rewriteCalls(src), options(f, expr.AsKind(reflect.String))...)
	if err != nil {
		return branch{}, fmt.Errorf("%s: %s", key, oneLine(err))
	}
	b := branch{then: p, source: src}
	// A then that needs no variables is a constant: evaluate it now so its
	// name can be checked against the defined strategies at load.
	if lit, err := expr.Eval(rewriteCalls(src), nil); err == nil {
		if s, ok := lit.(string); ok {
			b.lit, b.isLit = s, true
		}
	}
	return b, nil
}

func options(f Funcs, extra expr.Option) []expr.Option {
	local := make(map[string]bool, len(f.LocalDomains))
	for _, d := range f.LocalDomains {
		local[strings.ToLower(d)] = true
	}
	return []expr.Option{
		expr.Env(Env{}),
		extra,
		expr.Function("is_local_domain", func(p ...any) (any, error) {
			return local[strings.ToLower(p[0].(string))], nil
		}, new(func(string) bool)),
		expr.Function("mtad_matches", matches, new(func(string, string) bool)),
		expr.Function("lower", func(p ...any) (any, error) {
			return strings.ToLower(p[0].(string)), nil
		}, new(func(string) string)),
		expr.Function("mtad_contains", func(p ...any) (any, error) {
			return strings.Contains(p[0].(string), p[1].(string)), nil
		}, new(func(string, string) bool)),
		expr.Function("starts_with", func(p ...any) (any, error) {
			return strings.HasPrefix(p[0].(string), p[1].(string)), nil
		}, new(func(string, string) bool)),
		expr.Function("ends_with", func(p ...any) (any, error) {
			return strings.HasSuffix(p[0].(string), p[1].(string)), nil
		}, new(func(string, string) bool)),
	}
}

func oneLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// Names returns the strategy names the selector can yield that are known
// at load (its string literals), with the key of each, so the
// configuration can check that each names a definition.
func (s *Selector) Names() map[string]string {
	out := map[string]string{}
	for i, b := range s.branches {
		if !b.isLit {
			continue
		}
		if len(s.branches) == 1 {
			out[b.lit] = s.key
		} else {
			out[b.lit] = fmt.Sprintf("%s[%d]", s.key, i)
		}
	}
	return out
}

// Key is the configuration key the selector was read from.
func (s *Selector) Key() string { return s.key }

// vms reuses expr's virtual machines: a fresh one per evaluation would
// allocate its stacks every time.
var vms = sync.Pool{New: func() any { return new(vm.VM) }}

// Eval picks the strategy name for env. It is safe for concurrent use.
func (s *Selector) Eval(env *Env) (string, error) {
	m := vms.Get().(*vm.VM)
	defer vms.Put(m)
	for _, b := range s.branches {
		if b.cond != nil {
			ok, err := m.Run(b.cond, env)
			if err != nil {
				return "", fmt.Errorf("%s: %w", s.key, err)
			}
			if ok != true {
				continue
			}
		}
		if b.isLit {
			return b.lit, nil
		}
		v, err := m.Run(b.then, env)
		if err != nil {
			return "", fmt.Errorf("%s: %w", s.key, err)
		}
		return v.(string), nil
	}
	return "", fmt.Errorf("%s: no branch matched", s.key)
}

// Predicate is a compiled boolean expression (a limit's or quota's match).
type Predicate struct {
	key string
	p   *vm.Program
}

// CompileBool compiles a boolean expression; key names it in errors.
func CompileBool(key, src string, f Funcs) (*Predicate, error) {
	p, err := expr.Compile(rewriteCalls(src), options(f, expr.AsBool())...)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", key, oneLine(err))
	}
	return &Predicate{key: key, p: p}, nil
}

// Eval evaluates the predicate for env. It is safe for concurrent use.
func (p *Predicate) Eval(env *Env) (bool, error) {
	m := vms.Get().(*vm.VM)
	defer vms.Put(m)
	v, err := m.Run(p.p, env)
	if err != nil {
		return false, fmt.Errorf("%s: %w", p.key, err)
	}
	return v == true, nil
}
