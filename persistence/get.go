package persistence

import (
	"fmt"

	"github.com/mtad/mtad/messages"
)

// Get returns message id's envelope with every recipient's state, or an
// error wrapping ErrNotFound. The caller owns the result.
func (j *Journal) Get(id messages.MsgID) (*messages.Envelope, error) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return nil, ErrClosed
	}
	key := envelopeKey(id)
	v, err := j.get(key)
	if err != nil {
		return nil, fmt.Errorf("persistence: message %v: %w", id, err)
	}
	env, n, err := decodeEnvelope(id, v)
	if err != nil {
		return nil, corrupt(key, err)
	}
	env.Rcpts = make([]messages.Recipient, 0, n)
	for i := range uint32(n) {
		rk := rcptKey(id, i)
		rv, err := j.get(rk)
		if err != nil {
			return nil, corrupt(rk, fmt.Errorf("recipient record %d: %w", i, err))
		}
		r, err := decodeRecipient(i, rv)
		if err != nil {
			return nil, corrupt(rk, err)
		}
		env.Rcpts = append(env.Rcpts, r)
	}
	return env, nil
}
