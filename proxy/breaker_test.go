package proxy

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sony/gobreaker/v2"
)

// roundTripFunc is an http.RoundTripper made of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// breakerRig is a upstreamTransport over a scripted upstream.
type breakerRig struct {
	tr     *upstreamTransport
	status atomic.Int64 // what the upstream answers; 0 = connection error
	calls  atomic.Int64
	block  chan struct{} // when non-nil, the upstream waits on it
}

func newBreakerRig(s BreakerSettings) *breakerRig {
	r := &breakerRig{}
	r.status.Store(200)
	r.tr = &upstreamTransport{breaker: newBreaker("t", s, time.Now), replayer: replayer{
		account: "acme",
		now:     time.Now,
		next: roundTripFunc(func(req *http.Request) (*http.Response, error) {
			r.calls.Add(1)
			if r.block != nil {
				select {
				case <-r.block:
				case <-req.Context().Done():
					return nil, req.Context().Err()
				}
			}
			st := int(r.status.Load())
			if st == 0 {
				return nil, errors.New("connection refused")
			}
			return &http.Response{StatusCode: st, Body: http.NoBody}, nil
		}),
	}}
	return r
}

func (r *breakerRig) send(ctx context.Context) (*http.Response, error) {
	// As the handler's Rewrite leaves it: credentials set.
	ctx = withExchange(ctx, &exchange{credVersion: "v1"})
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://api.exotel.com/v1/Accounts/acme/Calls.json", nil)
	return r.tr.RoundTrip(req)
}

func TestBreakerLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newBreakerRig(BreakerSettings{ConsecutiveFailures: 3, OpenFor: 30 * time.Second, HalfOpenRequests: 1})
		ctx := context.Background()

		// Connection errors and 5xx count as failures; the 5xx still returns.
		r.status.Store(0)
		if _, err := r.send(ctx); err == nil {
			t.Fatal("connection error swallowed")
		}
		r.status.Store(503)
		for i := 0; i < 2; i++ {
			resp, err := r.send(ctx)
			if err != nil || resp.StatusCode != 503 {
				t.Fatalf("5xx not passed back: %v %v", resp, err)
			}
		}
		if st := r.tr.breaker.State(); st != gobreaker.StateOpen {
			t.Fatalf("state %s after 3 failures, want open", st)
		}

		// Open: fast-fail without touching the upstream, saying how long is left.
		calls := r.calls.Load()
		time.Sleep(10 * time.Second)
		_, err := r.send(ctx)
		var open *errCircuitOpen
		if !errors.As(err, &open) {
			t.Fatalf("open breaker: err %v", err)
		}
		if open.RetryAfter() != 20*time.Second {
			t.Errorf("RetryAfter %s, want 20s (30s open, 10s gone)", open.RetryAfter())
		}
		if r.calls.Load() != calls {
			t.Error("open breaker reached the upstream")
		}

		// Half-open after OpenFor: one probe at a time.
		time.Sleep(20*time.Second + time.Millisecond)
		r.status.Store(200)
		r.block = make(chan struct{})
		probeDone := make(chan error)
		go func() {
			_, err := r.send(ctx)
			probeDone <- err
		}()
		synctest.Wait()
		if st := r.tr.breaker.State(); st != gobreaker.StateHalfOpen {
			t.Fatalf("state %s during probe, want half-open", st)
		}
		if _, err := r.send(ctx); !errors.As(err, &open) {
			t.Errorf("second request during a half-open probe: err %v, want refusal", err)
		}
		close(r.block)
		if err := <-probeDone; err != nil {
			t.Fatalf("probe: %v", err)
		}
		r.block = nil
		if st := r.tr.breaker.State(); st != gobreaker.StateClosed {
			t.Fatalf("state %s after a good probe, want closed", st)
		}
		if _, err := r.send(ctx); err != nil {
			t.Errorf("closed breaker refused: %v", err)
		}
	})
}

func TestBreakerFailedProbeReopens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newBreakerRig(BreakerSettings{ConsecutiveFailures: 1, OpenFor: 5 * time.Second})
		r.status.Store(500)
		r.send(context.Background())
		time.Sleep(5*time.Second + time.Millisecond)
		r.send(context.Background()) // the probe fails
		if st := r.tr.breaker.State(); st != gobreaker.StateOpen {
			t.Fatalf("state %s after failed probe, want open", st)
		}
		_, err := r.send(context.Background())
		var open *errCircuitOpen
		if !errors.As(err, &open) || open.RetryAfter() != 5*time.Second {
			// Reopened by the failed probe: the full OpenFor is left again.
			t.Errorf("err %v, want refusal with the full 5s left", err)
		}
	})
}

func TestBreakerIgnores4xxAndCancellation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newBreakerRig(BreakerSettings{ConsecutiveFailures: 2, OpenFor: time.Minute})
		for _, st := range []int64{400, 401, 403, 404, 429, 401, 429} {
			r.status.Store(st)
			if _, err := r.send(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		// Callers that give up mid-request say nothing about Exotel.
		r.block = make(chan struct{})
		for i := 0; i < 5; i++ {
			ctx, cancel := context.WithCancel(context.Background())
			go func() { time.Sleep(time.Millisecond); cancel() }()
			if _, err := r.send(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("err %v", err)
			}
		}
		if st := r.tr.breaker.State(); st != gobreaker.StateClosed {
			t.Errorf("state %s, want closed", st)
		}
	})
}

func TestBreakerFailureRatio(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newBreakerRig(BreakerSettings{ConsecutiveFailures: 100, FailureRatio: 0.5, MinRequests: 10, OpenFor: time.Minute})
		// Alternate: never 2 failures in a row, but half of all fail.
		for i := 0; i < 9; i++ {
			r.status.Store([]int64{200, 500}[i%2])
			r.send(context.Background())
			if st := r.tr.breaker.State(); st != gobreaker.StateClosed {
				t.Fatalf("opened after %d requests, below min_requests", i+1)
			}
		}
		r.status.Store(500)
		r.send(context.Background()) // 10th request, 5 of 10 failed
		if st := r.tr.breaker.State(); st != gobreaker.StateOpen {
			t.Errorf("state %s at 50%% failures over 10 requests, want open", st)
		}
	})
}
