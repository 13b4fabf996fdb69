package webhooks

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// memStore is a queue in memory with the store's semantics, until the
// store exists.
type memStore struct {
	mu     sync.Mutex
	msgs   map[string]*Message
	keys   map[string]string // dedupe key → id
	expect map[string]Expectation
	closed bool
	now    func() time.Time
}

var _ queue = (*memStore)(nil)

func newMemStore(now func() time.Time) *memStore {
	return &memStore{now: now, msgs: map[string]*Message{}, keys: map[string]string{}, expect: map[string]Expectation{}}
}

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "msg_" + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)[:26]
}

func (s *memStore) Accept(m Message) (Outcome, Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, Message{}, errors.New("store closed")
	}
	if id, ok := s.keys[m.Key]; ok {
		old := s.msgs[id]
		if bytes.Equal(old.Body, m.Body) {
			return Duplicate, *old, nil
		}
		old.Variants++
		return Variant, *old, nil
	}
	if m.ID == "" {
		m.ID = newID()
	}
	m.State, m.NextAttempt = StatePending, m.ReceivedAt
	m.Body = bytes.Clone(m.Body)
	s.msgs[m.ID] = &m
	s.keys[m.Key] = m.ID
	if m.Terminal {
		delete(s.expect, m.Route+"|"+m.Sid)
	}
	return Accepted, m, nil
}

func (s *memStore) sorted(f func(*Message) bool) []Message {
	var out []Message
	for _, m := range s.msgs {
		if f(m) {
			out = append(out, *m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NextAttempt.Before(out[j].NextAttempt) })
	return out
}

func (s *memStore) Due(route string, now time.Time, n int, skip func(string) bool) ([]Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	out := s.sorted(func(m *Message) bool {
		return m.Route == route && m.State == StatePending && !m.NextAttempt.After(now) && (skip == nil || !skip(m.ID))
	})
	if len(out) > n {
		out = out[:n]
	}
	return out, nil
}

func (s *memStore) NextDue(route string) (time.Time, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.sorted(func(m *Message) bool { return m.Route == route && m.State == StatePending })
	if len(out) == 0 {
		return time.Time{}, false, nil
	}
	return out[0].NextAttempt, true, nil
}

func (s *memStore) pending(id string) (*Message, error) {
	m, ok := s.msgs[id]
	if !ok || m.State != StatePending {
		return nil, fmt.Errorf("%s: %w", id, ErrNoMessage)
	}
	return m, nil
}

func (s *memStore) Reschedule(id string, next time.Time, lastErr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.pending(id)
	if err != nil {
		return err
	}
	m.NextAttempt, m.LastError = next, lastErr
	m.Attempts++
	return nil
}

func (s *memStore) Finish(id string, st State, lastErr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.pending(id)
	if err != nil {
		return err
	}
	m.State, m.LastError = st, lastErr
	m.Attempts++
	return nil
}

func (s *memStore) Get(id string) (Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.msgs[id]
	if !ok {
		return Message{}, ErrNoMessage
	}
	return *m, nil
}

func (s *memStore) List(route string, st State, limit int) ([]Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.sorted(func(m *Message) bool { return (route == "" || m.Route == route) && m.State == st })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (s *memStore) Replay(route, id string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.msgs[id]
	if !ok || m.Route != route || m.State == StatePending {
		return 0, ErrNoMessage
	}
	m.State, m.NextAttempt = StatePending, s.now()
	return 1, nil
}

func (s *memStore) ReplayState(route string, st State) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.msgs {
		if (route == "" || m.Route == route) && m.State == st {
			m.State, m.NextAttempt = StatePending, s.now()
			n++
		}
	}
	return n, nil
}

func (s *memStore) Stats() (map[string]RouteStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]RouteStats{}
	for _, m := range s.msgs {
		rs := out[m.Route]
		switch m.State {
		case StatePending:
			rs.Pending++
			if rs.OldestPending.IsZero() || m.ReceivedAt.Before(rs.OldestPending) {
				rs.OldestPending = m.ReceivedAt
			}
		case StateDelivered:
			rs.Delivered++
		case StateDead:
			rs.Dead++
		}
		out[m.Route] = rs
	}
	return out, nil
}

func (s *memStore) Sweep(time.Time) (int, error) { return 0, nil }

func (s *memStore) Expect(e Expectation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.expect[e.Route+"|"+e.Sid]; !ok {
		s.expect[e.Route+"|"+e.Sid] = e
	}
	return nil
}

func (s *memStore) DueExpectations(now time.Time, n int) ([]Expectation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Expectation
	for _, e := range s.expect {
		if !e.At.After(now) && len(out) < n {
			out = append(out, e)
		}
	}
	return out, nil
}

func (s *memStore) Postpone(route, sid string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.expect[route+"|"+sid]; ok {
		e.At = at
		s.expect[route+"|"+sid] = e
	}
	return nil
}

func (s *memStore) Fulfil(route, sid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.expect, route+"|"+sid)
	return nil
}

func (s *memStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
