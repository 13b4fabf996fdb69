package proxy

import (
	"context"
	"errors"
	"io"
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
	openFor  time.Duration
	openedAt atomic.Int64 // unix nanoseconds of the last transition to open
	now      func() time.Time
}

func newBreaker(name string, s BreakerSettings, now func() time.Time) *breaker {
	s = s.withDefaults()
	b := &breaker{openFor: s.OpenFor, now: now}
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
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
		OnStateChange: func(name string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				b.openedAt.Store(b.now().UnixNano())
			}
			if s.OnStateChange != nil {
				s.OnStateChange(name, from, to)
			}
		},
		// A caller that went away says nothing about the upstream's health.
		IsExcluded: func(err error) bool { return errors.Is(err, context.Canceled) },
	})
	return b
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

// breakerTransport sends one account's requests to one upstream host: it asks
// the breaker, injects the account's credentials as late as possible, and
// reports the outcome. It never retries.
type breakerTransport struct {
	breaker    *breaker
	account    string
	authorizer Authorizer
	reauth     Reauthorizer // nil: no replay after a 401
	next       http.RoundTripper
}

func (t *breakerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	done, err := t.breaker.cb.Allow()
	if err != nil {
		// Open, or half-open with its probes already out.
		closeBody(req)
		return nil, t.breaker.refusal()
	}
	// req is the proxy's own outgoing copy, made for this one attempt; setting
	// its Authorization header here keeps secrets out of every other layer.
	version, err := t.authorizer.Authorize(req.Header, t.account)
	if err != nil {
		closeBody(req)
		done(context.Canceled) // excluded: says nothing about the upstream
		return nil, errors.Join(errCredentials, err)
	}
	resp, err := t.next.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusUnauthorized && t.reauth != nil {
		resp = t.replayUnauthorized(req, resp, version)
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

// replayUnauthorized sends a request Exotel refused with 401 once more, if
// the credentials store has other credentials worth trying (a rotation that
// reached Exotel before our poller saw it, or Exotel's own propagation lag).
// A 401 means Exotel acted on nothing, so this holds for a POST too, as long
// as its whole body was read and kept.
func (t *breakerTransport) replayUnauthorized(req *http.Request, resp *http.Response, version string) *http.Response {
	var body io.ReadCloser
	if req.Body != nil {
		lb, ok := req.Body.(*limitedBody)
		if !ok {
			return resp
		}
		if body, ok = lb.replay(); !ok {
			return resp
		}
	}
	retry := req.Clone(req.Context())
	retry.Body = body
	if !t.reauth.Reauthorize(req.Context(), retry.Header, t.account, version) {
		return resp
	}
	second, err := t.next.RoundTrip(retry)
	if err != nil {
		// The first answer stands: Exotel's own 401 is truer than our failure.
		return resp
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return second
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}
