package maildir

import (
	"errors"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/mtad/mtad/messages"
)

// maxName is the longest directory name allowed (NAME_MAX on common
// filesystems).
const maxName = 255

// mailboxDir returns the mailbox directory of addr, <Root>/<domain>/<local>,
// or false when addr does not split into two safe path elements. It does no
// I/O.
func (s *Store) mailboxDir(addr string) (string, bool) {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 || !utf8.ValidString(addr) {
		return "", false
	}
	local, domain := addr[:i], strings.ToLower(addr[i+1:])
	if !safeName(local) || !safeName(domain) {
		return "", false
	}
	return filepath.Join(s.Root, domain, local), true
}

// safeName reports whether name can be used as one directory name under the
// root: not empty, at most maxName bytes, no '/', not starting with '.'
// (which also rules out "." and ".."), and no control characters (which
// also rules out NUL and keeps CR and LF out of the Delivered-To line).
func safeName(name string) bool {
	if name == "" || len(name) > maxName || name[0] == '.' {
		return false
	}
	return !strings.ContainsRune(name, '/') && !hasControl(name)
}

// hasControl reports whether s holds an ASCII control character.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// Lookup reports whether addr has a mailbox, for checks at RCPT time: a
// 550 5.1.1 or 550 5.1.3 reply when it does not, or a temporary reply when
// that cannot be told. It does not create anything.
func (s *Store) Lookup(addr string) *messages.Reply {
	mbox, ok := s.mailboxDir(addr)
	if !ok {
		r := replyBadAddress
		return &r
	}
	switch err := checkMailbox(mbox); {
	case err == nil:
		return nil
	case errors.Is(err, errNoMailbox):
		r := replyNoMailbox
		return &r
	default:
		r := messages.Reply{Code: 451, Enhanced: "4.3.0", Text: "mailbox lookup failed", Class: ClassLocal}
		return &r
	}
}
