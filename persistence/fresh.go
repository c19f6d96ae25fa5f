package persistence

import (
	"sync"

	"github.com/mtad/mtad/messages"
)

// Fresh bodies. Most mail is delivered milliseconds after it is accepted,
// while its body is still in the memtable; reading it back through Pebble
// (an iterator for its size, a Get per chunk) was about 5% of the CPU of a
// 5 KiB relay. The journal keeps a copy of small bodies it has just
// written, up to freshLimit bytes in all, oldest dropped first, and
// OpenBody serves those from memory. A body is immutable once accepted, so
// the copy is the journaled body; Finish and Close drop it.
const (
	freshMaxBody = 64 << 10
	freshLimit   = 16 << 20
)

type freshBodies struct {
	mu    sync.Mutex
	m     map[messages.MsgID][]byte
	order []messages.MsgID // insertion order; ids already dropped are skipped
	bytes int
}

// put keeps a copy of body, if it is small enough.
func (f *freshBodies) put(id messages.MsgID, body []byte) {
	if len(body) > freshMaxBody {
		return
	}
	c := append([]byte(nil), body...)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = make(map[messages.MsgID][]byte)
	}
	if old, ok := f.m[id]; ok {
		f.bytes -= len(old)
	}
	f.m[id] = c
	f.order = append(f.order, id)
	f.bytes += len(c)
	for f.bytes > freshLimit && len(f.order) > 0 {
		old := f.order[0]
		f.order = f.order[1:]
		if b, ok := f.m[old]; ok {
			f.bytes -= len(b)
			delete(f.m, old)
		}
	}
	if len(f.order) > 4*len(f.m)+1024 { // mostly dropped ids: compact
		kept := make([]messages.MsgID, 0, len(f.m))
		for _, id := range f.order {
			if _, ok := f.m[id]; ok {
				kept = append(kept, id)
			}
		}
		f.order = kept
	}
}

// get returns the kept body of id; the caller must not change it.
func (f *freshBodies) get(id messages.MsgID) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.m[id]
	return b, ok
}

// drop forgets id's body.
func (f *freshBodies) drop(id messages.MsgID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b, ok := f.m[id]; ok {
		f.bytes -= len(b)
		delete(f.m, id)
	}
}

// reset forgets every body.
func (f *freshBodies) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m, f.order, f.bytes = nil, nil, 0
}
