package tlsrpt

import (
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Limits on the text a result carries into a report: the policy text
// comes from the recipient's DNS and web server, and an MTA-STS policy is
// at most 64 KiB (RFC 8461 section 3.3).
const (
	maxPolicyStrings = 256
	maxStringLen     = 1024
	maxReasonLen     = 256
)

// normalizeResult returns the policy domain and the policy of res, or
// false when the domain is not a host name or the type is unknown.
func normalizeResult(res Result) (string, policyID, bool) {
	domain, ok := hostname(res.Domain)
	if !ok {
		return "", policyID{}, false
	}
	id := policyID{typ: res.PolicyType}
	switch id.typ {
	case "", PolicyNone:
		id.typ = PolicyNone
		return domain, id, true
	case PolicySTS:
	case PolicyTLSA:
		id.host, _ = hostname(res.MXHost)
	default:
		return "", policyID{}, false
	}
	id.strings = policyStrings(res.PolicyStrings)
	return domain, id, true
}

// normalizeDetail returns the failure-detail group of a failed res and
// its reason: an unknown result type is a validation-failure (RFC 8460
// section 4.3, "a general failure for a reason not matching a category
// above"), an address that does not parse is left out.
func normalizeDetail(res Result) (detailKey, string) {
	k := detailKey{resultType: res.ResultType}
	if !resultTypes[k.resultType] {
		k.resultType = ResultValidationFailure
	}
	k.sendingIP = ipText(res.SendingIP)
	k.receivingIP = ipText(res.ReceivingIP)
	k.mxHost, _ = hostname(res.MXHost)
	return k, clean(res.FailureReason, maxReasonLen)
}

func policyStrings(in []string) []string {
	var out []string
	for _, s := range in {
		if len(out) == maxPolicyStrings {
			break
		}
		if s = clean(s, maxStringLen); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// stsMX returns the mx patterns of MTA-STS policy lines (RFC 8461 section
// 3.2), for the mx-host field.
func stsMX(lines []string) []string {
	var mx []string
	for _, l := range lines {
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.TrimSpace(k) == "mx" {
			if v = strings.TrimSpace(v); v != "" {
				mx = append(mx, v)
			}
		}
	}
	return mx
}

// hostname returns name in lower case, without a trailing dot and in
// ASCII (A-labels, RFC 8460 section 4.3), or false when it is not a host
// name: labels of letters, digits, hyphens and underscores.
func hostname(name string) (string, bool) {
	name = strings.TrimSuffix(name, ".")
	if !isASCII(name) {
		a, err := idna.Lookup.ToASCII(name)
		if err != nil {
			return "", false
		}
		name = a
	}
	name = strings.ToLower(name)
	if name == "" || len(name) > 253 {
		return "", false
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return "", false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", false
			}
		}
	}
	return name, true
}

// ipText returns s as a canonical address, or "" when it is not one.
func ipText(s string) string {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return ""
	}
	return a.Unmap().WithZone("").String()
}

// clean returns s with each run of spaces, control characters and invalid
// UTF-8 made one space, trimmed, and cut to at most n bytes on a
// character boundary.
func clean(s string, n int) string {
	var b strings.Builder
	space := false
	for _, c := range s {
		if c == utf8.RuneError || c <= ' ' || c == 0x7f || c >= 0x80 && c < 0xa0 {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			if b.Len()+1 >= n {
				break
			}
			b.WriteByte(' ')
		}
		space = false
		if b.Len()+utf8.RuneLen(c) > n {
			break
		}
		b.WriteRune(c)
	}
	return strings.TrimSpace(b.String())
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
