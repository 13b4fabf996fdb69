package proxy

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// BreakerSettings configures the circuit breaker kept per account and
// upstream host. A zero field takes the default given beside it.
type BreakerSettings struct {
	// ConsecutiveFailures opens the breaker after this many failures in a row
	// (default 5).
	ConsecutiveFailures uint32
	// FailureRatio opens the breaker when at least MinRequests were counted in
	// the current Interval and this share of them failed (0 = off).
	FailureRatio float64
	// MinRequests guards FailureRatio (default 20).
	MinRequests uint32
	// Interval is the closed-state window after which the counts reset
	// (default 1m).
	Interval time.Duration
	// OpenFor is how long the breaker stays open before a probe (default 30s).
	OpenFor time.Duration
	// HalfOpenRequests is how many probes may be in flight when half-open
	// (default 1).
	HalfOpenRequests uint32
	// OnStateChange, if set, is told of every transition.
	OnStateChange func(name string, from, to gobreaker.State)
}

// breakerKey is BreakerSettings without the callback, to compare.
type breakerKey struct {
	consecutive, minRequests, halfOpen uint32
	ratio                              float64
	interval, openFor                  time.Duration
}

func (s BreakerSettings) comparable() breakerKey {
	s = s.withDefaults()
	return breakerKey{s.ConsecutiveFailures, s.MinRequests, s.HalfOpenRequests, s.FailureRatio, s.Interval, s.OpenFor}
}

// DefaultBreakerSettings is the zero BreakerSettings with its documented
// defaults filled in: the one place those defaults are written.
func DefaultBreakerSettings() BreakerSettings { return BreakerSettings{}.withDefaults() }

func (s BreakerSettings) withDefaults() BreakerSettings {
	if s.ConsecutiveFailures == 0 && s.FailureRatio == 0 {
		s.ConsecutiveFailures = 5
	}
	if s.MinRequests == 0 {
		s.MinRequests = 20
	}
	if s.Interval == 0 {
		s.Interval = time.Minute
	}
	if s.OpenFor == 0 {
		s.OpenFor = 30 * time.Second
	}
	if s.HalfOpenRequests == 0 {
		s.HalfOpenRequests = 1
	}
	return s
}

// errUpstream5xx marks an upstream 5xx answer as a failure for the breaker;
// the response itself still goes back to the caller untouched.
var errUpstream5xx = errors.New("upstream answered 5xx")

// breaker is a gobreaker TwoStepCircuitBreaker that also knows when it opened,
// so that a refusal can say how long is left.
type breaker struct {
	cb       *gobreaker.TwoStepCircuitBreaker[struct{}]
	settings breakerKey
	openFor  time.Duration
	openedAt atomic.Int64 // unix nanoseconds of the last transition to open
	now      func() time.Time
}

func newBreaker(name string, s BreakerSettings, now func() time.Time) *breaker {
	b := &breaker{openFor: s.withDefaults().OpenFor, now: now, settings: s.comparable()}
	gs := s.Gobreaker(name)
	onChange := gs.OnStateChange
	gs.OnStateChange = func(name string, from, to gobreaker.State) {
		if to == gobreaker.StateOpen {
			b.openedAt.Store(b.now().UnixNano())
		}
		if onChange != nil {
			onChange(name, from, to)
		}
	}
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gs)
	return b
}

// Gobreaker returns the settings, defaults applied, as gobreaker takes
// them, for a breaker named name: the trip rule of the upstream breakers,
// for other breakers that should behave alike.
func (s BreakerSettings) Gobreaker(name string) gobreaker.Settings {
	s = s.withDefaults()
	return gobreaker.Settings{
		Name:        name,
		MaxRequests: s.HalfOpenRequests,
		Interval:    s.Interval,
		Timeout:     s.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			if s.ConsecutiveFailures > 0 && c.ConsecutiveFailures >= s.ConsecutiveFailures {
				return true
			}
			return s.FailureRatio > 0 && c.Requests >= s.MinRequests &&
				float64(c.TotalFailures) >= s.FailureRatio*float64(c.Requests)
		},
		OnStateChange: s.OnStateChange,
		// A caller that went away says nothing about the upstream's health.
		IsExcluded: func(err error) bool { return errors.Is(err, context.Canceled) },
	}
}

// State returns the breaker's current state.
func (b *breaker) State() gobreaker.State { return b.cb.State() }

// refusal is the error for a request the breaker will not let through.
func (b *breaker) refusal() error {
	left := b.openFor - b.now().Sub(time.Unix(0, b.openedAt.Load()))
	if left < time.Second {
		left = time.Second
	}
	return &errCircuitOpen{retryAfter: left}
}

// upstreamTransport sends one account's requests of one bucket to one
// upstream host: a gobreaker TwoStep admission around the replayer, which
// makes the exchange with Exotel, and the outcome reported to the breaker.
// The account's credentials were set by the ReverseProxy's Rewrite; a
// request on which they could not be set is refused here.
type upstreamTransport struct {
	breaker  *breaker
	replayer replayer
}

func (t *upstreamTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// The admission that counts: the handler's look at the state only
	// spares an open breaker's callers the wait in line, while Allow also
	// counts half-open probes and may refuse a request that was admitted
	// while the breaker was closed.
	done, err := t.breaker.cb.Allow()
	if err != nil {
		// Open, or half-open with its probes already out.
		closeBody(req)
		return nil, t.breaker.refusal()
	}
	ex := exchangeOf(req.Context())
	if ex == nil || ex.credErr != nil {
		// Never sent without the account's own credentials.
		closeBody(req)
		done(context.Canceled) // excluded: says nothing about the upstream
		if ex == nil {
			return nil, errCredentials
		}
		return nil, errors.Join(errCredentials, ex.credErr)
	}
	resp, err := t.replayer.roundTrip(req, ex.credVersion, &ex.body)
	if resp != nil {
		ex.upstreamStatus = resp.StatusCode
	}
	switch {
	case err != nil && (req.Context().Err() != nil || errors.Is(err, errBodyTooLarge)):
		// The caller went away or sent too much: nothing learnt of the upstream.
		done(context.Canceled)
	case err != nil:
		done(err)
	case resp.StatusCode >= 500:
		done(errUpstream5xx)
	default:
		done(nil)
	}
	return resp, err
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}
