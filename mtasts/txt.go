package mtasts

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidRecord is wrapped by every error of ParseTXT.
var ErrInvalidRecord = errors.New("mtasts: invalid txt record")

const txtVersion = "v=" + version

// ParseTXT parses an MTA-STS TXT record (RFC 8461 section 3.1),
// "v=STSv1; id=20160831085700Z;", and returns its id: 1 to 32 letters and
// digits. The record must start with the version; fields are separated by
// ';' with optional blanks; extension fields ("name=value") are ignored.
// A record of several strings is given concatenated, without spaces.
func ParseTXT(s string) (id string, err error) {
	fields := strings.Split(s, ";")
	if strings.TrimRight(fields[0], " \t") != txtVersion {
		return "", fmt.Errorf("%w: %q does not start with %s", ErrInvalidRecord, truncate(s), txtVersion)
	}
	for _, field := range fields[1:] {
		field = strings.Trim(field, " \t")
		if field == "" {
			continue // a trailing ';', or one too many
		}
		name, value, ok := strings.Cut(field, "=")
		switch {
		case !ok || name == "" || value == "":
			return "", fmt.Errorf("%w: field %q is not name=value", ErrInvalidRecord, truncate(field))
		case name != "id":
			continue
		case id != "":
			return "", fmt.Errorf("%w: id given twice", ErrInvalidRecord)
		case !validID(value):
			return "", fmt.Errorf("%w: id %q is not 1 to 32 letters and digits", ErrInvalidRecord, truncate(value))
		}
		id = value
	}
	if id == "" {
		return "", fmt.Errorf("%w: no id", ErrInvalidRecord)
	}
	return id, nil
}

func validID(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// stsRecord returns the one record of records that is an MTA-STS record
// (section 3.1: records that do not begin with "v=STSv1" are discarded),
// or false when there is none or more than one.
func stsRecord(records []string) (string, bool) {
	var found []string
	for _, r := range records {
		rest, ok := strings.CutPrefix(r, txtVersion)
		if ok && (rest == "" || rest[0] == ';' || rest[0] == ' ' || rest[0] == '\t') {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		return "", false
	}
	return found[0], true
}
