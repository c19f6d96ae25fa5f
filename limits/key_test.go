package limits

import (
	"slices"
	"testing"
)

func TestKey(t *testing.T) {
	for _, tc := range []struct {
		limit string
		parts []string
		want  string
	}{
		{"gmail", []string{"rcpt_domain=gmail.com", "local_ip=192.0.2.1"}, "gmail|rcpt_domain=gmail.com|local_ip=192.0.2.1"},
		{"global", nil, "global"},
		{"a|b", []string{`c\d`}, `a\|b|c\\d`},
	} {
		if got := Key(tc.limit, tc.parts...); got != tc.want {
			t.Errorf("Key(%q, %q) = %q, want %q", tc.limit, tc.parts, got, tc.want)
		}
	}
}

func TestKeyNoCollisions(t *testing.T) {
	lists := [][]string{
		{"l", "a=b", "c"}, {"l", "a", "b=c"},
		{"a=b", "c"}, {"a", "b=c"},
		{"a|b"}, {"a", "b"},
		{"a", ""}, {"a"}, {"a|"}, {"a", "", ""},
		{`a\`, "b"}, {`a\|b`}, {`a\\|b`}, {`a\`, `|b`},
		{"", ""}, {""}, {"|"}, {`\`}, {`\|`},
	}
	seen := map[string][]string{}
	for _, l := range lists {
		k := Key(l[0], l[1:]...)
		if prev, ok := seen[k]; ok {
			t.Errorf("Key(%q) = Key(%q) = %q", l, prev, k)
		}
		seen[k] = l
	}
}

// splitKey undoes Key: that it always can shows that Key is one-to-one.
func splitKey(k string) []string {
	var out []string
	var cur []byte
	for i := 0; i < len(k); i++ {
		switch k[i] {
		case '\\':
			i++
			cur = append(cur, k[i])
		case '|':
			out, cur = append(out, string(cur)), nil
		default:
			cur = append(cur, k[i])
		}
	}
	return append(out, string(cur))
}

func FuzzKey(f *testing.F) {
	f.Add("gmail", "rcpt_domain=gmail.com", "local_ip=192.0.2.1")
	f.Add(`a\`, "|b", "")
	f.Fuzz(func(t *testing.T, limit, a, b string) {
		want := []string{limit, a, b}
		if got := splitKey(Key(limit, a, b)); !slices.Equal(got, want) {
			t.Fatalf("splitKey(Key(%q)) = %q", want, got)
		}
	})
}
