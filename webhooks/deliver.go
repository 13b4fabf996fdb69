package webhooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sony/gobreaker/v2"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// dispatcher is one route's delivery loop.
type dispatcher struct {
	name string
	wake chan struct{} // one pending wake-up is enough
	stop chan struct{} // closed when the route goes or the service closes
}

func (d *dispatcher) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Dispatcher waits: idlePoll while every due message is in flight (a
// finishing attempt wakes it sooner), and at most maxIdle in any case, so
// that a clock that jumps is noticed.
const (
	idlePoll = time.Second
	maxIdle  = time.Minute
	dueBatch = 64
)

// dispatch reads the route's due messages from the store and delivers
// them, at most the route's concurrency at a time, until d.stop closes.
// The queue stays on disk: only messages in flight are in memory.
func (s *Service) dispatch(d *dispatcher) {
	defer s.workers.Done()
	inflight := make(map[string]bool)
	finished := make(chan string)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		wait := s.startDue(d, inflight, finished)
		timer.Reset(wait)
		select {
		case <-d.stop:
			return
		case <-d.wake:
		case id := <-finished:
			delete(inflight, id)
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// startDue starts attempts for the route's due messages that are not in
// flight and returns how long to wait before looking again.
func (s *Service) startDue(d *dispatcher, inflight map[string]bool, finished chan<- string) time.Duration {
	rt := s.route(d.name)
	if rt == nil {
		return maxIdle
	}
	free := rt.concurrency() - len(inflight)
	if free <= 0 {
		return maxIdle
	}
	now := s.now()
	msgs, err := s.q.Due(d.name, now, free, s.inFlight)
	if err != nil {
		s.log.Error().Err(err).Str("route", d.name).Msg("webhooks: reading due messages failed")
		return idlePoll
	}
	for _, m := range msgs {
		inflight[m.ID] = true
		s.setFlying(m.ID, true)
		s.attempts.Add(1)
		go func() {
			defer s.attempts.Done()
			s.attempt(s.deliverCtx, m)
			s.setFlying(m.ID, false)
			select {
			case finished <- m.ID:
			case <-d.stop:
			}
		}()
	}
	if len(msgs) == free {
		return maxIdle // a finishing attempt wakes the loop
	}
	at, ok, err := s.q.NextDue(d.name)
	switch {
	case err != nil || !ok:
		return maxIdle
	case !at.After(now):
		return idlePoll // due, but in flight
	}
	return min(at.Sub(now), maxIdle)
}

func (s *Service) inFlight(id string) bool {
	s.flyingMu.Lock()
	defer s.flyingMu.Unlock()
	return s.flying[id]
}

func (s *Service) setFlying(id string, on bool) {
	s.flyingMu.Lock()
	defer s.flyingMu.Unlock()
	if on {
		s.flying[id] = true
	} else {
		delete(s.flying, id)
	}
}

// attempt makes one delivery attempt of m and records its result.
func (s *Service) attempt(ctx context.Context, m Message) {
	rt := s.route(m.Route)
	if rt == nil {
		return // a removed route's messages wait for it
	}
	if s.claimer != nil {
		held, err := s.claimer.Claim(ctx, m.Key, s.replica, s.config().retention())
		if err != nil {
			s.log.Warn().Err(err).Str("route", m.Route).Str("id", m.ID).
				Msg("webhooks: claiming a callback failed; delivering it anyway")
		} else if !held {
			s.finish(m, resClaimed, StateDelivered, "claimed by another replica")
			return
		}
	}
	if rt.Verify == VerifyExotel && m.Source == SourceExotel && (m.Attempts == 0 || strings.HasPrefix(m.LastError, "verify")) {
		forged, err := s.verify(ctx, rt, m)
		if err != nil {
			s.retry(rt, m, resFailed, "verify: "+err.Error(), 0)
			return
		}
		if forged != "" {
			s.log.Warn().Str("route", m.Route).Str("id", m.ID).Str("sid", m.Sid).Str("why", forged).
				Msg("webhooks: a callback Exotel does not confirm was dropped")
			s.finish(m, resForged, StateDead, "forged: "+forged)
			return
		}
	}
	code, retryAfter, err := s.post(ctx, rt, m)
	switch {
	case errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests):
		s.retry(rt, m, resBreakerOpen, "circuit breaker open", 0)
	case err != nil && isTimeout(err):
		s.retry(rt, m, resTimeout, "timeout", 0)
	case err != nil && code == 0:
		s.retry(rt, m, resFailed, "transport error", 0)
	case code >= 200 && code < 300:
		s.finish(m, resDelivered, StateDelivered, "")
	case code == http.StatusGone:
		s.finish(m, resGone, StateDead, "410 Gone")
	default:
		s.retry(rt, m, resFailed, "HTTP "+strconv.Itoa(code), retryAfter)
	}
}

// finish records a final result. The attempt is counted first: it
// happened whether or not recording it succeeds (a message the store
// could not finish is tried, and counted, again), and whoever sees the
// store's new state then sees the count too.
func (s *Service) finish(m Message, result string, st State, lastErr string) {
	s.stats.attempt(result, st)
	if err := s.q.Finish(m.ID, st, lastErr); err != nil {
		s.log.Error().Err(err).Str("route", m.Route).Str("id", m.ID).Msg("webhooks: recording a delivery failed")
		return
	}
	if st == StateDead {
		s.log.Warn().Str("route", m.Route).Str("id", m.ID).Str("last_error", lastErr).Msg("webhooks: message dead")
	}
}

// retry schedules the next attempt after a failed one: exponential backoff
// with full jitter, no sooner than the target's Retry-After, and dead once
// that would be past the route's max age.
func (s *Service) retry(rt *route, m Message, result, lastErr string, retryAfter time.Duration) {
	now := s.now()
	wait := max(fullJitter(m.Attempts, rt.maxInterval()), retryAfter)
	next := now.Add(wait)
	if next.Sub(m.ReceivedAt) > rt.maxAge() {
		s.finish(m, result, StateDead, "max age reached; last: "+lastErr)
		return
	}
	s.stats.attempt(result, StatePending)
	if err := s.q.Reschedule(m.ID, next, lastErr); err != nil {
		s.log.Error().Err(err).Str("route", m.Route).Str("id", m.ID).Msg("webhooks: rescheduling a delivery failed")
	}
}

// retryBase is the first backoff step: the first retry comes within it.
const retryBase = time.Second

// fullJitter returns a wait after the attempts'th failed attempt
// (0-based): uniform in [0, min(ceiling, retryBase·2^attempts)] ("full
// jitter"). It is computed from the attempt count alone, so a restart
// keeps each message's progress; cenkalti/backoff's generator keeps that
// state in memory and jitters around the step, not below it.
func fullJitter(attempts int, ceiling time.Duration) time.Duration {
	step := ceiling
	if attempts < 30 && retryBase<<attempts < ceiling {
		step = retryBase << attempts
	}
	return time.Duration(rand.Int64N(int64(step) + 1))
}

// errStatus is a target's non-2xx answer, a failure for the breaker.
type errStatus int

func (e errStatus) Error() string { return "HTTP " + strconv.Itoa(int(e)) }

// post sends m to the route's target through its breaker, signed. It
// returns the status code (0 when there was no answer) and the target's
// Retry-After.
func (s *Service) post(ctx context.Context, rt *route, m Message) (int, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultDeliverTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rt.Target, bytes.NewReader(m.Body))
	if err != nil {
		return 0, 0, err
	}
	ts := s.now()
	sig, err := sign(rt.signers, m.ID, ts, m.Body)
	if err != nil {
		return 0, 0, err
	}
	h := req.Header
	h.Set("Content-Type", m.ContentType)
	h.Set(standardwebhooks.HeaderWebhookID, m.ID)
	h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(standardwebhooks.HeaderWebhookSignature, sig)
	h.Set("X-Exogate-Route", m.Route)
	h.Set("X-Exogate-Account", m.Account)
	source := m.Source
	if source == "" {
		source = SourceExotel
	}
	h.Set("X-Exogate-Source", string(source))
	resp, err := rt.breaker.Execute(func() (*http.Response, error) {
		resp, err := s.client.Do(req)
		if err != nil {
			return nil, err
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 && resp.StatusCode != http.StatusGone {
			return resp, errStatus(resp.StatusCode)
		}
		return resp, nil
	})
	if resp == nil {
		return 0, 0, err
	}
	return resp.StatusCode, retryAfter(resp.Header.Get("Retry-After"), ts), nil
}

// sign returns the webhook-signature value: one v1 signature per secret.
func sign(signers []*standardwebhooks.Webhook, id string, ts time.Time, body []byte) (string, error) {
	sigs := make([]string, 0, len(signers))
	for _, w := range signers {
		sig, err := w.Sign(id, ts, body)
		if err != nil {
			return "", fmt.Errorf("signing: %w", err)
		}
		sigs = append(sigs, sig)
	}
	return strings.Join(sigs, " "), nil
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && n >= 0 {
		return time.Duration(min(n, int64(30*24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}
