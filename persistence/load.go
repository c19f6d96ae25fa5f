package persistence

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"

	"github.com/mtad/mtad/messages"
)

// ErrCorrupt is matched, through errors.Is, by every CorruptError.
var ErrCorrupt = errors.New("persistence: corrupt record")

// CorruptError reports a journal record that cannot be read.
type CorruptError struct {
	Key []byte // the record's key
	Err error  // what is wrong with it
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("persistence: corrupt record at key %x: %v", e.Key, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Load calls fn with every message in the journal, in id order, each
// envelope complete with its recipients in Index order. fn owns the
// envelope it is given. Load stops at the first error fn returns and
// returns it unchanged; a record it cannot read stops it with a
// *CorruptError naming the key. Load reads one consistent snapshot:
// messages accepted while it runs may or may not be seen.
//
// Load is meant for start-up recovery. fn may call the Journal's other
// methods, but Close must not be called before Load has returned.
func (j *Journal) Load(fn func(env *messages.Envelope) error) error {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return ErrClosed
	}
	snap := j.db.NewSnapshot()
	defer snap.Close()
	envs, err := newPrefixIter(snap, prefixEnvelope)
	if err != nil {
		return err
	}
	rcpts, err := newPrefixIter(snap, prefixRcpt)
	if err != nil {
		return errors.Join(err, envs.Close())
	}
	l := loader{log: j.log, envs: envs, rcpts: rcpts}
	err = l.run(fn)
	if cerr := errors.Join(envs.Close(), rcpts.Close()); cerr != nil {
		return errors.Join(err, fmt.Errorf("persistence: load: %w", cerr))
	}
	return err
}

func newPrefixIter(snap *pebble.Snapshot, prefix byte) (*pebble.Iterator, error) {
	lo, hi := prefixBounds(prefix)
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, fmt.Errorf("persistence: load: %w", err)
	}
	return it, nil
}

// loader walks the envelope and recipient records side by side: both are
// in id order, so each envelope's recipients are the next run of
// recipient keys.
type loader struct {
	log   *slog.Logger
	envs  *pebble.Iterator
	rcpts *pebble.Iterator
}

func (l *loader) run(fn func(env *messages.Envelope) error) error {
	l.rcpts.First()
	for l.envs.First(); l.envs.Valid(); l.envs.Next() {
		env, n, err := l.envelope()
		if err != nil {
			return err
		}
		if env.Rcpts, err = l.recipients(env.ID, n); err != nil {
			return err
		}
		if err := fn(env); err != nil {
			return err
		}
	}
	if err := errors.Join(l.envs.Error(), l.rcpts.Error()); err != nil {
		return fmt.Errorf("persistence: load: %w", err)
	}
	return nil
}

// envelope decodes the record under the envelope iterator.
func (l *loader) envelope() (*messages.Envelope, int, error) {
	key := l.envs.Key()
	id, err := parseIDKey(key)
	if err != nil {
		return nil, 0, corrupt(key, err)
	}
	v, err := l.envs.ValueAndErr()
	if err != nil {
		return nil, 0, fmt.Errorf("persistence: load %x: %w", key, err)
	}
	env, n, err := decodeEnvelope(id, v)
	if err != nil {
		return nil, 0, corrupt(key, err)
	}
	return env, n, nil
}

// recipients decodes the n recipient records of message id, advancing the
// recipient iterator past them. Records of messages without an envelope
// are skipped with a warning.
func (l *loader) recipients(id messages.MsgID, n int) ([]messages.Recipient, error) {
	rs := make([]messages.Recipient, 0, min(n, 1024))
	for ; l.rcpts.Valid(); l.rcpts.Next() {
		key := l.rcpts.Key()
		rid, index, err := parseRcptKey(key)
		if err != nil {
			return nil, corrupt(key, err)
		}
		if rid < id {
			l.log.Warn("persistence: recipient record without envelope", "key", fmt.Sprintf("%x", key))
			continue
		}
		if rid > id {
			break
		}
		if int64(index) >= int64(n) {
			return nil, corrupt(key, fmt.Errorf("recipient %d beyond the envelope's %d", index, n))
		}
		if int64(index) != int64(len(rs)) {
			return nil, corrupt(envelopeKey(id), fmt.Errorf("recipient record %d missing", len(rs)))
		}
		r, err := l.recipient(key, index)
		if err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	if len(rs) != n {
		return nil, corrupt(envelopeKey(id), fmt.Errorf("%d recipients, %d recipient records", n, len(rs)))
	}
	return rs, nil
}

// recipient decodes the record under the recipient iterator.
func (l *loader) recipient(key []byte, index uint32) (messages.Recipient, error) {
	v, err := l.rcpts.ValueAndErr()
	if err != nil {
		return messages.Recipient{}, fmt.Errorf("persistence: load %x: %w", key, err)
	}
	r, err := decodeRecipient(index, v)
	if err != nil {
		return messages.Recipient{}, corrupt(key, err)
	}
	return r, nil
}

// corrupt returns a CorruptError holding a copy of key, which may belong
// to an iterator.
func corrupt(key []byte, err error) error {
	return &CorruptError{Key: append([]byte(nil), key...), Err: err}
}
