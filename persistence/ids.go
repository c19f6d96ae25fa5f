package persistence

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"

	"github.com/mtad/mtad/messages"
)

// Message ids are a counter. A clock-derived id would survive restarts
// without any write, but would repeat after the clock steps back across a
// restart; a counter cannot. So the journal keeps a high-water mark under
// metaNextID, synced, above every id it has handed out, and reserves ids
// in blocks of idBlock: one synced write per 65,536 messages, plus one at
// every Open. Open starts counting at the larger of the mark and the
// highest id still in the journal, so an id is never reused even after
// every message has been finished; the rest of the last run's block is
// skipped, which a 64-bit id space can afford.
const idBlock = 1 << 16

// schemaVersion is the key layout this package reads and writes; it is
// stored under metaSchema and checked by Open.
const schemaVersion byte = 1

// metaV1 is the version byte of the high-water mark record: the byte, then
// the mark as eight big-endian bytes.
const metaV1 byte = 1

// idAllocator hands out message ids.
type idAllocator struct {
	mu       sync.Mutex
	next     uint64 // the id NextID returns next
	reserved uint64 // the synced high-water mark: every id accepted (and, unless a reservation failed, handed out) is below it
}

// NextID returns a new message id, larger than every id this journal has
// handed out or accepted, in this run or an earlier one. It is safe for
// concurrent use and does no I/O except, once per 65,536 ids, one synced
// write of the high-water mark. If that write fails the error is logged
// and the id is still returned; Accept will not journal an id the mark
// does not cover.
func (j *Journal) NextID() messages.MsgID {
	j.mu.RLock()
	defer j.mu.RUnlock()
	j.ids.mu.Lock()
	defer j.ids.mu.Unlock()
	if j.ids.next >= j.ids.reserved {
		if err := j.reserveLocked(j.ids.next + 1); err != nil {
			j.log.Error("persistence: reserve message ids", "err", err)
		}
	}
	id := j.ids.next
	j.ids.next++
	return messages.MsgID(id)
}

// ensureID makes sure the high-water mark covers id before Accept journals
// it, and that NextID never returns it. REQUIRES: j.mu held for reading.
func (j *Journal) ensureID(id messages.MsgID) error {
	j.ids.mu.Lock()
	defer j.ids.mu.Unlock()
	if uint64(id) >= j.ids.next {
		j.ids.next = uint64(id) + 1
	}
	if uint64(id) < j.ids.reserved {
		return nil
	}
	return j.reserveLocked(uint64(id) + 1)
}

// reserveLocked raises the synced high-water mark to idBlock above the
// larger of atLeast and the next id. REQUIRES: j.mu held for reading,
// j.ids.mu held.
func (j *Journal) reserveLocked(atLeast uint64) error {
	if j.closed {
		return ErrClosed
	}
	mark := max(atLeast, j.ids.next) + idBlock
	b := j.db.NewBatch()
	defer b.Close()
	_ = b.Set(metaNextID, binary.BigEndian.AppendUint64([]byte{metaV1}, mark), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("persistence: reserve ids up to %d: %w", mark, err)
	}
	j.ids.reserved = mark
	return nil
}

// recoverIDs sets the id counter at Open from the stored high-water mark
// and the highest id in the journal, and reserves the first block.
// REQUIRES: called by Open before j is shared.
func (j *Journal) recoverIDs() error {
	if err := j.checkSchema(); err != nil {
		return err
	}
	mark, err := j.readMark()
	if err != nil {
		return err
	}
	top, err := j.maxID()
	if err != nil {
		return err
	}
	j.ids.mu.Lock()
	defer j.ids.mu.Unlock()
	j.ids.next = max(mark, top+1, 1)
	return j.reserveLocked(j.ids.next)
}

// checkSchema writes the schema version into a new journal, and refuses a
// journal written with a layout this package does not know. The write is
// not synced itself: the synced reservation that follows covers it.
func (j *Journal) checkSchema() error {
	v, err := j.get(metaSchema)
	if errors.Is(err, ErrNotFound) {
		return j.db.Set(metaSchema, []byte{schemaVersion}, pebble.NoSync)
	}
	if err != nil {
		return fmt.Errorf("persistence: read schema version: %w", err)
	}
	if len(v) != 1 || v[0] != schemaVersion {
		return fmt.Errorf("persistence: journal schema %x, this mtad reads %d", v, schemaVersion)
	}
	return nil
}

// readMark returns the stored high-water mark, 0 if there is none.
func (j *Journal) readMark() (uint64, error) {
	v, err := j.get(metaNextID)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("persistence: read id high-water mark: %w", err)
	}
	if len(v) != 9 || v[0] != metaV1 {
		return 0, corrupt(metaNextID, errors.New("bad id high-water mark"))
	}
	return binary.BigEndian.Uint64(v[1:]), nil
}

// maxID returns the highest message id of any body, envelope or recipient
// record, 0 if there is none.
func (j *Journal) maxID() (uint64, error) {
	var top messages.MsgID
	for _, p := range []byte{prefixBody, prefixEnvelope, prefixRcpt} {
		id, err := j.lastID(p)
		if err != nil {
			return 0, err
		}
		top = max(top, id)
	}
	return uint64(top), nil
}

// lastID returns the id of the last key with the given prefix.
func (j *Journal) lastID(prefix byte) (id messages.MsgID, err error) {
	lo, hi := prefixBounds(prefix)
	it, err := j.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, fmt.Errorf("persistence: scan ids: %w", err)
	}
	if it.Last() {
		id, err = keyID(it.Key())
		if err != nil {
			err = corrupt(it.Key(), err)
		}
	}
	return id, errors.Join(err, it.Close())
}

// recoverChunked reads, or on the first Open of a journal by a chunking
// mtad records, the first id whose body cannot be in the old
// single-record form: the next id to be handed out. The write is synced
// so the mark is never lost while old bodies remain.
// REQUIRES: called by Open, after recoverIDs, before j is shared.
func (j *Journal) recoverChunked() error {
	v, err := j.get(metaChunked)
	if errors.Is(err, ErrNotFound) {
		j.chunkedFrom = messages.MsgID(j.ids.next)
		return j.db.Set(metaChunked, binary.BigEndian.AppendUint64(nil, uint64(j.chunkedFrom)), pebble.Sync)
	}
	if err != nil {
		return fmt.Errorf("persistence: read the chunked-bodies mark: %w", err)
	}
	if len(v) != 8 {
		return corrupt(metaChunked, fmt.Errorf("%d bytes, want 8", len(v)))
	}
	j.chunkedFrom = messages.MsgID(binary.BigEndian.Uint64(v))
	return nil
}
