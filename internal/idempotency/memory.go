package idempotency

import (
	"bytes"
	"container/list"
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxBytes is a Memory backend's size cap when none is given.
const DefaultMaxBytes = 64 << 20

// entryOverhead is what a Memory entry costs beyond its key and value,
// counted against the cap.
const entryOverhead = 96

// Memory is a Backend in the process's memory, for one gateway (the
// sidecar). Past its size cap it forgets the oldest outcomes first (the
// one just stored last of all, when the next entry comes); a
// reservation (a value stored by Add and not yet swapped) is never
// forgotten before it expires, so that a request in flight cannot be
// duplicated by a full cache. Safe for concurrent use.
type Memory struct {
	mu        sync.Mutex
	entries   map[string]*list.Element // of *memEntry, oldest first in order
	order     list.List
	bytes     int64
	max       int64
	now       func() time.Time
	evictions atomic.Uint64
}

type memEntry struct {
	key      string
	val      []byte
	expires  time.Time
	reserved bool
}

// NewMemory makes a Memory backend holding at most maxBytes of keys and
// values (0: DefaultMaxBytes). now is its clock (nil: time.Now).
func NewMemory(maxBytes int64, now func() time.Time) *Memory {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if now == nil {
		now = time.Now
	}
	return &Memory{entries: make(map[string]*list.Element), max: maxBytes, now: now}
}

// Add implements Backend.
func (m *Memory) Add(_ context.Context, key string, val []byte, ttl time.Duration) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.expire(now)
	if el, ok := m.entries[key]; ok {
		e := el.Value.(*memEntry)
		if now.Before(e.expires) {
			return bytes.Clone(e.val), nil
		}
		m.remove(el)
	}
	e := &memEntry{key: key, val: bytes.Clone(val), expires: now.Add(ttl), reserved: true}
	m.entries[key] = m.order.PushBack(e)
	m.bytes += size(e)
	m.evict(nil)
	return nil, nil
}

// Swap implements Backend.
func (m *Memory) Swap(_ context.Context, key string, old, val []byte, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.entries[key]
	if !ok {
		return false, nil
	}
	e := el.Value.(*memEntry)
	if !m.now().Before(e.expires) || !bytes.Equal(e.val, old) {
		return false, nil
	}
	if val == nil {
		m.remove(el)
		return true, nil
	}
	m.bytes -= size(e)
	// The entry keeps its place in line: the oldest keys go first.
	e.val, e.expires, e.reserved = bytes.Clone(val), m.now().Add(ttl), false
	m.bytes += size(e)
	m.evict(el)
	return true, nil
}

// expire drops entries past their time from the front of the line. All
// share one TTL, so the line is in expiry order but for outcomes kept a
// little later than their reservation; an entry not at the front is
// checked when it is looked up.
func (m *Memory) expire(now time.Time) {
	for el := m.order.Front(); el != nil; el = m.order.Front() {
		if now.Before(el.Value.(*memEntry).expires) {
			return
		}
		m.remove(el)
	}
}

// evict forgets the oldest outcomes until the entries fit the cap, but
// not kept, the outcome just stored: were it larger than the cap, its
// retry would be forwarded again. The next entry stored makes room.
func (m *Memory) evict(kept *list.Element) {
	for el := m.order.Front(); el != nil && m.bytes > m.max; {
		next := el.Next()
		if el != kept && !el.Value.(*memEntry).reserved {
			m.remove(el)
			m.evictions.Add(1)
		}
		el = next
	}
}

func (m *Memory) remove(el *list.Element) {
	e := m.order.Remove(el).(*memEntry)
	delete(m.entries, e.key)
	m.bytes -= size(e)
}

func size(e *memEntry) int64 { return int64(len(e.key) + len(e.val) + entryOverhead) }

// MemoryStats are a Memory backend's size, cap and evictions.
type MemoryStats struct {
	Keys      int
	Bytes     int64
	MaxBytes  int64
	Evictions uint64
}

// Stats returns the backend's current size, its cap and how many outcomes
// the cap has made it forget.
func (m *Memory) Stats() MemoryStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return MemoryStats{Keys: len(m.entries), Bytes: m.bytes, MaxBytes: m.max, Evictions: m.evictions.Load()}
}
