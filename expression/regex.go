package expression

import (
	"fmt"
	"regexp"
	"sync"
)

// regexps caches compiled patterns of matches(); patterns come from the
// configuration, so the set is small and bounded by it.
var regexps sync.Map // string -> *regexp.Regexp

func matches(p ...any) (any, error) {
	pat, s := p[0].(string), p[1].(string)
	if re, ok := regexps.Load(pat); ok {
		return re.(*regexp.Regexp).MatchString(s), nil
	}
	re, err := regexp.Compile(pat)
	if err != nil {
		return nil, fmt.Errorf("matches: bad pattern %q: %w", pat, err)
	}
	regexps.Store(pat, re)
	return re.MatchString(s), nil
}
