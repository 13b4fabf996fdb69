package ratelimit

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"
)

// timebase turns the clock into int64 nanoseconds since an epoch, the unit
// of schedules and pause ends. It is not modified after it is made.
type timebase struct {
	now   func() time.Time
	epoch time.Time // instant 0
}

// newTimebase returns a timebase on now (time.Now if nil) starting now.
func newTimebase(now func() time.Time) timebase {
	if now == nil {
		now = time.Now
	}
	return timebase{now: now, epoch: now()}
}

// ns returns t in nanoseconds since the epoch.
func (tb timebase) ns(t time.Time) int64 { return int64(t.Sub(tb.epoch)) }

// pastDeadline reports whether the instant at (in nanoseconds since the
// epoch) is at or after ctx's deadline: reaching the deadline exactly
// counts, as the context would end just as the wait does.
func (tb timebase) pastDeadline(ctx context.Context, at int64) bool {
	deadline, ok := ctx.Deadline()
	return ok && !tb.epoch.Add(time.Duration(at)).Before(deadline)
}

// waitPause waits until the pause ending at *end (in nanoseconds since the
// epoch, read again after every wake-up, as a pause may grow) is over, and
// returns how long it waited. If the end is more than maxWait from the start,
// or at or past ctx's deadline, it returns a [*LimitedError] at once.
func (tb timebase) waitPause(ctx context.Context, end *atomic.Int64, maxWait time.Duration) (time.Duration, error) {
	start := tb.ns(tb.now())
	var timer *time.Timer
	for {
		now := tb.ns(tb.now())
		e := end.Load()
		if e <= now {
			return time.Duration(max(now-start, 0)), nil
		}
		if time.Duration(e-start) > maxWait || tb.pastDeadline(ctx, e) {
			return time.Duration(max(now-start, 0)), &LimitedError{Delay: max(time.Duration(e-now), time.Millisecond)}
		}
		if timer == nil {
			timer = time.NewTimer(time.Duration(e - now))
			defer timer.Stop()
		} else {
			timer.Reset(time.Duration(e - now))
		}
		select {
		case <-timer.C:
		case <-ctx.Done():
			return time.Duration(max(tb.ns(tb.now())-start, 0)), ctx.Err()
		}
	}
}

// MaxPause is the longest pause the limiter applies, whoever asks for it:
// the longest Retry-After of Exotel's that exogate honours, and the cap on
// pauses other replicas publish through Redis (or that anyone who can write
// to Redis publishes). A longer one is cut to MaxPause.
const MaxPause = 24 * time.Hour

// The backoff for a pause without a Retry-After: backoffBase for the first
// pause since Exotel last accepted a request, doubling with each further
// one up to backoffMax, and jittered down to between half and all of that.
const (
	backoffBase = time.Second
	backoffMax  = time.Minute
)

// backoff returns the pause for the step-th consecutive pause (step >= 1)
// when Exotel gave no Retry-After: a random duration between half and all
// of min(backoffBase·2^(step−1), backoffMax).
//
// It is not cenkalti/backoff (which the credentials package uses for its
// retries): that library keeps the step inside one not-concurrent-safe
// value and advances it per call, while here the step is a counter shared
// by every request of the lane (an atomic in this replica, a Redis key for
// the fleet), so the pause must be a pure function of the step. The same
// function is computed in Redis by pauseScript, which must stay in step
// with this one.
func backoff(step int) time.Duration {
	return jitter(backoffStep(step), rand.Float64())
}

// backoffStep returns min(backoffBase·2^(step−1), backoffMax).
func backoffStep(step int) time.Duration {
	d := backoffMax
	if step <= 1 {
		d = backoffBase
	} else if step < 32 {
		d = min(backoffBase<<(step-1), backoffMax)
	}
	return d
}

// jitter returns between half and all of d, as f goes from 0 to 1.
func jitter(d time.Duration, f float64) time.Duration {
	return d/2 + time.Duration(f*float64(d-d/2))
}

// Pause stops admitting requests for account×bucket until now+d: Exotel
// answered 429. d <= 0 means Exotel gave no Retry-After: the pause is then
// an exponential backoff with jitter, 1s doubling with each consecutive pause
// of that account×bucket (counted until [Memory.Succeeded] resets it) up to
// 60s, and jittered to between half and all of that step. A pause never
// shortens an existing longer one. Pause returns the pause now in force: d,
// the backoff chosen, or what is left of the longer pause already there.
//
// Callers already in line whose turn falls before the end are moved past
// it, keeping their order (see [Memory.Admit]). Buckets without an entry in
// Config.Buckets share one pause per account. An unknown account is
// ignored (Pause returns 0). Pause is safe for concurrent use.
func (m *Memory) Pause(account, bucket string, d time.Duration) time.Duration {
	acct := m.accounts[account]
	if acct == nil {
		return 0
	}
	l := acct.lane(m.buckets, bucket)
	step := int(l.step.Add(1))
	if d <= 0 {
		d = backoff(step)
	}
	d = min(d, MaxPause)
	now := m.ns(m.now())
	end := now + int64(d)

	l.mu.Lock()
	defer l.mu.Unlock()
	if old := l.pauseEnd.Load(); old >= end {
		return time.Duration(old - now)
	}
	l.pauseEnd.Store(end)
	l.moveWaiters(now, end)
	return d
}

// moveWaiters moves the bookings of l's waiters past end if any of them
// falls before it: all are taken back and booked again in their order from
// end on, so that no one is overtaken. l.mu must be held.
func (l *lane) moveWaiters(now, end int64) {
	if !slices.ContainsFunc(l.waiters, func(t *ticket) bool { return t.at < end }) {
		return
	}
	for _, t := range l.waiters {
		l.cancel(t.at)
	}
	for _, t := range l.waiters {
		_, at := l.earliest(now, end)
		l.book(at)
		if at != t.at {
			t.at = at
			select {
			case t.moved <- struct{}{}:
			default: // already told; it reads t.at under mu
			}
		}
	}
}

// Succeeded tells the limiter that Exotel accepted a request for
// account×bucket: the next pause without a Retry-After starts the backoff
// at 1s again. Successes while a pause is in force are ignored: they answer
// requests sent before it. Succeeded is cheap (an atomic load when no
// backoff is active), does not allocate, and is safe for concurrent use.
func (m *Memory) Succeeded(account, bucket string) {
	acct := m.accounts[account]
	if acct == nil {
		return
	}
	l := acct.lane(m.buckets, bucket)
	if l.step.Load() == 0 {
		return
	}
	if l.pauseEnd.Load() > m.ns(m.now()) {
		return
	}
	l.step.Store(0)
}

// PauseLeft returns how long account×bucket stays paused: 0 if it is not,
// or if the account is unknown. It is safe for concurrent use.
func (m *Memory) PauseLeft(account, bucket string) time.Duration {
	acct := m.accounts[account]
	if acct == nil {
		return 0
	}
	end := acct.lane(m.buckets, bucket).pauseEnd.Load()
	return time.Duration(max(end-m.ns(m.now()), 0))
}
