package limits

import "strings"

// Key builds the key of a limit from its name and the values of its key
// fields, in order: Key("gmail", "rcpt_domain=gmail.com",
// "local_ip=192.0.2.1") is "gmail|rcpt_domain=gmail.com|local_ip=192.0.2.1".
// Parts are joined with '|', and '|' and '\' inside a name or part are
// escaped with '\', so two different lists never give the same key.
func Key(limit string, parts ...string) string {
	n := len(limit)
	for _, p := range parts {
		n += 1 + len(p)
	}
	var b strings.Builder
	b.Grow(n)
	writeEscaped(&b, limit)
	for _, p := range parts {
		b.WriteByte('|')
		writeEscaped(&b, p)
	}
	return b.String()
}

func writeEscaped(b *strings.Builder, s string) {
	if !strings.ContainsAny(s, `|\`) {
		b.WriteString(s)
		return
	}
	for i := 0; i < len(s); i++ {
		if s[i] == '|' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
}
