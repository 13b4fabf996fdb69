package ratelimit

import (
	"errors"
	"fmt"
	"time"
)

// ErrLimited is wrapped by the error Admit returns when a request would have
// to wait longer than it may. Check it with errors.Is; the error also has a
// RetryAfter() time.Duration method (see [LimitedError]).
var ErrLimited = errors.New("ratelimit: rate limit exceeded")

// ErrUnknownAccount is returned by Admit for an account the limiter was not
// built with.
var ErrUnknownAccount = errors.New("ratelimit: unknown account")

// LimitedError is the error Admit returns when it turns a request away. It
// wraps [ErrLimited]. Its zero value is a valid error with no delay.
type LimitedError struct {
	// Delay is how long from the rejection until a token would have been the
	// caller's, exact and at least a millisecond. Rounding it up to whole
	// seconds for a Retry-After header is the caller's job.
	Delay time.Duration
}

// Error describes the rejection and its delay.
func (e *LimitedError) Error() string {
	return fmt.Sprintf("%v: retry after %v", ErrLimited, e.Delay)
}

// RetryAfter returns e.Delay.
func (e *LimitedError) RetryAfter() time.Duration { return e.Delay }

// Unwrap returns [ErrLimited], so that errors.Is(err, ErrLimited) holds.
func (e *LimitedError) Unwrap() error { return ErrLimited }

// Rule is one budget: at most Limit requests in any window of length Period,
// with Burst requests allowed back to back. The zero Rule is off: a Limit of
// 0 means unlimited, and the other fields are then ignored. See the package
// documentation for how a Rule becomes a token bucket.
type Rule struct {
	Limit  int           // requests per Period; 0 turns the rule off
	Period time.Duration // the window; must be positive when Limit is set
	Burst  int           // requests allowed back to back; 0 means 1; less than Limit
}

// maxSpan bounds the nanosecond arithmetic (about 36 years), far from
// overflowing int64 even when added to a time.
const maxSpan = 1 << 60

// Validate reports whether r is usable: Limit is not negative and, when
// Limit is set, Period is positive and 1 <= Burst < Limit (a Burst of 0
// counts as 1). The error names the problem, e.g. "burst 5 must be less
// than limit 5".
func (r Rule) Validate() error {
	switch {
	case r.Limit < 0:
		return fmt.Errorf("limit %d must not be negative", r.Limit)
	case r.Limit == 0:
		return nil
	case r.Period <= 0:
		return fmt.Errorf("period %v must be positive when limit is set", r.Period)
	case r.Burst < 0:
		return fmt.Errorf("burst %d must not be negative", r.Burst)
	case r.Burst == 0 && r.Limit == 1:
		return fmt.Errorf("burst 0 (meaning 1) must be less than limit %d", r.Limit)
	case r.Burst >= r.Limit:
		return fmt.Errorf("burst %d must be less than limit %d", r.Burst, r.Limit)
	}
	if i := r.interval(); i > maxSpan || int64(r.burst()-1) > maxSpan/i {
		return fmt.Errorf("period %v is too long for limit %d and burst %d", r.Period, r.Limit, r.Burst)
	}
	return nil
}

// burst returns Burst, with 0 meaning 1.
func (r Rule) burst() int { return max(r.Burst, 1) }

// interval returns I, the nanoseconds between two tokens,
// Period / (Limit − Burst) rounded up. r must be valid and on.
func (r Rule) interval() int64 {
	p, n := int64(r.Period), int64(r.Limit-r.burst())
	i := p / n
	if p%n != 0 {
		i++
	}
	return i
}

// CapRule returns the Rule for "at most n requests in any window of
// period", as bursty as that allows: Rule{n, period, n-1} for n >= 2 (n-1
// at once, the last one a period later), and for n == 1, Rule{2,
// period+1ns, 1}, one token every period+1ns, so that no closed window of
// period holds two. n <= 0 is the rule that is off.
func CapRule(n int, period time.Duration) Rule {
	switch {
	case n <= 0:
		return Rule{}
	case n == 1:
		return Rule{Limit: 2, Period: period + 1, Burst: 1}
	}
	return Rule{Limit: n, Period: period, Burst: n - 1}
}

// ClientCap returns the Rule that caps one client in a bucket whose own
// rule is r: at most maxPerPeriod requests per r.Period, and with share set
// at most its fraction share/totalShare of r.Limit (at least one),
// whichever is lower. It returns the rule that is off when no cap is set,
// when r is off, or when the cap would not bind before r does.
func ClientCap(r Rule, share, totalShare, maxPerPeriod int) Rule {
	if r.Limit <= 0 {
		return Rule{}
	}
	n := maxPerPeriod
	if share > 0 && totalShare > 0 {
		byShare := max(1, r.Limit*share/totalShare)
		if n <= 0 || byShare < n {
			n = byShare
		}
	}
	if n <= 0 || n >= r.Limit {
		return Rule{}
	}
	return CapRule(n, r.Period)
}
