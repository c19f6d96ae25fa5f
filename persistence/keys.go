package persistence

import (
	"encoding/binary"
	"fmt"

	"github.com/mtad/mtad/messages"
)

// Key layout. Every key starts with a one-byte prefix naming the kind of
// record, followed by big-endian integers, so that a scan of one prefix
// visits one kind of record in id order:
//
//	'b' id(8) chunk(4)  one chunk of a message body, raw; written once, deleted once
//	'b' id(8)           a whole body, raw: the form written before chunks; read, never written
//	'e' id(8)           envelope without recipients; written once, deleted once
//	'p' id(8)           a body being streamed (BodyWriter) whose envelope is not written yet
//	'r' id(8) index(4)  one recipient and its delivery state; rewritten by Update
//	'm' name            journal metadata (schema version, id high-water mark)
//
// A body is chunks 0 to n-1 with no gap, each bodyChunkSize bytes but the
// last, which holds 1 to bodyChunkSize bytes; an empty body is one empty
// chunk 0. Readers take the size from the chunks themselves and do not
// rely on bodyChunkSize, so changing it changes no format. A body in the
// old single-record form sorts before the chunks of its id, so one range
// scan, [bodyLower(id), bodyUpper(id)), finds a body in either form.
const (
	prefixBody     byte = 'b'
	prefixEnvelope byte = 'e'
	prefixPending  byte = 'p'
	prefixRcpt     byte = 'r'
	prefixMeta     byte = 'm'
)

const (
	idKeyLen    = 1 + 8
	rcptKeyLen  = 1 + 8 + 4
	chunkKeyLen = 1 + 8 + 4
)

// Metadata keys.
var (
	metaSchema = []byte{prefixMeta, 's', 'c', 'h', 'e', 'm', 'a'}
	metaNextID = []byte{prefixMeta, 'n', 'e', 'x', 't', 'i', 'd'}
	// metaChunked holds the first id whose body can only be chunked: ids
	// below it may have a body in the old single-record form.
	metaChunked = []byte{prefixMeta, 'c', 'h', 'u', 'n', 'k', 'e', 'd'}
)

func idKey(prefix byte, id messages.MsgID) []byte {
	k := make([]byte, idKeyLen, rcptKeyLen)
	k[0] = prefix
	binary.BigEndian.PutUint64(k[1:], uint64(id))
	return k
}

// legacyBodyKey is the key of a body in the old single-record form.
func legacyBodyKey(id messages.MsgID) []byte { return idKey(prefixBody, id) }
func envelopeKey(id messages.MsgID) []byte   { return idKey(prefixEnvelope, id) }
func pendingKey(id messages.MsgID) []byte    { return idKey(prefixPending, id) }

func chunkKey(id messages.MsgID, chunk uint32) []byte {
	return binary.BigEndian.AppendUint32(idKey(prefixBody, id), chunk)
}

// bodyLower and bodyUpper bound every body key of message id, in either
// form. The upper bound is longer than any chunk key of id, so that it
// needs no id+1, which would overflow for the largest id.
func bodyLower(id messages.MsgID) []byte { return legacyBodyKey(id) }
func bodyUpper(id messages.MsgID) []byte {
	return append(idKey(prefixBody, id), 0xff, 0xff, 0xff, 0xff, 0xff)
}

func rcptKey(id messages.MsgID, index uint32) []byte {
	return binary.BigEndian.AppendUint32(idKey(prefixRcpt, id), index)
}

// prefixBounds returns the lower and upper bounds of all keys starting
// with prefix.
func prefixBounds(prefix byte) (lower, upper []byte) {
	return []byte{prefix}, []byte{prefix + 1}
}

// parseIDKey returns the id of an envelope or pending key, or of a body in
// the old form.
func parseIDKey(key []byte) (messages.MsgID, error) {
	if len(key) != idKeyLen {
		return 0, fmt.Errorf("key of %d bytes, want %d", len(key), idKeyLen)
	}
	return messages.MsgID(binary.BigEndian.Uint64(key[1:])), nil
}

// parseBodyKey returns the message id of a body key and its chunk index;
// legacy says the key is of the old single-record form (chunk is then 0).
func parseBodyKey(key []byte) (id messages.MsgID, chunk uint32, legacy bool, err error) {
	switch len(key) {
	case idKeyLen:
		id, err = parseIDKey(key)
		return id, 0, true, err
	case chunkKeyLen:
		return messages.MsgID(binary.BigEndian.Uint64(key[1:])), binary.BigEndian.Uint32(key[9:]), false, nil
	}
	return 0, 0, false, fmt.Errorf("body key of %d bytes, want %d or %d", len(key), chunkKeyLen, idKeyLen)
}

// parseRcptKey returns the message id and recipient index of a recipient key.
func parseRcptKey(key []byte) (messages.MsgID, uint32, error) {
	if len(key) != rcptKeyLen {
		return 0, 0, fmt.Errorf("key of %d bytes, want %d", len(key), rcptKeyLen)
	}
	id := messages.MsgID(binary.BigEndian.Uint64(key[1:]))
	return id, binary.BigEndian.Uint32(key[9:]), nil
}

// keyID returns the id of any body, envelope, pending or recipient key.
func keyID(key []byte) (messages.MsgID, error) {
	if len(key) == 0 {
		return 0, fmt.Errorf("empty key")
	}
	switch key[0] {
	case prefixRcpt:
		id, _, err := parseRcptKey(key)
		return id, err
	case prefixBody:
		id, _, _, err := parseBodyKey(key)
		return id, err
	}
	return parseIDKey(key)
}
