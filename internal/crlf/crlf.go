// Package crlf answers, fast, whether text has CRLF line ends only.
package crlf

import "bytes"

// Only reports whether every CR and every LF in b is part of a CRLF pair
// that lies wholly within b. It scans with the SIMD searches of package
// bytes: a run of mail text is checked at memory speed.
func Only(b []byte) bool {
	lf := 0
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			break
		}
		i += j
		if i == 0 || b[i-1] != '\r' {
			return false
		}
		lf++
		i++
	}
	// Every LF has its CR; any other CR is bare.
	return bytes.Count(b, []byte{'\r'}) == lf
}
