package expression

import "strings"

// expr-lang reserves "matches" and "contains" as infix operators
// (`s matches re`, `s contains t`). Operators write them as functions, as
// Stalwart's do, so calls are renamed before compiling: outside string
// literals, "matches(" and "contains(" become calls of functions with
// private names.
var renamed = map[string]string{"matches": "mtad_matches", "contains": "mtad_contains"}

func rewriteCalls(src string) string {
	var b strings.Builder
	var quote byte
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case quote != 0:
			if c == '\\' && i+1 < len(src) {
				b.WriteByte(c)
				i++
				c = src[i]
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"' || c == '`':
			quote = c
		case isIdentStart(c) && (i == 0 || !isIdent(src[i-1])):
			j := i
			for j < len(src) && isIdent(src[j]) {
				j++
			}
			word := src[i:j]
			if to, ok := renamed[word]; ok && strings.HasPrefix(strings.TrimLeft(src[j:], " \t"), "(") {
				word = to
			}
			b.WriteString(word)
			i = j - 1
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func isIdentStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isIdent(c byte) bool      { return isIdentStart(c) || c >= '0' && c <= '9' }
