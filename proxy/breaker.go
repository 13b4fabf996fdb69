package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/exogate/exogate/internal/metrics"
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
// upstream host: it asks the breaker, injects the account's credentials as
// late as possible, and reports the outcome. It never retries a request that
// may have been acted on; it sends one again only after Exotel said it did
// nothing with it (401 with newer credentials, 429 after the pause).
type upstreamTransport struct {
	breaker    *breaker
	account    string
	bucket     string
	host       string // "api" or "ccm", for metrics
	metrics    *metrics.Metrics
	authorizer Authorizer
	reauth     Reauthorizer // nil: no replay after a 401
	limiter    Limiter
	pauser     Pauser // nil: Exotel's 429s are passed on as they are
	retryWait  time.Duration
	next       http.RoundTripper
	now        func() time.Time // the handler's clock (nil: time.Now)
}

func (t *upstreamTransport) clock() time.Time {
	if t.now == nil {
		return time.Now()
	}
	return t.now()
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
	// req is the proxy's own outgoing copy, made for this one attempt; setting
	// its Authorization header here keeps secrets out of every other layer.
	version, err := t.authorizer.Authorize(req.Header, t.account)
	if err != nil {
		closeBody(req)
		done(context.Canceled) // excluded: says nothing about the upstream
		return nil, errors.Join(errCredentials, err)
	}
	start := t.clock()
	resp, err := t.send(req)
	if err == nil {
		t.metrics.Upstream(t.account, t.host, resp.StatusCode, t.clock().Sub(start))
	}
	if err == nil && resp.StatusCode == http.StatusUnauthorized && t.reauth != nil {
		resp, err = t.replayUnauthorized(req, resp, version)
	}
	if err == nil && t.pauser != nil {
		if resp.StatusCode == http.StatusTooManyRequests {
			resp, err = t.afterTooManyRequests(req, resp)
		} else if resp.StatusCode < 400 {
			t.pauser.Succeeded(t.account, t.bucket)
		}
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

// send sends one attempt of req. A failure after the whole request reached
// Exotel is an *errOutcomeUnknown (for a method that may change something):
// Exotel may have acted on it.
func (t *upstreamTransport) send(req *http.Request) (*http.Response, error) {
	if safeMethod(req.Method) {
		// Nothing to tell apart: a lost answer to a read changed nothing.
		return t.next.RoundTrip(req)
	}
	var written atomic.Bool
	sent := req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) { written.Store(info.Err == nil) },
	}))
	resp, err := t.next.RoundTrip(sent)
	if err != nil && written.Load() && req.Context().Err() == nil {
		err = &errOutcomeUnknown{err}
	}
	return resp, err
}

// replayFailed decides what a failed second attempt leaves the caller: if
// it reached Exotel whole, the outcome is unknown and that is the answer
// (first's body is discarded); otherwise the first answer stands, Exotel's
// own 401 or 429 being truer than our failure.
func replayFailed(first *http.Response, err error) (*http.Response, error) {
	var unknown *errOutcomeUnknown
	if errors.As(err, &unknown) {
		_ = first.Body.Close()
		return nil, err
	}
	return first, nil
}

// replayUnauthorized sends a request Exotel refused with 401 once more, if
// the credentials store has other credentials worth trying (a rotation that
// reached Exotel before our poller saw it, or Exotel's own propagation lag).
// A 401 means Exotel acted on nothing, so this holds for a POST too, as long
// as its whole body was read and kept.
func (t *upstreamTransport) replayUnauthorized(req *http.Request, resp *http.Response, version string) (*http.Response, error) {
	body, ok := replayBody(req)
	if !ok {
		return resp, nil
	}
	retry := req.Clone(req.Context())
	retry.Body = body
	if !t.reauth.Reauthorize(req.Context(), retry.Header, t.account, version) {
		return resp, nil
	}
	// The replay is a request to Exotel like any other: it takes a token.
	if t.limiter != nil {
		if _, err := t.limiter.Admit(req.Context(), t.account, t.bucket); err != nil {
			return resp, nil
		}
	}
	second, err := t.send(retry)
	if err != nil {
		return replayFailed(resp, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return second, nil
}

// afterTooManyRequests handles Exotel's own 429: the whole fleet pauses the
// bucket (for Exotel's Retry-After, or an exponential backoff), and if the
// pause is short enough for the caller the request is sent once more after
// it — a 429 means Exotel acted on nothing. Otherwise Exotel's 429 is passed
// on unchanged.
func (t *upstreamTransport) afterTooManyRequests(req *http.Request, resp *http.Response) (*http.Response, error) {
	pause := t.pauser.Pause(t.account, t.bucket, parseRetryAfter(resp.Header.Get("Retry-After"), t.clock()))
	if pause > t.retryWait || t.retryWait < 0 {
		return resp, nil
	}
	body, ok := replayBody(req)
	if !ok {
		return resp, nil
	}
	// Keep Exotel's answer to hand back if the second try cannot be made.
	kept, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if err != nil {
		kept = nil
	}
	resp.Body = io.NopCloser(bytes.NewReader(kept))
	resp.ContentLength = int64(len(kept))
	if t.limiter != nil {
		// Admit honours the pause: it waits it out (or refuses).
		if _, err := t.limiter.Admit(req.Context(), t.account, t.bucket); err != nil {
			return resp, nil
		}
	}
	retry := req.Clone(req.Context())
	retry.Body = body
	second, err := t.send(retry)
	if err != nil {
		return replayFailed(resp, err)
	}
	if second.StatusCode == http.StatusTooManyRequests {
		t.pauser.Pause(t.account, t.bucket, parseRetryAfter(second.Header.Get("Retry-After"), t.clock()))
	} else if second.StatusCode < 400 {
		t.pauser.Succeeded(t.account, t.bucket)
	}
	return second, nil
}

// replayBody returns a fresh copy of the request's body for a second
// attempt (nil for a request without one), or false if it cannot be had.
func replayBody(req *http.Request) (io.ReadCloser, bool) {
	if req.Body == nil {
		return nil, true
	}
	lb, ok := req.Body.(*limitedBody)
	if !ok {
		return nil, false
	}
	return lb.replay()
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP date.
// It returns 0 when there is none or it cannot be read.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
		if secs <= 0 || secs > 24*3600 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 && d <= 24*time.Hour {
			return d
		}
	}
	return 0
}

// safeMethod reports whether method changes nothing at Exotel.
func safeMethod(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}
