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
//	'b' id(8)           message body, raw; written once, deleted once
//	'e' id(8)           envelope without recipients; written once, deleted once
//	'r' id(8) index(4)  one recipient and its delivery state; rewritten by Update
//	'm' name            journal metadata (schema version, id high-water mark)
const (
	prefixBody     byte = 'b'
	prefixEnvelope byte = 'e'
	prefixRcpt     byte = 'r'
	prefixMeta     byte = 'm'
)

const (
	idKeyLen   = 1 + 8
	rcptKeyLen = 1 + 8 + 4
)

// Metadata keys.
var (
	metaSchema = []byte{prefixMeta, 's', 'c', 'h', 'e', 'm', 'a'}
	metaNextID = []byte{prefixMeta, 'n', 'e', 'x', 't', 'i', 'd'}
)

func idKey(prefix byte, id messages.MsgID) []byte {
	k := make([]byte, idKeyLen, rcptKeyLen)
	k[0] = prefix
	binary.BigEndian.PutUint64(k[1:], uint64(id))
	return k
}

func bodyKey(id messages.MsgID) []byte     { return idKey(prefixBody, id) }
func envelopeKey(id messages.MsgID) []byte { return idKey(prefixEnvelope, id) }

func rcptKey(id messages.MsgID, index uint32) []byte {
	return binary.BigEndian.AppendUint32(idKey(prefixRcpt, id), index)
}

// prefixBounds returns the lower and upper bounds of all keys starting
// with prefix.
func prefixBounds(prefix byte) (lower, upper []byte) {
	return []byte{prefix}, []byte{prefix + 1}
}

// parseIDKey returns the id of a body or envelope key.
func parseIDKey(key []byte) (messages.MsgID, error) {
	if len(key) != idKeyLen {
		return 0, fmt.Errorf("key of %d bytes, want %d", len(key), idKeyLen)
	}
	return messages.MsgID(binary.BigEndian.Uint64(key[1:])), nil
}

// parseRcptKey returns the message id and recipient index of a recipient key.
func parseRcptKey(key []byte) (messages.MsgID, uint32, error) {
	if len(key) != rcptKeyLen {
		return 0, 0, fmt.Errorf("key of %d bytes, want %d", len(key), rcptKeyLen)
	}
	id := messages.MsgID(binary.BigEndian.Uint64(key[1:]))
	return id, binary.BigEndian.Uint32(key[9:]), nil
}

// keyID returns the id of any body, envelope or recipient key.
func keyID(key []byte) (messages.MsgID, error) {
	if len(key) > 0 && key[0] == prefixRcpt {
		id, _, err := parseRcptKey(key)
		return id, err
	}
	return parseIDKey(key)
}
