package credentials

import (
	"time"

	"github.com/cenkalti/backoff/v4"
)

// retryBackoff returns the backoff used while a source or Vault fails: steps
// of 1s doubling up to 5min, each wait a random point between half and all
// of its step, and it never gives up. The library jitters its interval by
// ±RandomizationFactor, so the interval is ¾ of the step and the factor ⅓.
// Reset starts it at 1s again. Not safe for concurrent use.
func retryBackoff(now func() time.Time) *backoff.ExponentialBackOff {
	const first, ceiling = time.Second, 5 * time.Minute
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(first*3/4),
		backoff.WithMaxInterval(ceiling*3/4),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(1.0/3),
		backoff.WithMaxElapsedTime(0), // never backoff.Stop
		backoff.WithClockProvider(clockFunc(now)),
	)
}

// intervalJitter returns a source of waits of d ±20 %, so that many
// gateways do not re-read their sources in step.
func intervalJitter(d time.Duration, now func() time.Time) *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(d),
		backoff.WithMaxInterval(d),
		backoff.WithMultiplier(1),
		backoff.WithRandomizationFactor(0.2),
		backoff.WithMaxElapsedTime(0),
		backoff.WithClockProvider(clockFunc(now)),
	)
}

// clockFunc is a [backoff.Clock] made of a function.
type clockFunc func() time.Time

func (f clockFunc) Now() time.Time { return f() }
