package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Config configures a [Memory]. The zero Config limits nothing and never
// waits.
type Config struct {
	// MaxWait is how long a caller may queue for a token. 0 means no
	// queueing: a caller that finds no token is turned away at once.
	MaxWait time.Duration

	// Buckets holds one Rule per bucket name ("voice_v1", "voice_v2", "sms",
	// "whatsapp", "other"), applied to each account on its own. A bucket
	// that is missing, or whose Rule is off, is unlimited (but still counts
	// towards Account).
	Buckets map[string]Rule

	// Account optionally caps one account's requests across all its
	// buckets. The zero Rule is off.
	Account Rule

	// Now tells the time. If nil, time.Now is used. Waiting uses the
	// runtime's timers, so a test that injects a fake Now must not let
	// Admit wait, or must run inside a testing/synctest bubble (where
	// time.Now is already fake and Now can stay nil).
	Now func() time.Time
}

// Memory is the in-process limiter: one token bucket per account × bucket,
// plus the optional cap per account, all kept in memory. The set of accounts
// is fixed when it is made, so its state never grows with traffic.
//
// Create one with [NewMemory]. A zero Memory knows no accounts: its Admit
// returns [ErrUnknownAccount]. Memory is safe for concurrent use.
type Memory struct {
	maxWait  time.Duration
	now      func() time.Time
	epoch    time.Time           // instant 0 of the schedules' nanoseconds
	buckets  map[string]int      // limited bucket name → index into lanes
	accounts map[string]*account // by lower-case SID
}

// account is one account's state.
type account struct {
	// mu guards every schedule of the account when it has a cap, because a
	// booking then spans the bucket and the cap.
	mu sync.Mutex
	// lanes holds one lane per limited bucket, then one for every other
	// bucket.
	lanes []lane
}

// lane is the pair of schedules one request is booked in.
type lane struct {
	mu     *sync.Mutex // &own, or the account's mu when it has a cap
	own    sync.Mutex
	bucket *schedule // nil: the bucket is unlimited
	cap    *schedule // nil: the account has no cap
}

// NewMemory returns a Memory for the given accounts (lower-case SIDs) and
// limits. It reports an invalid Rule, a negative MaxWait, and an empty,
// duplicate or not lower-case SID.
func NewMemory(accounts []string, cfg Config) (*Memory, error) {
	if cfg.MaxWait < 0 {
		return nil, fmt.Errorf("ratelimit: max wait %v must not be negative", cfg.MaxWait)
	}
	names := make([]string, 0, len(cfg.Buckets))
	for name, r := range cfg.Buckets {
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("ratelimit: bucket %q: %w", name, err)
		}
		if r.Limit > 0 {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	if err := cfg.Account.Validate(); err != nil {
		return nil, fmt.Errorf("ratelimit: account cap: %w", err)
	}

	m := &Memory{
		maxWait:  cfg.MaxWait,
		now:      cfg.Now,
		buckets:  make(map[string]int, len(names)),
		accounts: make(map[string]*account, len(accounts)),
	}
	if m.now == nil {
		m.now = time.Now
	}
	m.epoch = m.now()
	for i, name := range names {
		m.buckets[name] = i
	}
	for _, sid := range accounts {
		switch {
		case sid == "":
			return nil, errors.New("ratelimit: empty account SID")
		case sid != strings.ToLower(sid):
			return nil, fmt.Errorf("ratelimit: account SID %q is not lower-case", sid)
		case m.accounts[sid] != nil:
			return nil, fmt.Errorf("ratelimit: duplicate account SID %q", sid)
		}
		a := &account{lanes: make([]lane, len(names)+1)}
		var capSched *schedule
		if cfg.Account.Limit > 0 {
			capSched = newSchedule(cfg.Account, cfg.MaxWait)
		}
		for i := range a.lanes {
			l := &a.lanes[i]
			l.mu, l.cap = &l.own, capSched
			if capSched != nil {
				l.mu = &a.mu
			}
			if i < len(names) {
				l.bucket = newSchedule(cfg.Buckets[names[i]], cfg.MaxWait)
			}
		}
		m.accounts[sid] = a
	}
	return m, nil
}

// Admit waits in line for a token for the account's bucket (and for the
// account cap, if any), at most Config.MaxWait and never until ctx's
// deadline, and returns how long the caller waited. account must be a
// lower-case SID; a bucket without a Rule is unlimited.
//
// When the wait would exceed MaxWait, or reach ctx's deadline, Admit returns
// at once, without waiting and without taking a token, a [*LimitedError]
// (which wraps [ErrLimited]) telling when a token would have been the
// caller's. If ctx is done before Admit is called, or is cancelled while the
// caller waits, Admit returns ctx.Err() and gives the reservation back. An
// unknown account gives [ErrUnknownAccount].
//
// Admit does not allocate when it admits without waiting.
func (m *Memory) Admit(ctx context.Context, account, bucket string) (waited time.Duration, err error) {
	acct := m.accounts[account]
	if acct == nil {
		return 0, ErrUnknownAccount
	}
	i, ok := m.buckets[bucket]
	if !ok {
		i = len(acct.lanes) - 1
	}
	l := &acct.lanes[i]
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if l.bucket == nil && l.cap == nil {
		return 0, nil
	}

	start := m.now()
	l.mu.Lock()
	now, at := l.earliest(int64(start.Sub(m.epoch)))
	wait := time.Duration(at - now)
	if wait > m.maxWait || wait > 0 && m.pastDeadline(ctx, at) {
		l.mu.Unlock()
		return 0, &LimitedError{Delay: max(wait, time.Millisecond)}
	}
	l.book(at)
	l.mu.Unlock()
	if wait == 0 {
		return 0, nil
	}

	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return wait, nil
	case <-ctx.Done():
		l.mu.Lock()
		l.cancel(at)
		l.mu.Unlock()
		return max(m.now().Sub(start), 0), ctx.Err()
	}
}

// pastDeadline reports whether the instant at (in the schedules'
// nanoseconds) is at or after ctx's deadline: reaching the deadline exactly
// counts, as the context would end just as the wait does.
func (m *Memory) pastDeadline(ctx context.Context, at int64) bool {
	deadline, ok := ctx.Deadline()
	return ok && !m.epoch.Add(time.Duration(at)).Before(deadline)
}

// earliest brings l's schedules up to t and returns the time it took as now
// and the earliest instant at >= now at which a request on l conforms to both
// its schedules, after every booking already made on the bucket (first come,
// first served). l.mu must be held.
//
// now is t, or later if a schedule has already been brought further: callers
// read the clock before they take the lock, so one that read it a little
// earlier may get the lock a little later. Real time is then past that
// schedule's instant, so counting from there neither waits for nothing nor
// lets time run backwards (nor does a fake clock that goes back).
func (l *lane) earliest(t int64) (now, at int64) {
	if l.bucket != nil {
		t = max(t, l.bucket.settled)
	}
	if l.cap != nil {
		t = max(t, l.cap.settled)
		l.cap.settle(t)
	}
	x := t
	if l.bucket != nil {
		l.bucket.settle(t)
		if n := len(l.bucket.future); n > 0 {
			x = max(x, l.bucket.future[n-1])
		}
	}
	// Alternate until both agree. x is at or after the bucket's last
	// booking, so once an instant conforms to the bucket every later one
	// does too: the second round, which starts from the cap's answer, ends
	// it at the latest.
	for {
		at = x
		if l.bucket != nil {
			at = l.bucket.earliest(at)
		}
		if l.cap == nil {
			return t, at
		}
		if x = l.cap.earliest(at); x == at {
			return t, at
		}
	}
}

// book books a request on l at at, which earliest returned. l.mu must be
// held.
func (l *lane) book(at int64) {
	if l.bucket != nil {
		l.bucket.book(at)
	}
	if l.cap != nil {
		l.cap.book(at)
	}
}

// cancel takes back a booking at at. l.mu must be held.
func (l *lane) cancel(at int64) {
	if l.bucket != nil {
		l.bucket.cancel(at)
	}
	if l.cap != nil {
		l.cap.cancel(at)
	}
}
