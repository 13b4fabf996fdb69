package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a [Memory] or a [Redis]: the limits, the same for every
// account. The zero Config limits nothing and never waits.
type Config struct {
	// MaxWait is how long a caller may queue for a token. 0 means no
	// queueing: a caller that finds no token is turned away at once.
	MaxWait time.Duration

	// Buckets holds one Rule per bucket name ("voice_v1", "voice_v2", "sms",
	// "whatsapp", "other"), applied to each account on its own. A bucket
	// that is missing, or whose Rule is off, is unlimited (but still counts
	// towards Account). Every bucket named here, limited or not, is paused
	// on its own (see [Memory.Pause]); the buckets not named here share one
	// pause per account.
	Buckets map[string]Rule

	// Account optionally caps one account's requests across all its
	// buckets. The zero Rule is off.
	Account Rule

	// Now tells the time. If nil, time.Now is used. Waiting uses the
	// runtime's timers, so a test that injects a fake Now must not let
	// Admit wait, or must run inside a testing/synctest bubble (where
	// time.Now is already fake and Now can stay nil). A [Redis] uses it
	// for pauses, MaxWait and deadlines; its tokens go by Redis's clock.
	Now func() time.Time
}

// Memory is the in-process limiter: one token bucket per account × bucket,
// plus the optional cap per account, all kept in memory. The set of accounts
// is fixed when it is made, so its state never grows with traffic. Besides
// the rules it honours pauses: Exotel's own 429s, reported through
// [Memory.Pause].
//
// Create one with [NewMemory]. A zero Memory knows no accounts: its Admit
// returns [ErrUnknownAccount]. Memory is safe for concurrent use.
type Memory struct {
	timebase
	cfg      Config // as given, to tell whether a reload changed the limits
	maxWait  time.Duration
	buckets  map[string]int      // bucket name in Config.Buckets → index into lanes
	accounts map[string]*account // by lower-case SID
}

// account is one account's state.
type account struct {
	// mu guards every schedule of the account when it has a cap, because a
	// booking then spans the bucket and the cap.
	mu sync.Mutex
	// lanes holds one lane per bucket named in Config.Buckets, in name
	// order, then one for every other bucket.
	lanes []lane
}

// lane returns the lane for bucket: its own, or the shared last one.
func (a *account) lane(buckets map[string]int, bucket string) *lane {
	i, ok := buckets[bucket]
	if !ok {
		i = len(a.lanes) - 1
	}
	return &a.lanes[i]
}

// lane is the pair of schedules one request is booked in, and the bucket's
// pause.
type lane struct {
	mu     *sync.Mutex // &own, or the account's mu when it has a cap
	own    sync.Mutex
	bucket *schedule // nil: the bucket is unlimited
	cap    *schedule // nil: the account has no cap

	// pauseEnd is when the pause ends, in the schedules' nanoseconds;
	// longAgo when there has been none. It is written under mu and read
	// without it.
	pauseEnd atomic.Int64
	// step counts the pauses since Exotel last accepted a request: the
	// backoff of the next pause without a Retry-After.
	step atomic.Int32
	// waiters holds the callers queued for a booking in the future, in the
	// order they booked, so that a pause can move them past its end. It is
	// guarded by mu.
	waiters []*ticket
}

// ticket is one queued caller's booking.
type ticket struct {
	at    int64         // the booking's instant; guarded by the lane's mu
	moved chan struct{} // signalled (buffered, 1) when a pause moves at
}

// NewMemory returns a Memory for the given accounts (lower-case SIDs) and
// limits. It reports an invalid Rule, a negative MaxWait, and an empty,
// duplicate or not lower-case SID.
func NewMemory(accounts []string, cfg Config) (*Memory, error) {
	names, err := checkConfig(accounts, cfg)
	if err != nil {
		return nil, err
	}
	m := &Memory{
		timebase: newTimebase(cfg.Now),
		cfg:      cfg,
		maxWait:  cfg.MaxWait,
		buckets:  make(map[string]int, len(names)),
		accounts: make(map[string]*account, len(accounts)),
	}
	for i, name := range names {
		m.buckets[name] = i
	}
	for _, sid := range accounts {
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
			if i < len(names) && cfg.Buckets[names[i]].Limit > 0 {
				l.bucket = newSchedule(cfg.Buckets[names[i]], cfg.MaxWait)
			}
			l.pauseEnd.Store(longAgo)
		}
		m.accounts[sid] = a
	}
	return m, nil
}

// Reconfigured returns a Memory for a reloaded configuration. When the
// limits themselves (MaxWait, Buckets, Account) are unchanged, the accounts
// present in both keep their state — tokens used, callers in line, pauses —
// shared with m, so that a reload never hands out a fresh budget; accounts
// that are new start fresh. When the limits changed, every account starts
// fresh under the new rules.
func (m *Memory) Reconfigured(accounts []string, cfg Config) (*Memory, error) {
	n, err := NewMemory(accounts, cfg)
	if err != nil || !sameLimits(m.cfg, cfg) {
		return n, err
	}
	n.timebase = m.timebase
	for sid := range n.accounts {
		if old, ok := m.accounts[sid]; ok {
			n.accounts[sid] = old
		}
	}
	return n, nil
}

func sameLimits(a, b Config) bool {
	if a.MaxWait != b.MaxWait || a.Account != b.Account || len(a.Buckets) != len(b.Buckets) {
		return false
	}
	for name, r := range a.Buckets {
		if o, ok := b.Buckets[name]; !ok || o != r {
			return false
		}
	}
	return true
}

// checkConfig validates what NewMemory and NewRedis are given and returns
// the bucket names of cfg.Buckets, sorted.
func checkConfig(accounts []string, cfg Config) ([]string, error) {
	if cfg.MaxWait < 0 {
		return nil, fmt.Errorf("ratelimit: max wait %v must not be negative", cfg.MaxWait)
	}
	names := make([]string, 0, len(cfg.Buckets))
	for name, r := range cfg.Buckets {
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("ratelimit: bucket %q: %w", name, err)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	if err := cfg.Account.Validate(); err != nil {
		return nil, fmt.Errorf("ratelimit: account cap: %w", err)
	}
	seen := make(map[string]bool, len(accounts))
	for _, sid := range accounts {
		switch {
		case sid == "":
			return nil, errors.New("ratelimit: empty account SID")
		case sid != strings.ToLower(sid):
			return nil, fmt.Errorf("ratelimit: account SID %q is not lower-case", sid)
		case seen[sid]:
			return nil, fmt.Errorf("ratelimit: duplicate account SID %q", sid)
		}
		seen[sid] = true
	}
	return names, nil
}

// Admit waits in line for a token for the account's bucket (and for the
// account cap, if any), at most Config.MaxWait and never until ctx's
// deadline, and returns how long the caller waited. account must be a
// lower-case SID; a bucket without a Rule is unlimited.
//
// While the bucket is paused ([Memory.Pause]) no token is handed out: the
// earliest a caller can go is the later of its place in line and the end of
// the pause. Callers already in line when a pause starts are moved past its
// end, keeping their order.
//
// When the wait would exceed MaxWait, or reach ctx's deadline, Admit returns
// at once, without waiting and without taking a token, a [*LimitedError]
// (which wraps [ErrLimited]) telling when a token would have been the
// caller's. A caller in line that a later pause pushes past its MaxWait or
// deadline gets the same error when the pause starts, with waited set to
// the time it spent in line. If ctx is done before Admit is called, or is
// cancelled while the caller waits, Admit returns ctx.Err() and gives the
// reservation back. An unknown account gives [ErrUnknownAccount].
//
// Admit does not allocate when it admits without waiting.
func (m *Memory) Admit(ctx context.Context, account, bucket string) (waited time.Duration, err error) {
	acct := m.accounts[account]
	if acct == nil {
		return 0, ErrUnknownAccount
	}
	l := acct.lane(m.buckets, bucket)
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if l.bucket == nil && l.cap == nil {
		if l.pauseEnd.Load() == longAgo {
			return 0, nil
		}
		return m.waitPause(ctx, &l.pauseEnd, m.maxWait)
	}

	start := m.now()
	l.mu.Lock()
	now, at := l.earliest(m.ns(start), l.pauseEnd.Load())
	wait := time.Duration(at - now)
	if wait > m.maxWait || wait > 0 && m.pastDeadline(ctx, at) {
		l.mu.Unlock()
		return 0, &LimitedError{Delay: max(wait, time.Millisecond)}
	}
	l.book(at)
	if wait == 0 {
		l.mu.Unlock()
		return 0, nil
	}
	t := &ticket{at: at, moved: make(chan struct{}, 1)}
	l.waiters = append(l.waiters, t)
	l.mu.Unlock()
	return m.wait(ctx, l, t, at, now, start)
}

// wait waits for t's booking at at, which was made at now (in the
// schedules' nanoseconds; start on the clock), following it when a pause
// moves it.
func (m *Memory) wait(ctx context.Context, l *lane, t *ticket, at, now int64, start time.Time) (time.Duration, error) {
	timer := time.NewTimer(time.Duration(at - now))
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
			l.mu.Lock()
			if t.at == at {
				l.dropWaiter(t)
				l.mu.Unlock()
				return time.Duration(at - now), nil
			}
			l.mu.Unlock()
		case <-t.moved:
		case <-ctx.Done():
			l.mu.Lock()
			l.cancel(t.at)
			l.dropWaiter(t)
			l.mu.Unlock()
			return max(m.now().Sub(start), 0), ctx.Err()
		}
		// A pause moved the booking.
		l.mu.Lock()
		at = t.at
		cur := m.ns(m.now())
		if time.Duration(at-now) > m.maxWait || m.pastDeadline(ctx, at) {
			l.cancel(at)
			l.dropWaiter(t)
			l.mu.Unlock()
			return time.Duration(max(cur-now, 0)), &LimitedError{Delay: max(time.Duration(at-cur), time.Millisecond)}
		}
		l.mu.Unlock()
		timer.Reset(time.Duration(max(at-cur, 0)))
	}
}

// earliest brings l's schedules up to t and returns the time it took as now
// and the earliest instant at >= max(now, notBefore) at which a request on l
// conforms to both its schedules, after every booking already made on the
// bucket (first come, first served). l.mu must be held.
//
// now is t, or later if a schedule has already been brought further: callers
// read the clock before they take the lock, so one that read it a little
// earlier may get the lock a little later. Real time is then past that
// schedule's instant, so counting from there neither waits for nothing nor
// lets time run backwards (nor does a fake clock that goes back).
func (l *lane) earliest(t, notBefore int64) (now, at int64) {
	if l.bucket != nil {
		t = max(t, l.bucket.settled)
	}
	if l.cap != nil {
		t = max(t, l.cap.settled)
		l.cap.settle(t)
	}
	x := max(t, notBefore)
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

// dropWaiter removes t from l's waiters. l.mu must be held.
func (l *lane) dropWaiter(t *ticket) {
	if i := slices.Index(l.waiters, t); i >= 0 {
		l.waiters = slices.Delete(l.waiters, i, i+1)
	}
}
