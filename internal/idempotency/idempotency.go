// Package idempotency keeps what Exotel answered to a request sent with an
// Idempotency-Key, so that a retry of the same request gets that answer
// again instead of placing a second call or sending a second SMS. It
// follows draft-ietf-httpapi-idempotency-key-header: the first request
// with a key reserves it atomically and is forwarded once; a repeat while
// it is in flight is a conflict, a repeat with another request under the
// same key a mismatch, and a repeat after it finished gets its answer.
//
// Keys hold the rules (leases, fingerprints, outcomes); a Backend holds
// the bytes, in memory (one process) or in Redis (every replica). A key
// whose outcome is unknown (the request was sent and its answer lost, or
// the process holding it died) is never released: a retry gets the unknown
// outcome again rather than a second call.
package idempotency

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// DefaultTTL is how long an outcome is kept when Options.TTL is zero.
const DefaultTTL = 24 * time.Hour

// Backend stores the encoded entries of Keys. Both methods are atomic
// with respect to each other, in every process sharing the backend.
type Backend interface {
	// Add stores val under key for ttl unless key holds a value; it
	// returns the value held, or nil when it stored val.
	Add(ctx context.Context, key string, val []byte, ttl time.Duration) (held []byte, err error)
	// Swap replaces old under key with val for ttl (val nil: deletes the
	// key) if key still holds old, and reports whether it did.
	Swap(ctx context.Context, key string, old, val []byte, ttl time.Duration) (bool, error)
}

// Scope is what a key belongs to: two scopes never see each other's keys.
type Scope struct {
	Client  string // the caller's client id, "" when anonymous
	Account string
	Method  string
	Path    string
}

// Fingerprint identifies a request's content (FingerprintOf): a key
// reused with another fingerprint is a mismatch.
type Fingerprint [sha256.Size]byte

// FingerprintOf returns the fingerprint of a request's body and of the
// parts that tell it apart besides (its content type, its query string,
// the shape of its answer).
func FingerprintOf(body []byte, parts ...string) Fingerprint {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s", len(p), p)
	}
	h.Write(body)
	var f Fingerprint
	h.Sum(f[:0])
	return f
}

// State is what Begin found for a key.
type State int

const (
	// Reserved: the caller holds the key; it forwards the request, then
	// calls Finish or Release on the Claim.
	Reserved State = iota + 1
	// InFlight: another request with this key is being served.
	InFlight
	// Mismatch: the key was used for another request.
	Mismatch
	// Replay: a request with this key finished; Answer is its outcome.
	Replay
)

// Answer is an outcome kept for a key.
type Answer struct {
	Status      int    `json:"status,omitempty"`
	ContentType string `json:"type,omitempty"`
	Body        []byte `json:"body,omitempty"`
	// Unknown: the request may have been carried out and its answer was
	// lost; Status is the gateway's own (502 or 504) and Body empty.
	Unknown bool `json:"unknown,omitempty"`
}

// entry is what a Backend holds for a key, JSON-encoded: a reservation
// (Lease set, no Answer) or an outcome.
type entry struct {
	Fingerprint string  `json:"fp"`
	Token       string  `json:"token,omitempty"` // the reservation's holder
	Lease       int64   `json:"lease,omitempty"` // Unix ms: the holder's reservation ends
	Expires     int64   `json:"exp"`             // Unix ms: the key is forgotten
	Answer      *Answer `json:"answer,omitempty"`
}

// Options configures Keys. The zero value works.
type Options struct {
	// TTL is how long a key and its outcome are kept (0: DefaultTTL), at
	// least the Lease.
	TTL time.Duration
	// Lease is how long a reservation holds before a process that died
	// holding it is presumed to have sent the request: the key's outcome
	// becomes unknown. It must outlast the upstream timeout (0: 2 min).
	Lease time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Keys applies the idempotency rules over a Backend. Safe for concurrent
// use.
type Keys struct {
	backend Backend
	ttl     time.Duration
	lease   time.Duration
	now     func() time.Time
	counts  [numEvents]atomic.Uint64
}

// New makes Keys over backend.
func New(backend Backend, o Options) *Keys {
	k := &Keys{backend: backend, ttl: o.TTL, lease: o.Lease, now: o.Now}
	if k.ttl <= 0 {
		k.ttl = DefaultTTL
	}
	if k.lease <= 0 {
		k.lease = 2 * time.Minute
	}
	if k.now == nil {
		k.now = time.Now
	}
	// A key is not forgotten while its reservation holds: a retry would be
	// forwarded while the first request may still be at Exotel.
	k.ttl = max(k.ttl, k.lease)
	return k
}

// Claim is a reservation held by one request.
type Claim struct {
	keys   *Keys
	id     string
	held   []byte // the reservation as stored
	fp     string
	expiry int64
}

// Begin looks key up in scope for a request with fingerprint fp and
// reserves it when it is free. With Reserved, the Claim is the caller's
// to Finish or Release; with Replay, the Answer is the first request's
// outcome.
func (k *Keys) Begin(ctx context.Context, s Scope, key string, fp Fingerprint) (State, *Claim, *Answer, error) {
	id := storageKey(s, key)
	now := k.now()
	token, err := newToken()
	if err != nil {
		return 0, nil, nil, err
	}
	e := entry{Fingerprint: hex.EncodeToString(fp[:]), Token: token, Lease: now.Add(k.lease).UnixMilli(), Expires: now.Add(k.ttl).UnixMilli()}
	val, _ := json.Marshal(e)
	for range 3 {
		held, err := k.backend.Add(ctx, id, val, k.ttl)
		if err != nil {
			k.count(evBackendError)
			return 0, nil, nil, fmt.Errorf("%w: %v", ErrBackend, err)
		}
		if held == nil {
			k.count(evReserved)
			return Reserved, &Claim{keys: k, id: id, held: val, fp: e.Fingerprint, expiry: e.Expires}, nil, nil
		}
		state, ans, retry, err := k.judge(ctx, id, held, e.Fingerprint, now)
		if err != nil {
			k.count(evBackendError)
			return 0, nil, nil, fmt.Errorf("%w: %v", ErrBackend, err)
		}
		if !retry {
			return state, nil, ans, nil
		}
	}
	// The key changed under us three times in a row: someone holds it.
	k.count(evConflict)
	return InFlight, nil, nil, nil
}

// judge decides what a request with fingerprint fp gets for the entry
// held under id. A reservation whose lease ran out becomes an unknown
// outcome (retry: look again, as the swap may have lost to another).
func (k *Keys) judge(ctx context.Context, id string, held []byte, fp string, now time.Time) (State, *Answer, bool, error) {
	var e entry
	if err := json.Unmarshal(held, &e); err != nil {
		return 0, nil, false, fmt.Errorf("idempotency: unreadable entry: %w", err)
	}
	if e.Fingerprint != fp {
		k.count(evMismatch)
		return Mismatch, nil, false, nil
	}
	if e.Answer != nil {
		k.count(evReplayed)
		return Replay, e.Answer, false, nil
	}
	if now.UnixMilli() < e.Lease {
		k.count(evConflict)
		return InFlight, nil, false, nil
	}
	// The holder died or hung past any upstream timeout: whatever it sent
	// may have been carried out.
	done := entry{Fingerprint: e.Fingerprint, Expires: e.Expires, Answer: &Answer{Status: 504, Unknown: true}}
	val, _ := json.Marshal(done)
	if _, err := k.backend.Swap(ctx, id, held, val, k.left(e.Expires)); err != nil {
		return 0, nil, false, err
	}
	k.count(evUnknown)
	return 0, nil, true, nil
}

// Finish keeps a as the key's outcome for the rest of its TTL. It leaves
// the key as it is if another holds it (the lease ran out and the outcome
// became unknown); if the key is gone (a Redis restarted empty), a is
// kept all the same, so that a retry is not forwarded again.
func (c *Claim) Finish(ctx context.Context, a Answer) error {
	e := entry{Fingerprint: c.fp, Expires: c.expiry, Answer: &a}
	val, _ := json.Marshal(e)
	if a.Unknown {
		c.keys.count(evUnknown)
	}
	swapped, err := c.keys.backend.Swap(ctx, c.id, c.held, val, c.keys.left(c.expiry))
	if err == nil && !swapped {
		_, err = c.keys.backend.Add(ctx, c.id, val, c.keys.left(c.expiry))
	}
	if err != nil {
		c.keys.count(evBackendError)
		return fmt.Errorf("%w: %v", ErrBackend, err)
	}
	return nil
}

// left is the time from now to the Unix millisecond expiry, at least a
// millisecond.
func (k *Keys) left(expiry int64) time.Duration {
	return max(time.UnixMilli(expiry).Sub(k.now()), time.Millisecond)
}

// Release frees the key: nothing was sent upstream, or Exotel acted on
// nothing, so a retry is forwarded.
func (c *Claim) Release(ctx context.Context) error {
	c.keys.count(evReleased)
	_, err := c.keys.backend.Swap(ctx, c.id, c.held, nil, 0)
	if err != nil {
		c.keys.count(evBackendError)
		return fmt.Errorf("%w: %v", ErrBackend, err)
	}
	return nil
}

// storageKey is the backend's key for key in scope: a hash, so that a
// caller's key is never part of a Redis key or a log line, and scopes
// cannot run into each other whatever their fields hold.
func storageKey(s Scope, key string) string {
	h := sha256.New()
	for _, f := range []string{s.Client, s.Account, s.Method, s.Path, key} {
		fmt.Fprintf(h, "%d:%s", len(f), f)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func newToken() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// ValidKey reports whether key is 1 to 255 visible ASCII characters, as a
// key must be.
func ValidKey(key string) bool {
	if key == "" || len(key) > 255 {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] <= ' ' || key[i] > '~' {
			return false
		}
	}
	return true
}

// ErrBackend wraps a backend's failure.
var ErrBackend = errors.New("idempotency: backend unavailable")
