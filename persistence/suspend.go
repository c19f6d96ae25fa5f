package persistence

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// metaSuspended holds the operator's suspensions (queues, recipient
// domains, sender domains) as a JSON list of their keys, so a restart
// keeps them.
var metaSuspended = []byte{prefixMeta, 's', 'u', 's', 'p', 'e', 'n', 'd'}

// SaveSuspensions replaces the stored suspensions with keys, synced.
func (j *Journal) SaveSuspensions(keys []string) error {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return ErrClosed
	}
	keys = slices.Sorted(slices.Values(keys))
	v, err := json.Marshal(keys)
	if err != nil {
		return err
	}
	if err := j.db.Set(metaSuspended, v, pebble.Sync); err != nil {
		return fmt.Errorf("persistence: save suspensions: %w", err)
	}
	return nil
}

// Suspensions returns the stored suspensions; none in a new journal.
func (j *Journal) Suspensions() ([]string, error) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return nil, ErrClosed
	}
	v, err := j.get(metaSuspended)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("persistence: read suspensions: %w", err)
	}
	var keys []string
	if err := json.Unmarshal(v, &keys); err != nil {
		return nil, corrupt(metaSuspended, err)
	}
	return keys, nil
}
