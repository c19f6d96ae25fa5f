package persistence

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/mtad/mtad/metrics"
)

// The webhook outbox: per endpoint, a run of opaque values (the webhook
// package stores one JSON event in each) numbered by a sequence the caller
// assigns, kept until the endpoint acknowledged them. Its keys, under their
// own prefix so no other scan ever visits them:
//
//	'w' len(1) name        the endpoint's sequence high-water mark: metaV1, then 8 bytes
//	'w' len(1) name seq(8) one outbox entry
//
// The length byte keeps two endpoints apart when one name is a prefix of
// the other, and a mark key, being shorter, is never an entry key. The mark
// is written with every append, so numbering continues above every
// sequence ever used even after all entries were acknowledged and deleted.
//
// Who may call what: one goroutine appends to an endpoint (it numbers the
// entries, and AppendOutbox reads the mark before raising it), and one
// goroutine loads and acknowledges; different endpoints are independent.
// Every method may block on disk I/O.
const prefixWebhook byte = 'w'

// maxEndpointName is the longest endpoint name the key layout can hold.
const maxEndpointName = math.MaxUint8

// AppendOutbox writes values as the entries first, first+1, ... of the
// endpoint's outbox, and raises the endpoint's high-water mark to the last
// of them, in one synced batch: when it returns nil they survive a crash.
// first must be above LastOutboxSeq; an entry written at a sequence that
// is still present replaces it.
func (j *Journal) AppendOutbox(endpoint string, first uint64, values [][]byte) error {
	if err := checkEndpoint(endpoint); err != nil {
		return err
	}
	if len(values) == 0 {
		return nil
	}
	last := first + uint64(len(values)) - 1
	if first == 0 || last < first {
		return fmt.Errorf("persistence: outbox %q: append %d values at sequence %d", endpoint, len(values), first)
	}
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return ErrClosed
	}
	mark, err := j.outboxMark(endpoint)
	if err != nil {
		return err
	}
	b := j.db.NewBatch()
	defer b.Close()
	for i, v := range values {
		_ = b.Set(outboxKey(endpoint, first+uint64(i)), v, nil)
	}
	_ = b.Set(outboxMarkKey(endpoint), binary.BigEndian.AppendUint64([]byte{metaV1}, max(mark, last)), nil)
	return commitOutbox(b, "outbox_append", endpoint)
}

// LoadOutbox returns, in sequence order, at most limit entries of the
// endpoint's outbox whose sequence is above after. The values are copies
// the caller owns.
func (j *Journal) LoadOutbox(endpoint string, after uint64, limit int) (seqs []uint64, values [][]byte, err error) {
	if err := checkEndpoint(endpoint); err != nil {
		return nil, nil, err
	}
	if limit <= 0 {
		return nil, nil, fmt.Errorf("persistence: outbox %q: load limit %d", endpoint, limit)
	}
	if after == math.MaxUint64 {
		return nil, nil, nil
	}
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return nil, nil, ErrClosed
	}
	it, err := j.outboxIter(endpoint, after+1)
	if err != nil {
		return nil, nil, err
	}
	for it.First(); it.Valid() && len(seqs) < limit; it.Next() {
		seq, v, err := outboxEntry(it, endpoint)
		if err != nil {
			return nil, nil, errors.Join(err, it.Close())
		}
		seqs, values = append(seqs, seq), append(values, v)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, nil, fmt.Errorf("persistence: load outbox %q: %w", endpoint, err)
	}
	return seqs, values, nil
}

// LastOutboxSeq returns the highest sequence ever appended to the
// endpoint's outbox, acknowledged or not: the larger of its high-water
// mark and its last entry; 0 if there was none. The next append starts
// above it.
func (j *Journal) LastOutboxSeq(endpoint string) (uint64, error) {
	if err := checkEndpoint(endpoint); err != nil {
		return 0, err
	}
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return 0, ErrClosed
	}
	mark, err := j.outboxMark(endpoint)
	if err != nil {
		return 0, err
	}
	it, err := j.outboxIter(endpoint, 0)
	if err != nil {
		return 0, err
	}
	var last uint64
	if it.Last() {
		last, err = outboxSeq(it.Key(), endpoint)
	}
	if err = errors.Join(err, it.Close()); err != nil {
		return 0, err
	}
	return max(mark, last), nil
}

// AckOutbox deletes every entry of the endpoint's outbox whose sequence is
// at most upTo, in one synced batch. The high-water mark stays.
func (j *Journal) AckOutbox(endpoint string, upTo uint64) error {
	if err := checkEndpoint(endpoint); err != nil {
		return err
	}
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return ErrClosed
	}
	first, ok, err := j.firstOutboxSeq(endpoint)
	if err != nil || !ok || first > upTo {
		return err
	}
	// The range starts at the first entry still present rather than at 0,
	// so successive acknowledgements leave tombstones side by side instead
	// of stacked over one another.
	end := outboxEnd(endpoint)
	if upTo < math.MaxUint64 {
		end = outboxKey(endpoint, upTo+1)
	}
	b := j.db.NewBatch()
	defer b.Close()
	_ = b.DeleteRange(outboxKey(endpoint, first), end, nil)
	return commitOutbox(b, "outbox_ack", endpoint)
}

// firstOutboxSeq returns the lowest sequence in the endpoint's outbox.
// REQUIRES: j.mu held for reading.
func (j *Journal) firstOutboxSeq(endpoint string) (seq uint64, ok bool, err error) {
	it, err := j.outboxIter(endpoint, 0)
	if err != nil {
		return 0, false, err
	}
	if ok = it.First(); ok {
		seq, err = outboxSeq(it.Key(), endpoint)
	}
	return seq, ok, errors.Join(err, it.Close())
}

// outboxMark returns the endpoint's high-water mark, 0 if it has none.
// REQUIRES: j.mu held for reading.
func (j *Journal) outboxMark(endpoint string) (uint64, error) {
	key := outboxMarkKey(endpoint)
	v, err := j.get(key)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("persistence: read outbox %q mark: %w", endpoint, err)
	}
	if len(v) != 9 || v[0] != metaV1 {
		return 0, corrupt(key, errors.New("bad outbox high-water mark"))
	}
	return binary.BigEndian.Uint64(v[1:]), nil
}

// outboxIter returns an iterator over the endpoint's entries from
// sequence from on. REQUIRES: j.mu held for reading.
func (j *Journal) outboxIter(endpoint string, from uint64) (*pebble.Iterator, error) {
	it, err := j.db.NewIter(&pebble.IterOptions{
		LowerBound: outboxKey(endpoint, from),
		UpperBound: outboxEnd(endpoint),
	})
	if err != nil {
		return nil, fmt.Errorf("persistence: outbox %q: %w", endpoint, err)
	}
	return it, nil
}

// outboxEntry decodes the entry under it, copying its value.
func outboxEntry(it *pebble.Iterator, endpoint string) (uint64, []byte, error) {
	seq, err := outboxSeq(it.Key(), endpoint)
	if err != nil {
		return 0, nil, err
	}
	v, err := it.ValueAndErr()
	if err != nil {
		return 0, nil, fmt.Errorf("persistence: load outbox %q entry %d: %w", endpoint, seq, err)
	}
	return seq, append([]byte(nil), v...), nil
}

// outboxSeq returns the sequence of an entry key of endpoint.
func outboxSeq(key []byte, endpoint string) (uint64, error) {
	if len(key) != 2+len(endpoint)+8 {
		return 0, corrupt(key, fmt.Errorf("outbox key of %d bytes, want %d", len(key), 2+len(endpoint)+8))
	}
	return binary.BigEndian.Uint64(key[len(key)-8:]), nil
}

func outboxMarkKey(endpoint string) []byte {
	k := make([]byte, 0, 2+len(endpoint)+8)
	k = append(k, prefixWebhook, byte(len(endpoint)))
	return append(k, endpoint...)
}

func outboxKey(endpoint string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(outboxMarkKey(endpoint), seq)
}

// outboxEnd returns the upper bound of the endpoint's entries: its mark
// key followed by nine 0xff bytes sorts after every eight-byte sequence
// and before the keys of any other endpoint.
func outboxEnd(endpoint string) []byte {
	return append(outboxMarkKey(endpoint), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
}

func checkEndpoint(endpoint string) error {
	if endpoint == "" || len(endpoint) > maxEndpointName {
		return fmt.Errorf("persistence: outbox endpoint name of %d bytes, want 1 to %d", len(endpoint), maxEndpointName)
	}
	return nil
}

// commitOutbox commits b with a WAL sync, as commit does for messages.
func commitOutbox(b *pebble.Batch, op, endpoint string) error {
	start := time.Now()
	defer func() { metrics.JournalCommit.WithLabelValues(op).Observe(time.Since(start).Seconds()) }()
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("persistence: %s %q: %w", op, endpoint, err)
	}
	return nil
}
