package quota

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/mtad/mtad/messages"
)

// Book holds the quotas and what the queued messages charge them. Create it
// with NewBook; its methods are safe for concurrent use.
type Book struct {
	qs        atomic.Pointer[[]Quota] // replaced whole by Retune
	msgLevel  []int32                 // indexes of the message-level quotas
	rcptLevel []int32                 // indexes of the per-recipient quotas

	mu   sync.Mutex
	use  []map[string]counter       // by quota index, then key value; guarded by mu
	msgs map[messages.MsgID]*charge // what each charged message holds; guarded by mu
}

type counter struct{ messages, bytes int64 }

// charge is what one message charged and which of its recipients still
// hold it.
type charge struct {
	size    int64
	items   []item  // one per (quota, key value) charged
	holds   []hold  // the recipients charged, by ascending Index
	refs    []int32 // item indexes, sliced by the holds
	pending int     // holds not yet released
}

// item is one (quota, key value) a message charged, still charged while
// held > 0. For a per-recipient quota, held counts the holds not yet
// released that refer to it; a message-level item is held (1) until the
// last hold is released.
type item struct {
	quota int32
	key   string
	held  int32
}

// hold is one charged recipient: refs[from:to] are the per-recipient items
// it holds.
type hold struct {
	idx      uint32
	from, to int32
	done     bool
}

// NewBook checks quotas and returns an empty Book for them. Errors name the
// quota by its position and name.
func NewBook(quotas []Quota) (*Book, error) {
	qs := slices.Clone(quotas)
	b := &Book{
		use:  make([]map[string]counter, len(quotas)),
		msgs: make(map[messages.MsgID]*charge),
	}
	b.qs.Store(&qs)
	names := make(map[string]bool, len(quotas))
	for i := range qs {
		q := &qs[i]
		if err := q.check(); err != nil {
			return nil, fmt.Errorf("quota[%d] %q: %w", i, q.Name, err)
		}
		if names[q.Name] {
			return nil, fmt.Errorf("quota[%d] %q: name used twice", i, q.Name)
		}
		names[q.Name] = true
		b.use[i] = make(map[string]counter)
		if q.Key.perRcpt() {
			b.rcptLevel = append(b.rcptLevel, int32(i))
		} else {
			b.msgLevel = append(b.msgLevel, int32(i))
		}
	}
	return b, nil
}

// Admit charges env if every quota that applies to it has room, and
// returns nil; otherwise it charges nothing and returns an *Exceeded. A
// message already charged is not charged again. If env is then not
// journaled, the caller calls Drop.
func (b *Book) Admit(env *messages.Envelope) error {
	c := b.plan(env)
	if c == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.msgs[env.ID]; ok {
		return nil
	}
	for i := range c.items {
		if err := b.room(&c.items[i], c.size); err != nil {
			return err
		}
	}
	b.add(env.ID, c)
	return nil
}

// list is the quotas in force.
func (b *Book) list() []Quota { return *b.qs.Load() }

// Retune puts new limits and matches in force for the same quotas (same
// names and keys, in the same order): admissions from now on use them;
// what queued messages charged stays charged and is released as before.
// Adding, removing or re-keying a quota is refused: the counts of the
// queued mail are kept per key and cannot be re-counted in place.
func (b *Book) Retune(quotas []Quota) error {
	old := b.list()
	if len(quotas) != len(old) {
		return fmt.Errorf("%d quotas instead of %d: adding or removing a quota needs a restart", len(quotas), len(old))
	}
	for i := range quotas {
		if quotas[i].Name != old[i].Name || quotas[i].Key != old[i].Key {
			return fmt.Errorf("quota %q (key %s) is not quota %q (key %s): adding, removing or re-keying a quota needs a restart",
				quotas[i].Name, quotas[i].Key, old[i].Name, old[i].Key)
		}
		if err := quotas[i].check(); err != nil {
			return fmt.Errorf("quota[%d] %q: %w", i, quotas[i].Name, err)
		}
	}
	qs := slices.Clone(quotas)
	b.qs.Store(&qs)
	return nil
}

// Charge charges env without checking the limits: the start-up rebuild
// from the journal. Only recipients that are not final are charged. A
// message already charged is not charged again.
func (b *Book) Charge(env *messages.Envelope) {
	c := b.plan(env)
	if c == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.msgs[env.ID]; !ok {
		b.add(env.ID, c)
	}
}

// Release gives back what env's recipient with Index idx held; the caller
// calls it once that recipient is final. Releasing a recipient that was
// not charged or was already released, or one of a message the Book does
// not know, does nothing.
func (b *Book) Release(env *messages.Envelope, idx uint32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.msgs[env.ID]
	if c == nil {
		return
	}
	i, ok := slices.BinarySearchFunc(c.holds, idx, func(h hold, idx uint32) int { return cmp.Compare(h.idx, idx) })
	if !ok || c.holds[i].done {
		return
	}
	h := &c.holds[i]
	h.done = true
	for _, r := range c.refs[h.from:h.to] {
		it := &c.items[r]
		if it.held--; it.held == 0 {
			b.sub(it, c.size)
		}
	}
	if c.pending--; c.pending == 0 {
		b.drop(env.ID, c, false)
	}
}

// Drop gives back everything the message id still holds, as if all its
// recipients were released: for a message admitted but then not journaled,
// or removed from the queue as a whole. An unknown id does nothing.
func (b *Book) Drop(id messages.MsgID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c := b.msgs[id]; c != nil {
		b.drop(id, c, true)
	}
}

// Usage returns the current usage, by quota in configuration order and
// then by key value. Key values with nothing charged are left out.
func (b *Book) Usage() []Use {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Use
	for i, m := range b.use {
		start := len(out)
		for k, u := range m {
			out = append(out, Use{Quota: b.list()[i].Name, KeyValue: k, Messages: u.messages, Bytes: u.bytes})
		}
		slices.SortFunc(out[start:], func(a, b Use) int { return cmp.Compare(a.KeyValue, b.KeyValue) })
	}
	return out
}

// plan works out what env charges, without the lock: nil when it charges
// nothing.
func (b *Book) plan(env *messages.Envelope) *charge {
	c := &charge{size: env.Size, pending: env.Pending()}
	if c.pending == 0 {
		return nil
	}
	var first *messages.Recipient
	if len(env.Rcpts) > 0 {
		first = &env.Rcpts[0]
	}
	for _, qi := range b.msgLevel {
		q := &b.list()[qi]
		if q.applies(env, first) {
			c.items = append(c.items, item{quota: qi, key: messageKey(q.Key, env), held: 1})
		}
	}
	b.planRcpts(env, c)
	if len(c.items) == 0 {
		return nil
	}
	slices.SortStableFunc(c.holds, func(a, b hold) int { return cmp.Compare(a.idx, b.idx) })
	return c
}

// planRcpts adds a hold for each pending recipient of env and the
// per-recipient items it holds.
func (b *Book) planRcpts(env *messages.Envelope, c *charge) {
	c.holds = make([]hold, 0, c.pending)
	var idx itemIndex
	for i := range env.Rcpts {
		rc := &env.Rcpts[i]
		if rc.Status.Final() {
			continue
		}
		h := hold{idx: rc.Index, from: int32(len(c.refs))}
		for _, qi := range b.rcptLevel {
			q := &b.list()[qi]
			if q.applies(env, rc) {
				r := idx.find(c, qi, rcptKey(q.Key, rc.Addr))
				c.items[r].held++
				c.refs = append(c.refs, r)
			}
		}
		h.to = int32(len(c.refs))
		c.holds = append(c.holds, h)
	}
}

// itemIndex finds a message's item by quota and key value: by a scan while
// the message has few, by a map once it has many.
type itemIndex map[itemKey]int32

type itemKey struct {
	quota int32
	key   string
}

const scanItems = 16

func (x *itemIndex) find(c *charge, quota int32, key string) int32 {
	if *x == nil && len(c.items) < scanItems {
		for i := range c.items {
			if c.items[i].quota == quota && c.items[i].key == key {
				return int32(i)
			}
		}
	} else {
		if *x == nil {
			*x = make(itemIndex, 2*len(c.items))
			for i, it := range c.items {
				(*x)[itemKey{it.quota, it.key}] = int32(i)
			}
		}
		if i, ok := (*x)[itemKey{quota, key}]; ok {
			return i
		}
		(*x)[itemKey{quota, key}] = int32(len(c.items))
	}
	c.items = append(c.items, item{quota: quota, key: key})
	return int32(len(c.items) - 1)
}

// room returns an *Exceeded if it has no room for one more message of
// size bytes. It runs under b.mu.
func (b *Book) room(it *item, size int64) error {
	q := &b.list()[it.quota]
	u := b.use[it.quota][it.key]
	if (q.Messages > 0 && u.messages+1 > q.Messages) || (q.Bytes > 0 && u.bytes+size > q.Bytes) {
		return &Exceeded{Quota: q.Name, KeyValue: it.key}
	}
	return nil
}

// add records c as id's charge and adds its items to the usage. It runs
// under b.mu.
func (b *Book) add(id messages.MsgID, c *charge) {
	b.msgs[id] = c
	for _, it := range c.items {
		u := b.use[it.quota][it.key]
		u.messages++
		u.bytes += c.size
		b.use[it.quota][it.key] = u
	}
}

// sub takes one message of size bytes off the usage of its (quota, key
// value). It runs under b.mu.
func (b *Book) sub(it *item, size int64) {
	m := b.use[it.quota]
	u := m[it.key]
	u.messages--
	u.bytes -= size
	if u.messages <= 0 {
		delete(m, it.key)
		return
	}
	m[it.key] = u
}

// drop releases c's message-level items, and its per-recipient items too
// when all is set, and forgets id. It runs under b.mu.
func (b *Book) drop(id messages.MsgID, c *charge, all bool) {
	for i := range c.items {
		it := &c.items[i]
		if it.held > 0 && (all || !b.list()[it.quota].Key.perRcpt()) {
			it.held = 0
			b.sub(it, c.size)
		}
	}
	delete(b.msgs, id)
}
