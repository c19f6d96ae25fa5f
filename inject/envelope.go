package inject

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mtad/mtad/messages"
	"github.com/mtad/mtad/submission"
)

// The request headers of the message/rfc822 form, lower-cased.
const (
	hdrFrom       = "mtad-from"
	hdrTo         = "mtad-to"
	hdrNotify     = "mtad-notify"
	hdrRet        = "mtad-ret"
	hdrEnvID      = "mtad-envid"
	hdrPriority   = "mtad-priority"
	hdrRequireTLS = "mtad-requiretls"
	hdrMetaPrefix = "mtad-meta-"
	hdrPrefix     = "mtad-"
)

// RFC 3461 bounds: ENVID (4.4) and ORCPT (4.2) values.
const (
	maxEnvID = 100
	maxORcpt = 500
)

// Metadata bounds other than the pair count.
const (
	maxMetaKey   = 64
	maxMetaValue = 1024
)

var errRequireTLS = refuse(http.StatusBadRequest, 555, "5.5.4",
	"REQUIRETLS is not supported by HTTP injection: it needs a TLS submission path (SMTP with STARTTLS or implicit TLS)")

// envelopeFromHeaders reads the envelope of a message/rfc822 request.
func envelopeFromHeaders(h http.Header) (*messages.Envelope, error) {
	meta, err := headerMetadata(h)
	if err != nil {
		return nil, err
	}
	env := &messages.Envelope{Metadata: meta}
	from, err := singleHeader(h, "Mtad-From", true)
	if err == nil {
		env.From, err = parseSender("Mtad-From", from)
	}
	if err != nil {
		return nil, err
	}
	if err := headerParams(h, env); err != nil {
		return nil, err
	}
	notify, err := singleHeader(h, "Mtad-Notify", false)
	if err != nil {
		return nil, err
	}
	n, err := parseNotify("Mtad-Notify", notify)
	if err != nil {
		return nil, err
	}
	var rl rcptList
	for _, v := range h.Values("Mtad-To") {
		for _, a := range splitList(v) {
			if err := rl.add("Mtad-To", a, n, ""); err != nil {
				return nil, err
			}
		}
	}
	env.Rcpts = rl.rcpts
	return env, nil
}

// headerMetadata checks that every Mtad- header is known and returns the
// metadata of the Mtad-Meta- ones; nil when there is none.
func headerMetadata(h http.Header) (map[string]string, error) {
	var meta map[string]string
	for name, vs := range h {
		lname := strings.ToLower(name)
		key, isMeta := strings.CutPrefix(lname, hdrMetaPrefix)
		switch {
		case lname == hdrRequireTLS:
			return nil, errRequireTLS
		case isMeta && len(vs) > 1:
			return nil, badRequest("%s: given %d times", name, len(vs))
		case isMeta:
			if meta == nil {
				meta = make(map[string]string)
			}
			meta[key] = vs[0]
		case strings.HasPrefix(lname, hdrPrefix) && !knownHeader(lname):
			return nil, badRequest("%s: unknown header (known: Mtad-From, Mtad-To, Mtad-Notify, Mtad-Ret, Mtad-Envid, Mtad-Priority, Mtad-Meta-<key>)", name)
		}
	}
	return meta, nil
}

func knownHeader(lname string) bool {
	switch lname {
	case hdrFrom, hdrTo, hdrNotify, hdrRet, hdrEnvID, hdrPriority:
		return true
	}
	return false
}

// hasEnvelopeHeaders reports the first Mtad- header of h, "" if none.
func hasEnvelopeHeaders(h http.Header) string {
	for name := range h {
		if strings.HasPrefix(strings.ToLower(name), hdrPrefix) {
			return name
		}
	}
	return ""
}

// singleHeader returns the one value of header name; absent is "" or,
// when required, an error.
func singleHeader(h http.Header, name string, required bool) (string, error) {
	vs := h.Values(name)
	switch {
	case len(vs) > 1:
		return "", badRequest("%s: given %d times", name, len(vs))
	case len(vs) == 0 && required:
		return "", badRequest("%s: required (empty for the null reverse-path <>)", name)
	case len(vs) == 0:
		return "", nil
	}
	return vs[0], nil
}

// headerParams reads Mtad-Ret, Mtad-Envid and Mtad-Priority into env.
func headerParams(h http.Header, env *messages.Envelope) error {
	ret, err := singleHeader(h, "Mtad-Ret", false)
	if err == nil {
		env.Ret, err = parseRet("Mtad-Ret", ret)
	}
	if err != nil {
		return err
	}
	envid, err := singleHeader(h, "Mtad-Envid", false)
	if err == nil {
		env.EnvID, err = parseEnvID("Mtad-Envid", envid)
	}
	if err != nil {
		return err
	}
	prio, err := singleHeader(h, "Mtad-Priority", false)
	if err != nil || prio == "" {
		return err
	}
	env.Priority, err = strconv.Atoi(strings.TrimSpace(prio))
	if err != nil {
		return badRequest("Mtad-Priority: %q is not an integer", prio)
	}
	return nil
}

// splitList splits a comma-separated list of addresses, leaving commas
// inside quoted local parts alone; empty elements are dropped.
func splitList(s string) []string {
	var out []string
	quoted, escaped, start := false, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case escaped:
			escaped = false
		case quoted && c == '\\':
			escaped = true
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			out = appendNonEmpty(out, s[start:i])
			start = i + 1
		}
	}
	return appendNonEmpty(out, s[start:])
}

func appendNonEmpty(list []string, s string) []string {
	if s = strings.TrimSpace(s); s != "" {
		list = append(list, s)
	}
	return list
}

// rcptList collects recipients, each once (submission.RcptKey), with the
// parameters of its first mention.
type rcptList struct {
	seen  map[string]bool
	rcpts []messages.Recipient
}

// add checks a recipient given in field and adds it.
func (l *rcptList) add(field, addr string, n messages.Notify, orcpt string) error {
	a, err := parsePath(addr)
	if err != nil {
		return refuse(http.StatusBadRequest, 501, "5.1.3", "%s: %q: %v", field, addr, err)
	}
	key := submission.RcptKey(a)
	if l.seen[key] {
		return nil
	}
	if l.seen == nil {
		l.seen = make(map[string]bool)
	}
	l.seen[key] = true
	l.rcpts = append(l.rcpts, messages.Recipient{Index: uint32(len(l.rcpts)), Addr: a, Notify: n, ORcpt: orcpt})
	return nil
}

// parseSender checks a reverse-path; "" and "<>" are the null one.
func parseSender(field, s string) (string, error) {
	if s = strings.TrimSpace(s); s == "" || s == "<>" {
		return "", nil
	}
	a, err := parsePath(s)
	if err != nil {
		return "", refuse(http.StatusBadRequest, 501, "5.1.7", "%s: %q: %v", field, s, err)
	}
	return a, nil
}

// parsePath checks an SMTP path, a@b or <a@b>, its local part a
// dot-string or a quoted string, and returns it in canonical form
// (submission.CheckAddress). UTF-8 is allowed: the envelope says SMTPUTF8
// then.
func parsePath(s string) (string, error) {
	s = strings.TrimSpace(s)
	if inner, ok := strings.CutPrefix(s, "<"); ok {
		if s, ok = strings.CutSuffix(inner, ">"); !ok {
			return "", errors.New("unbalanced <")
		}
	}
	local, domain, err := splitPath(s)
	if err != nil {
		return "", err
	}
	a, err := submission.CheckAddress(local+"@"+domain, true)
	if err != nil {
		return "", submission.ErrAddressSyntax
	}
	return a, nil
}

// splitPath splits an address at its "@", unquoting a quoted local part.
func splitPath(s string) (local, domain string, err error) {
	switch {
	case s == "":
		return "", "", errors.New("empty address")
	case s[0] == '"':
		local, s, err = unquote(s)
		if err != nil {
			return "", "", err
		}
		if !strings.HasPrefix(s, "@") {
			return "", "", errors.New("missing domain")
		}
		domain = s[1:]
	default:
		var ok bool
		if local, domain, ok = strings.Cut(s, "@"); !ok {
			return "", "", errors.New("missing domain")
		}
	}
	switch {
	case local == "":
		return "", "", errors.New("missing local part")
	case domain == "":
		return "", "", errors.New("missing domain")
	}
	return local, domain, nil
}

// unquote reads the quoted string at the start of s and returns its
// content and the rest of s.
func unquote(s string) (content, rest string, err error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:], nil
		case '\\':
			if i++; i == len(s) {
				return "", "", errors.New("unterminated quoted string")
			}
			b.WriteByte(s[i])
		default:
			b.WriteByte(c)
		}
	}
	return "", "", errors.New("unterminated quoted string")
}

// parseNotify reads a NOTIFY value of RFC 3461 4.1: NEVER, or a list of
// SUCCESS, FAILURE and DELAY. "" is unset.
func parseNotify(field, s string) (messages.Notify, error) {
	if strings.TrimSpace(s) == "" {
		return 0, nil
	}
	var n messages.Notify
	for _, p := range strings.Split(s, ",") {
		switch strings.ToUpper(strings.TrimSpace(p)) {
		case "NEVER":
			n |= messages.NotifyNever
		case "SUCCESS":
			n |= messages.NotifySuccess
		case "FAILURE":
			n |= messages.NotifyFailure
		case "DELAY":
			n |= messages.NotifyDelay
		default:
			return 0, badRequest("%s: %q is not NEVER, SUCCESS, FAILURE or DELAY", field, strings.TrimSpace(p))
		}
	}
	if n&messages.NotifyNever != 0 && n != messages.NotifyNever {
		return 0, badRequest("%s: NEVER goes alone (RFC 3461 4.1)", field)
	}
	return n, nil
}

// parseRet reads RET (RFC 3461 4.3): FULL or HDRS, "" for unset.
func parseRet(field, s string) (messages.Ret, error) {
	switch r := messages.Ret(strings.ToUpper(strings.TrimSpace(s))); r {
	case messages.RetUnset, messages.RetFull, messages.RetHdrs:
		return r, nil
	}
	return "", badRequest("%s: %q is not FULL or HDRS", field, s)
}

// parseEnvID checks ENVID (RFC 3461 4.4): at most 100 printable ASCII
// characters.
func parseEnvID(field, s string) (string, error) {
	if len(s) > maxEnvID {
		return "", badRequest("%s: %d characters, at most %d", field, len(s), maxEnvID)
	}
	if strings.IndexFunc(s, notGraphicASCII) >= 0 {
		return "", badRequest("%s: %q: only printable ASCII without spaces", field, s)
	}
	return s, nil
}

func notGraphicASCII(r rune) bool { return r <= ' ' || r >= 0x7f }

// parseORcpt checks ORCPT (RFC 3461 4.2), "addr-type;address" with the
// address decoded; "" is unset.
func parseORcpt(field, s string) (string, error) {
	if s == "" {
		return "", nil
	}
	typ, addr, ok := strings.Cut(s, ";")
	switch {
	case !ok || typ == "" || addr == "":
		return "", badRequest("%s: %q is not addr-type;address (rfc822;a@example.com)", field, s)
	case len(s) > maxORcpt:
		return "", badRequest("%s: %d bytes, at most %d", field, len(s), maxORcpt)
	case strings.IndexFunc(typ, notAtomChar) >= 0:
		return "", badRequest("%s: address type %q is not an atom", field, typ)
	case !utf8.ValidString(addr) || strings.IndexFunc(addr, unicode.IsControl) >= 0 || strings.ContainsRune(addr, ' '):
		return "", badRequest("%s: %q: the address holds spaces or control characters", field, addr)
	}
	return s, nil
}

func notAtomChar(r rune) bool {
	return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-')
}

// checkMetadata applies the bounds of Config.MaxMetadata.
func checkMetadata(m map[string]string, max int) error {
	if len(m) > max {
		return badRequest("metadata: %d pairs, at most %d", len(m), max)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := checkMetaPair(k, m[k]); err != nil {
			return badRequest("metadata %q: %v", k, err)
		}
	}
	return nil
}

func checkMetaPair(k, v string) error {
	switch {
	case k == "" || len(k) > maxMetaKey || strings.IndexFunc(k, notMetaKeyChar) >= 0:
		return fmt.Errorf("a key is 1 to %d of a-z, 0-9, _ and -", maxMetaKey)
	case len(v) > maxMetaValue:
		return fmt.Errorf("value of %d bytes, at most %d", len(v), maxMetaValue)
	case !utf8.ValidString(v):
		return errors.New("value is not UTF-8")
	case strings.IndexFunc(v, unicode.IsControl) >= 0:
		return errors.New("value holds control characters")
	}
	return nil
}

func notMetaKeyChar(r rune) bool {
	return !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '_' || r == '-')
}
