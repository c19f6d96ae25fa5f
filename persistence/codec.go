package persistence

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/mtad/mtad/messages"
)

// Record encoding. Envelope and recipient records start with a version
// byte; the rest is a fixed sequence of fields, each an unsigned varint, a
// signed varint, a single byte, a string (uvarint length, then the bytes)
// or a time (a byte: 0 for the zero time, 1 followed by the signed varint
// of UnixNano). IDs and indexes live in the key, not the value. A reader
// rejects an unknown version, an out-of-range value and trailing bytes.
//
// Envelope, version 2: nrcpts(uvarint) From(string) Size(varint)
// Arrival(time) Body(string) SMTPUTF8(byte 0|1) Ret(string) EnvID(string)
// ReceivedFromIP(string) Helo(string) Source(string) Priority(varint)
// Flags(uvarint; bit 0 RequireTLS, any other bit is rejected). Version 1
// is version 2 without Flags: it is still read, as all flags clear, so
// records journaled before the upgrade load; only version 2 is written.
// An mtad older than version 2 refuses a version 2 record (Load names its
// key): downgrading needs an empty queue.
//
// Envelope, version 3: version 2 followed by Metadata: a count(uvarint) of
// key(string) value(string) pairs in key order. Version 3 is written only
// for an envelope that has metadata (HTTP injection's tenant, campaign and
// the like), so mail submitted over SMTP stays readable by a version 2 mtad.
//
// Recipient, version 1: Addr(string) Notify(byte) ORcpt(string)
// Status(byte) Queue(string) Attempts(varint) NextAttempt(time)
// LastReply.Code(varint) LastReply.Enhanced(string) LastReply.Text(string)
// LastReply.Class(string) NotifyNum(varint).
const (
	envelopeV1  byte = 1
	envelopeV2  byte = 2
	envelopeV3  byte = 3
	recipientV1 byte = 1
)

// Bits of the Flags field of an envelope record.
const (
	envFlagRequireTLS uint64 = 1 << iota

	envFlagsKnown = envFlagRequireTLS
)

// notifyMask holds every Notify bit the messages package defines.
const notifyMask = messages.NotifyNever | messages.NotifySuccess |
	messages.NotifyFailure | messages.NotifyDelay

// maxMetadata bounds the metadata pairs of an envelope record.
const maxMetadata = 1024

// maxRcpts bounds the recipient count of an envelope record, so that it
// fits in an int anywhere and an index in the four bytes of a key.
const maxRcpts = math.MaxInt32

var (
	errTruncated = errors.New("truncated")
	errVarint    = errors.New("malformed varint")
)

// appendEnvelope appends the record of env, without its recipients but
// with their count, to b.
func appendEnvelope(b []byte, env *messages.Envelope) []byte {
	ver := envelopeV2
	if len(env.Metadata) > 0 {
		ver = envelopeV3
	}
	b = append(b, ver)
	b = binary.AppendUvarint(b, uint64(len(env.Rcpts)))
	b = appendString(b, env.From)
	b = binary.AppendVarint(b, env.Size)
	b = appendTime(b, env.Arrival)
	b = appendString(b, string(env.Body))
	b = appendBool(b, env.SMTPUTF8)
	b = appendString(b, string(env.Ret))
	b = appendString(b, env.EnvID)
	b = appendString(b, env.ReceivedFromIP)
	b = appendString(b, env.Helo)
	b = appendString(b, env.Source)
	b = binary.AppendVarint(b, int64(env.Priority))
	b = binary.AppendUvarint(b, envelopeFlags(env))
	if ver < envelopeV3 {
		return b
	}
	keys := slices.Sorted(maps.Keys(env.Metadata))
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendString(appendString(b, k), env.Metadata[k])
	}
	return b
}

func envelopeFlags(env *messages.Envelope) uint64 {
	var f uint64
	if env.RequireTLS {
		f |= envFlagRequireTLS
	}
	return f
}

// appendRecipient appends the record of r, without its index, to b.
func appendRecipient(b []byte, r *messages.Recipient) []byte {
	b = append(b, recipientV1)
	b = appendString(b, r.Addr)
	b = append(b, byte(r.Notify))
	b = appendString(b, r.ORcpt)
	b = append(b, byte(r.Status))
	b = appendString(b, r.Queue)
	b = binary.AppendVarint(b, int64(r.Attempts))
	b = appendTime(b, r.NextAttempt)
	b = binary.AppendVarint(b, int64(r.LastReply.Code))
	b = appendString(b, r.LastReply.Enhanced)
	b = appendString(b, r.LastReply.Text)
	b = appendString(b, r.LastReply.Class)
	return binary.AppendVarint(b, int64(r.NotifyNum))
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	return binary.AppendVarint(append(b, 1), t.UnixNano())
}

// decodeEnvelope decodes an envelope record of message id. It returns the
// envelope, with no recipients yet, and the recipient count the record
// holds.
func decodeEnvelope(id messages.MsgID, v []byte) (*messages.Envelope, int, error) {
	d := decoder{b: v}
	ver := d.version(envelopeV1, envelopeV3)
	n := d.uvarint()
	if d.err == nil && n > maxRcpts {
		d.fail(fmt.Errorf("recipient count %d out of range", n))
	}
	env := &messages.Envelope{ID: id}
	env.From = d.string()
	env.Size = d.varint()
	env.Arrival = d.time()
	env.Body = messages.BodyType(d.string())
	env.SMTPUTF8 = d.bool()
	env.Ret = messages.Ret(d.string())
	env.EnvID = d.string()
	env.ReceivedFromIP = d.string()
	env.Helo = d.string()
	env.Source = d.string()
	env.Priority = d.int()
	if ver >= envelopeV2 {
		env.RequireTLS = d.envelopeFlags()&envFlagRequireTLS != 0
	}
	if ver >= envelopeV3 {
		env.Metadata = d.metadata()
	}
	if err := d.finish("envelope"); err != nil {
		return nil, 0, err
	}
	return env, int(n), nil
}

// decodeRecipient decodes the record of the recipient at index.
func decodeRecipient(index uint32, v []byte) (messages.Recipient, error) {
	d := decoder{b: v}
	d.version(recipientV1, recipientV1)
	r := messages.Recipient{Index: index}
	r.Addr = d.string()
	r.Notify = messages.Notify(d.byte())
	r.ORcpt = d.string()
	r.Status = messages.RcptStatus(d.byte())
	r.Queue = d.string()
	r.Attempts = d.int()
	r.NextAttempt = d.time()
	r.LastReply.Code = d.int()
	r.LastReply.Enhanced = d.string()
	r.LastReply.Text = d.string()
	r.LastReply.Class = d.string()
	r.NotifyNum = d.int()
	if d.err == nil {
		d.fail(checkRecipient(&r))
	}
	if err := d.finish("recipient"); err != nil {
		return messages.Recipient{}, err
	}
	return r, nil
}

// checkRecipient reports enumerated fields holding values the messages
// package does not define.
func checkRecipient(r *messages.Recipient) error {
	if r.Notify&^notifyMask != 0 {
		return fmt.Errorf("notify %#x has unknown bits", uint8(r.Notify))
	}
	if r.Status > messages.StatusFailed {
		return fmt.Errorf("unknown status %d", r.Status)
	}
	return nil
}

// decoder reads the fields of a record. The first error sticks: later
// reads return zero values, and finish reports it.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

// version reads the version byte and fails unless it is within
// [oldest, newest]; it returns the version read.
func (d *decoder) version(oldest, newest byte) byte {
	v := d.byte()
	if d.err == nil && (v < oldest || v > newest) {
		d.fail(fmt.Errorf("unknown record version %d", v))
	}
	return v
}

// envelopeFlags reads the Flags field, failing on bits it does not know.
func (d *decoder) envelopeFlags() uint64 {
	f := d.uvarint()
	if d.err == nil && f&^envFlagsKnown != 0 {
		d.fail(fmt.Errorf("envelope flags %#x have unknown bits", f))
	}
	return f
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail(errTruncated)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errVarint)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(errVarint)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) int() int {
	v := d.varint()
	if int64(int(v)) != v {
		d.fail(fmt.Errorf("integer %d out of range", v))
		return 0
	}
	return int(v)
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail(errTruncated)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) bool() bool {
	switch c := d.byte(); c {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail(fmt.Errorf("bad boolean %d", c))
		return false
	}
}

func (d *decoder) time() time.Time {
	switch c := d.byte(); c {
	case 0:
		return time.Time{}
	case 1:
		if ns := d.varint(); d.err == nil {
			return time.Unix(0, ns)
		}
	default:
		d.fail(fmt.Errorf("bad time tag %d", c))
	}
	return time.Time{}
}

// metadata reads the Metadata field of an envelope record.
func (d *decoder) metadata() map[string]string {
	n := d.uvarint()
	if d.err == nil && (n == 0 || n > maxMetadata) {
		d.fail(fmt.Errorf("metadata count %d out of range", n))
	}
	if d.err != nil {
		return nil
	}
	m := make(map[string]string, n)
	prev := ""
	for i := uint64(0); i < n && d.err == nil; i++ {
		k, v := d.string(), d.string()
		if d.err == nil && i > 0 && k <= prev {
			d.fail(fmt.Errorf("metadata key %q out of order", k))
		}
		m[k], prev = v, k
	}
	return m
}

// finish reports the first error, or trailing bytes, naming the record kind.
func (d *decoder) finish(kind string) error {
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return fmt.Errorf("%s record: %w", kind, d.err)
	}
	return nil
}
