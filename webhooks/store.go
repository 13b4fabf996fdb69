package webhooks

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrNoMessage is the store's answer for an id it does not hold, or holds
// in a state the operation does not apply to.
var ErrNoMessage = errors.New("webhooks: no such message")

// DefaultBatchDelay is how long the store waits for more acknowledgements
// to share one commit (and one fsync) before it commits.
const DefaultBatchDelay = 2 * time.Millisecond

// StoreOptions configures a Store. The zero value works.
type StoreOptions struct {
	Clock     func() time.Time // nil = time.Now
	Retention time.Duration    // dedupe keys and finished messages; 0 = DefaultRetention
	// BatchDelay is how long an Accept, Reschedule or Finish waits for
	// others to join its commit; 0 = DefaultBatchDelay. A longer delay
	// shares one fsync among more callers and adds that much latency.
	BatchDelay time.Duration
}

// RouteStats counts a route's messages by state. OldestPending is the
// receipt time of its oldest pending message (zero when none is pending).
type RouteStats struct {
	Pending, Delivered, Dead int
	OldestPending            time.Time
}

// Expectation is a call the gateway placed for a route with reconciliation:
// if no terminal callback for Sid arrives by At, reconciliation asks
// Exotel. Expectations survive restarts.
type Expectation struct {
	Route, Account, Sid string
	At                  time.Time
}

// Store is the webhook path's durable store, a bbolt file: messages, their
// dedupe keys, the delivery queue and reconciliation expectations. Every
// write is committed and fsynced before its method returns; concurrent
// writers share commits (bbolt's DB.Batch). The queue is read from disk
// through indexes, so memory does not grow with the number of pending
// messages. A Store is safe for concurrent use; one process at a time may
// open a file.
type Store struct {
	db        *bolt.DB
	id        string
	now       func() time.Time
	retention time.Duration
}

// The buckets. Composite keys put a route as a 2-byte length and its
// bytes, and a time as 8 bytes big-endian, so that byte order is time
// order within a route.
var (
	bucketMsg     = []byte("msg")    // id → record
	bucketKey     = []byte("key")    // dedupe key → id
	bucketDue     = []byte("due")    // route|nextAttempt|id, pending only
	bucketRecv    = []byte("recv")   // receivedAt|id, every message
	bucketState   = []byte("state")  // state|receivedAt|id
	bucketRState  = []byte("rstate") // state|route|receivedAt|id
	bucketCount   = []byte("count")  // route → pending, delivered, dead
	bucketExp     = []byte("exp")    // route|sid → expectation
	bucketExpDue  = []byte("expdue") // at|route|sid
	bucketMeta    = []byte("meta")   // "id" → the store's identity
	storeBuckets  = [][]byte{bucketMsg, bucketKey, bucketDue, bucketRecv, bucketState, bucketRState, bucketCount, bucketExp, bucketExpDue, bucketMeta}
	stateOrdinals = map[State]byte{StatePending: 'p', StateDelivered: 'd', StateDead: 'x'}
)

// OpenStore opens (creating if needed, mode 0600) the store at path. It
// waits at most a second for another process's lock on the file.
func OpenStore(path string, o StoreOptions) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("webhook store %s is locked by another process", path)
	}
	if err != nil {
		return nil, fmt.Errorf("webhook store %s: %w", path, err)
	}
	db.MaxBatchDelay = o.BatchDelay
	if db.MaxBatchDelay <= 0 {
		db.MaxBatchDelay = DefaultBatchDelay
	}
	var id string
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range storeBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		id, err = storeID(tx)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("webhook store %s: %w", path, err)
	}
	s := &Store{db: db, id: id, now: o.Clock, retention: o.Retention}
	if s.now == nil {
		s.now = time.Now
	}
	if s.retention <= 0 {
		s.retention = DefaultRetention
	}
	return s, nil
}

// storeID returns the store's identity, made the first time.
func storeID(tx *bolt.Tx) (string, error) {
	meta := tx.Bucket(bucketMeta)
	if v := meta.Get([]byte("id")); v != nil {
		return string(v), nil
	}
	id := "store_" + strings.TrimPrefix(newMessageID(), "msg_")
	return id, meta.Put([]byte("id"), []byte(id))
}

// ID is the store's identity, made when the file was created and kept in
// it: one process at a time holds the file, so the identity names the
// replica that owns these messages, across restarts and whatever host it
// runs on.
func (s *Store) ID() string { return s.id }

// Close closes the file. Calls after Close return errors.
func (s *Store) Close() error { return s.db.Close() }

// Path is the store's file.
func (s *Store) Path() string { return s.db.Path() }

// Accept stores a callback unless its dedupe key is already held: the
// check and the insert are one transaction, committed and fsynced before
// Accept returns. A new message gets an ID (when m.ID is empty), state
// pending, NextAttempt = ReceivedAt (now, when ReceivedAt is zero) and
// Source exotel when it has none; a terminal one fulfils the expectation for its route and Sid. A repeat
// with the same body is a Duplicate; with a different body a Variant (the
// stored message counts it; nothing new is delivered). Accept returns the
// stored message: for a repeat, the original.
func (s *Store) Accept(m Message) (Outcome, Message, error) {
	if m.Route == "" || m.Key == "" {
		return 0, Message{}, errors.New("webhooks: a message needs a route and a dedupe key")
	}
	if m.ID == "" {
		m.ID = newMessageID()
	}
	if m.ReceivedAt.IsZero() {
		m.ReceivedAt = s.now()
	}
	if m.Source == "" {
		m.Source = SourceExotel
	}
	m.ReceivedAt = m.ReceivedAt.UTC()
	m.State, m.NextAttempt, m.Attempts, m.Variants = StatePending, m.ReceivedAt, 0, 0
	var (
		out    Outcome
		stored Message
	)
	// Batch may run the function twice (alone, after a batch fails), so
	// it sets its results afresh each time.
	err := s.db.Batch(func(tx *bolt.Tx) error {
		var err error
		out, stored, err = accept(tx, m)
		return err
	})
	if err != nil {
		return 0, Message{}, fmt.Errorf("webhook store: accept: %w", err)
	}
	return out, stored, nil
}

func accept(tx *bolt.Tx, m Message) (Outcome, Message, error) {
	if id := tx.Bucket(bucketKey).Get([]byte(m.Key)); id != nil {
		orig, err := getMessage(tx, string(id))
		if err == nil {
			if bytes.Equal(orig.Body, m.Body) {
				return Duplicate, orig, nil
			}
			orig.Variants++
			return Variant, orig, putMessage(tx, orig)
		}
		if !errors.Is(err, ErrNoMessage) {
			return 0, Message{}, err
		}
	}
	if tx.Bucket(bucketMsg).Get([]byte(m.ID)) != nil {
		return 0, Message{}, fmt.Errorf("message id %s is taken", m.ID)
	}
	if err := putMessage(tx, m); err != nil {
		return 0, Message{}, err
	}
	if err := tx.Bucket(bucketKey).Put([]byte(m.Key), []byte(m.ID)); err != nil {
		return 0, Message{}, err
	}
	if err := tx.Bucket(bucketRecv).Put(timeKey(nil, m.ReceivedAt, m.ID), nil); err != nil {
		return 0, Message{}, err
	}
	if err := enterState(tx, m); err != nil {
		return 0, Message{}, err
	}
	if m.Terminal {
		if err := fulfil(tx, m.Route, m.Sid); err != nil {
			return 0, Message{}, err
		}
	}
	return Accepted, m, nil
}

// Due returns route's pending messages whose NextAttempt is at or before
// now, earliest first, at most n, leaving out those skip reports (nil =
// none), e.g. ones already in flight.
func (s *Store) Due(route string, now time.Time, n int, skip func(id string) bool) ([]Message, error) {
	var out []Message
	err := s.db.View(func(tx *bolt.Tx) error {
		prefix := routeKey(nil, route)
		end := timeBytes(now)
		c := tx.Bucket(bucketDue).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(out) < n; k, _ = c.Next() {
			rest := k[len(prefix):]
			if len(rest) < 8 || bytes.Compare(rest[:8], end) > 0 {
				break
			}
			id := string(rest[8:])
			if skip != nil && skip(id) {
				continue
			}
			m, err := getMessage(tx, id)
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("webhook store: due: %w", err)
	}
	return out, nil
}

// NextDue returns the earliest NextAttempt among route's pending messages;
// ok is false when none is pending.
func (s *Store) NextDue(route string) (at time.Time, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		prefix := routeKey(nil, route)
		k, _ := tx.Bucket(bucketDue).Cursor().Seek(prefix)
		if k == nil || !bytes.HasPrefix(k, prefix) || len(k) < len(prefix)+8 {
			return nil
		}
		at, ok = timeFrom(k[len(prefix):]), true
		return nil
	})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("webhook store: next due: %w", err)
	}
	return at, ok, nil
}

// Reschedule records a failed attempt of a pending message and sets its
// next one. An unknown or non-pending id is an error wrapping ErrNoMessage.
func (s *Store) Reschedule(id string, next time.Time, lastErr string) error {
	return s.update("reschedule", func(tx *bolt.Tx) error {
		m, err := getPending(tx, id)
		if err != nil {
			return err
		}
		if err := leaveState(tx, m); err != nil {
			return err
		}
		m.Attempts++
		m.NextAttempt, m.LastError = next.UTC(), lastErr
		return enterState(tx, m)
	})
}

// Finish records a pending message's last attempt and moves it to st,
// delivered or dead. An unknown or non-pending id is an error wrapping
// ErrNoMessage.
func (s *Store) Finish(id string, st State, lastErr string) error {
	if st != StateDelivered && st != StateDead {
		return fmt.Errorf("webhook store: finish %s: state %q is not delivered or dead", id, st)
	}
	return s.update("finish", func(tx *bolt.Tx) error {
		m, err := getPending(tx, id)
		if err != nil {
			return err
		}
		if err := leaveState(tx, m); err != nil {
			return err
		}
		m.Attempts++
		m.State, m.LastError = st, lastErr
		return enterState(tx, m)
	})
}

// update runs fn in a shared commit, naming op in its error.
func (s *Store) update(op string, fn func(tx *bolt.Tx) error) error {
	if err := s.db.Batch(fn); err != nil {
		return fmt.Errorf("webhook store: %s: %w", op, err)
	}
	return nil
}

// Get returns the message with id, or an error wrapping ErrNoMessage.
func (s *Store) Get(id string) (Message, error) {
	var m Message
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		m, err = getMessage(tx, id)
		return err
	})
	if err != nil {
		return Message{}, fmt.Errorf("webhook store: get: %w", err)
	}
	return m, nil
}

// List returns at most limit (0 = no limit) messages of route ("" = every
// route) in state st ("" = every state), newest received first. Every
// case reads an index in order, except one route in every state, which
// reads every message's receipt entry and keeps the route's.
func (s *Store) List(route string, st State, limit int) ([]Message, error) {
	if st != "" && stateOrdinals[st] == 0 {
		return nil, fmt.Errorf("webhook store: list: unknown state %q", st)
	}
	if limit <= 0 {
		limit = int(^uint(0) >> 1)
	}
	var out []Message
	err := s.db.View(func(tx *bolt.Tx) error {
		var c *bolt.Cursor
		var prefix []byte
		switch {
		case st == "":
			c = tx.Bucket(bucketRecv).Cursor()
		case route == "":
			c, prefix = tx.Bucket(bucketState).Cursor(), []byte{stateOrdinals[st]}
		default:
			c, prefix = tx.Bucket(bucketRState).Cursor(), routeKey([]byte{stateOrdinals[st]}, route)
		}
		for k, _ := seekLast(c, prefix); k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, _ = c.Prev() {
			m, err := getMessage(tx, idFrom(k[len(prefix):]))
			if err != nil {
				return err
			}
			if route == "" || m.Route == route {
				out = append(out, m)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("webhook store: list: %w", err)
	}
	return out, nil
}

// seekLast places c on the last key with prefix (the last key of all
// when prefix is empty), nil when there is none.
func seekLast(c *bolt.Cursor, prefix []byte) ([]byte, []byte) {
	if len(prefix) == 0 {
		return c.Last()
	}
	end := append(append([]byte(nil), prefix...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	k, v := c.Seek(end)
	if k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	if k == nil || !bytes.HasPrefix(k, prefix) {
		return nil, nil
	}
	return k, v
}

// Replay makes a delivered or dead message of route ("" = any) pending
// again, due now, keeping its ID and attempts. It returns 0 for a message
// already pending, and an error wrapping ErrNoMessage for an unknown id.
func (s *Store) Replay(route, id string) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		n = 0
		m, err := getMessage(tx, id)
		if err != nil {
			return err
		}
		if route != "" && m.Route != route {
			return fmt.Errorf("%s is not a message of route %s: %w", id, route, ErrNoMessage)
		}
		if m.State == StatePending {
			return nil
		}
		n = 1
		return replay(tx, m, s.now())
	})
	if err != nil {
		return 0, fmt.Errorf("webhook store: replay: %w", err)
	}
	return n, nil
}

// ReplayState makes every message of route ("" = every route) in state
// st, delivered or dead, pending again, due now. It returns how many.
func (s *Store) ReplayState(route string, st State) (int, error) {
	if st != StateDelivered && st != StateDead {
		return 0, fmt.Errorf("webhook store: replay: state %q is not delivered or dead", st)
	}
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		n = 0
		var ids []string
		prefix := []byte{stateOrdinals[st]}
		b := tx.Bucket(bucketState)
		if route != "" {
			prefix, b = routeKey(prefix, route), tx.Bucket(bucketRState)
		}
		c := b.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			ids = append(ids, idFrom(k[len(prefix):]))
		}
		now := s.now()
		for _, id := range ids {
			m, err := getMessage(tx, id)
			if err != nil {
				return err
			}
			if err := replay(tx, m, now); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("webhook store: replay: %w", err)
	}
	return n, nil
}

func replay(tx *bolt.Tx, m Message, now time.Time) error {
	if err := leaveState(tx, m); err != nil {
		return err
	}
	m.State, m.NextAttempt = StatePending, now.UTC()
	return enterState(tx, m)
}

// Stats returns each route's counts, kept as counters in the store (no
// scan of the messages).
func (s *Store) Stats() (map[string]RouteStats, error) {
	out := map[string]RouteStats{}
	err := s.db.View(func(tx *bolt.Tx) error {
		states := tx.Bucket(bucketRState).Cursor()
		return tx.Bucket(bucketCount).ForEach(func(k, v []byte) error {
			c := decodeCounts(v)
			rs := RouteStats{Pending: int(c[0]), Delivered: int(c[1]), Dead: int(c[2])}
			prefix := routeKey([]byte{stateOrdinals[StatePending]}, string(k))
			if p, _ := states.Seek(prefix); p != nil && bytes.HasPrefix(p, prefix) {
				rs.OldestPending = timeFrom(p[len(prefix):])
			}
			out[string(k)] = rs
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("webhook store: stats: %w", err)
	}
	return out, nil
}

// sweepChunk bounds one Sweep transaction, so that a large sweep does not
// hold the writer lock (and every acknowledgement) for long.
const sweepChunk = 5000

// Sweep drops the dedupe keys and the finished (delivered or dead)
// messages received more than the retention before now; pending messages
// stay (their keys go). It returns how many messages it dropped.
func (s *Store) Sweep(now time.Time) (int, error) {
	cutoff := timeBytes(now.Add(-s.retention))
	total := 0
	var from []byte
	for {
		n, next, err := s.sweepChunk(from, cutoff)
		total += n
		if err != nil {
			return total, fmt.Errorf("webhook store: sweep: %w", err)
		}
		if next == nil {
			return total, nil
		}
		from = next
	}
}

// sweepChunk sweeps up to sweepChunk messages received before cutoff,
// starting at the recv key from (nil = the first). It returns where the
// next chunk starts, nil when done.
func (s *Store) sweepChunk(from, cutoff []byte) (int, []byte, error) {
	var n int
	var next []byte
	err := s.db.Update(func(tx *bolt.Tx) error {
		n, next = 0, nil
		var ids []string
		c := tx.Bucket(bucketRecv).Cursor()
		k, _ := c.First()
		if from != nil {
			k, _ = c.Seek(from)
		}
		for ; k != nil && bytes.Compare(k[:8], cutoff) < 0; k, _ = c.Next() {
			if len(ids) == sweepChunk {
				next = append([]byte(nil), k...)
				break
			}
			ids = append(ids, idFrom(k))
		}
		for _, id := range ids {
			dropped, err := sweepOne(tx, id)
			if err != nil {
				return err
			}
			if dropped {
				n++
			}
		}
		return nil
	})
	return n, next, err
}

// sweepOne drops a message's dedupe key and, when it is finished, the
// message itself.
func sweepOne(tx *bolt.Tx, id string) (bool, error) {
	m, err := getMessage(tx, id)
	if err != nil {
		return false, err
	}
	keys := tx.Bucket(bucketKey)
	if string(keys.Get([]byte(m.Key))) == id {
		if err := keys.Delete([]byte(m.Key)); err != nil {
			return false, err
		}
	}
	if m.State == StatePending {
		return false, nil
	}
	if err := leaveState(tx, m); err != nil {
		return false, err
	}
	if err := tx.Bucket(bucketRecv).Delete(timeKey(nil, m.ReceivedAt, id)); err != nil {
		return false, err
	}
	return true, tx.Bucket(bucketMsg).Delete([]byte(id))
}

// Expect records an expectation, replacing the one for the same route and
// Sid.
func (s *Store) Expect(e Expectation) error {
	e.At = e.At.UTC()
	return s.update("expect", func(tx *bolt.Tx) error {
		if err := fulfil(tx, e.Route, e.Sid); err != nil {
			return err
		}
		v, err := json.Marshal(e)
		if err != nil {
			return err
		}
		k := expKey(e.Route, e.Sid)
		if err := tx.Bucket(bucketExp).Put(k, v); err != nil {
			return err
		}
		return tx.Bucket(bucketExpDue).Put(timeKey(nil, e.At, string(k)), nil)
	})
}

// DueExpectations returns at most n expectations due at or before now,
// earliest first.
func (s *Store) DueExpectations(now time.Time, n int) ([]Expectation, error) {
	var out []Expectation
	err := s.db.View(func(tx *bolt.Tx) error {
		end := timeBytes(now)
		exps := tx.Bucket(bucketExp)
		c := tx.Bucket(bucketExpDue).Cursor()
		for k, _ := c.First(); k != nil && len(out) < n && bytes.Compare(k[:8], end) <= 0; k, _ = c.Next() {
			var e Expectation
			if err := json.Unmarshal(exps.Get(k[8:]), &e); err != nil {
				return fmt.Errorf("expectation %q: %w", k[8:], err)
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("webhook store: due expectations: %w", err)
	}
	return out, nil
}

// Postpone moves the expectation for route and sid to at. An absent one
// is an error wrapping ErrNoMessage.
func (s *Store) Postpone(route, sid string, at time.Time) error {
	return s.update("postpone", func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketExp).Get(expKey(route, sid))
		if v == nil {
			return fmt.Errorf("no expectation for %s in route %s: %w", sid, route, ErrNoMessage)
		}
		var e Expectation
		if err := json.Unmarshal(v, &e); err != nil {
			return err
		}
		if err := fulfil(tx, route, sid); err != nil {
			return err
		}
		e.At = at.UTC()
		v, err := json.Marshal(e)
		if err != nil {
			return err
		}
		k := expKey(route, sid)
		if err := tx.Bucket(bucketExp).Put(k, v); err != nil {
			return err
		}
		return tx.Bucket(bucketExpDue).Put(timeKey(nil, e.At, string(k)), nil)
	})
}

// Fulfil removes the expectation for route and sid, if there is one.
func (s *Store) Fulfil(route, sid string) error {
	return s.update("fulfil", func(tx *bolt.Tx) error { return fulfil(tx, route, sid) })
}

func fulfil(tx *bolt.Tx, route, sid string) error {
	k := expKey(route, sid)
	exps := tx.Bucket(bucketExp)
	v := exps.Get(k)
	if v == nil {
		return nil
	}
	var e Expectation
	if err := json.Unmarshal(v, &e); err != nil {
		return err
	}
	if err := tx.Bucket(bucketExpDue).Delete(timeKey(nil, e.At, string(k))); err != nil {
		return err
	}
	return exps.Delete(k)
}

func expKey(route, sid string) []byte { return append(routeKey(nil, route), sid...) }

// enterState writes m and the index entries and counter of its state.
func enterState(tx *bolt.Tx, m Message) error {
	if err := putMessage(tx, m); err != nil {
		return err
	}
	return indexState(tx, m, 1)
}

// leaveState removes the index entries and counter of m's state.
func leaveState(tx *bolt.Tx, m Message) error { return indexState(tx, m, -1) }

func indexState(tx *bolt.Tx, m Message, delta int64) error {
	st := stateOrdinals[m.State]
	keys := []struct {
		b []byte
		k []byte
	}{
		{bucketState, timeKey([]byte{st}, m.ReceivedAt, m.ID)},
		{bucketRState, timeKey(routeKey([]byte{st}, m.Route), m.ReceivedAt, m.ID)},
	}
	if m.State == StatePending {
		keys = append(keys, struct{ b, k []byte }{bucketDue, timeKey(routeKey(nil, m.Route), m.NextAttempt, m.ID)})
	}
	for _, e := range keys {
		var err error
		if delta > 0 {
			err = tx.Bucket(e.b).Put(e.k, nil)
		} else {
			err = tx.Bucket(e.b).Delete(e.k)
		}
		if err != nil {
			return err
		}
	}
	return count(tx, m.Route, m.State, delta)
}

func count(tx *bolt.Tx, route string, st State, delta int64) error {
	b := tx.Bucket(bucketCount)
	c := decodeCounts(b.Get([]byte(route)))
	switch st {
	case StatePending:
		c[0] += delta
	case StateDelivered:
		c[1] += delta
	case StateDead:
		c[2] += delta
	}
	if c == [3]int64{} {
		return b.Delete([]byte(route))
	}
	v := make([]byte, 24)
	for i, n := range c {
		binary.BigEndian.PutUint64(v[i*8:], uint64(n))
	}
	return b.Put([]byte(route), v)
}

func decodeCounts(v []byte) [3]int64 {
	var c [3]int64
	if len(v) != 24 {
		return c
	}
	for i := range c {
		c[i] = int64(binary.BigEndian.Uint64(v[i*8:]))
	}
	return c
}

func getPending(tx *bolt.Tx, id string) (Message, error) {
	m, err := getMessage(tx, id)
	if err != nil {
		return Message{}, err
	}
	if m.State != StatePending {
		return Message{}, fmt.Errorf("message %s is %s, not pending: %w", id, m.State, ErrNoMessage)
	}
	return m, nil
}

// record is a message as stored: the format on disk, apart from the API.
type record struct {
	ID          string    `json:"id"`
	Route       string    `json:"route"`
	Account     string    `json:"account,omitempty"`
	Key         string    `json:"key"`
	Sid         string    `json:"sid,omitempty"`
	Terminal    bool      `json:"terminal,omitempty"`
	ContentType string    `json:"content_type,omitempty"`
	Body        []byte    `json:"body"`
	Source      Source    `json:"source"`
	ReceivedAt  time.Time `json:"received_at"`
	State       State     `json:"state"`
	Attempts    int       `json:"attempts,omitempty"`
	NextAttempt time.Time `json:"next_attempt"`
	LastError   string    `json:"last_error,omitempty"`
	Variants    int       `json:"variants,omitempty"`
}

func putMessage(tx *bolt.Tx, m Message) error {
	v, err := json.Marshal(record(m))
	if err != nil {
		return err
	}
	return tx.Bucket(bucketMsg).Put([]byte(m.ID), v)
}

func getMessage(tx *bolt.Tx, id string) (Message, error) {
	v := tx.Bucket(bucketMsg).Get([]byte(id))
	if v == nil {
		return Message{}, fmt.Errorf("%s: %w", id, ErrNoMessage)
	}
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		return Message{}, fmt.Errorf("message %s: %w", id, err)
	}
	return Message(r), nil
}

// routeKey appends route, length first, to b.
func routeKey(b []byte, route string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(route)))
	return append(b, route...)
}

// timeKey appends t and id to b.
func timeKey(b []byte, t time.Time, id string) []byte {
	return append(append(b, timeBytes(t)...), id...)
}

// timeBytes encodes t so that byte order is time order (the sign bit
// flipped so that times before 1970 sort first).
func timeBytes(t time.Time) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano())^(1<<63))
}

func timeFrom(b []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(b)^(1<<63))).UTC()
}

// idFrom takes the id after a key's 8-byte time.
func idFrom(k []byte) string { return string(k[8:]) }

var idEncoding = base32.HexEncoding.WithPadding(base32.NoPadding)

// newMessageID returns "msg_" and 26 base32 characters: 48 bits of the
// current Unix time in milliseconds, then 80 bits of randomness. The
// encoding keeps byte order, so ids made later sort later and a new
// message's record lands at the end of the msg bucket instead of on a
// random page: each commit rewrites fewer pages (docs/benchmarks.md).
func newMessageID() string {
	return "msg_" + strings.ToLower(idEncoding.EncodeToString(timeOrderedID(time.Now())))
}

func timeOrderedID(t time.Time) []byte {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixMilli())<<16)
	rand.Read(b[6:])
	return b[:]
}
