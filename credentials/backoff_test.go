package credentials

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"
)

// TestPollSchedule checks, in a synctest bubble, when poll reads a source:
// while the first load fails it backs off from 1s doubling to 5min, each
// wait between half and all of its step; once loaded it re-reads every
// interval ±20 %, the first time at a random point of the first interval;
// a failing re-read is retried on the backoff, which a success resets.
func TestPollSchedule(t *testing.T) {
	const (
		interval     = 10 * time.Minute
		failFirst    = 12 // past the 5min cap
		goodReads    = 6
		failRefresh  = 3
		totalLoads   = failFirst + goodReads + failRefresh + 2
		retryBase    = time.Second
		retryCeiling = 5 * time.Minute
	)
	synctest.Test(t, func(t *testing.T) {
		var (
			mu    sync.Mutex
			at    []time.Time
			done  = make(chan struct{})
			fails = func(n int) bool {
				return n < failFirst || (n >= failFirst+goodReads && n < failFirst+goodReads+failRefresh)
			}
		)
		src := &fakeSource{loadFn: func(context.Context) (string, string, string, error) {
			mu.Lock()
			defer mu.Unlock()
			n := len(at)
			at = append(at, time.Now())
			if n+1 == totalLoads {
				close(done)
			}
			if fails(n) {
				return "", "", "", errors.New("source down")
			}
			return "AKxxxxxxxxxxxxxxxx", "tokentokentokentoken", "v1", nil
		}}
		s, err := New(Config{RefreshInterval: interval, Logger: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		s.accounts["acme"] = &slot{spec: Spec{Account: "acme", Source: "vault"}, src: src}
		ctx, cancel := context.WithCancel(context.Background())
		s.Start(ctx)
		<-done
		cancel()
		_ = s.Close(context.Background())

		mu.Lock()
		defer mu.Unlock()
		step := retryBase
		for i := 1; i < len(at); i++ {
			gap := at[i].Sub(at[i-1])
			var lo, hi time.Duration
			switch {
			case i < failFirst: // retrying the first load
				lo, hi = step/2, step
				step = min(2*step, retryCeiling)
			case i == failFirst: // the first load came after a failure
				lo, hi = step/2, step
			case i == failFirst+1: // first re-read: anywhere in the first interval
				lo, hi = 0, interval
				step = retryBase
			case fails(i - 1): // the re-read before failed: back off, capped by the interval's jitter
				lo, hi = step/2, step
				step = min(2*step, retryCeiling)
			default:
				lo, hi = interval-interval/5, interval+interval/5
			}
			if gap < lo || gap > hi {
				t.Errorf("load %d came %v after the one before, want within [%v, %v]", i, gap, lo, hi)
			}
		}
	})
}

// TestRetryBackoffBounds checks every wait of the retry backoff against its
// step (1s doubling to 5min: between half and all of it), that Reset starts
// it at 1s again, and that it never gives up, however long the clock says it
// has been failing.
func TestRetryBackoffBounds(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	for run := range 200 {
		bo := retryBackoff(clock)
		for round := range 2 {
			step := time.Second
			for i := range 14 {
				d := bo.NextBackOff()
				if d < step/2 || d > step {
					t.Fatalf("run %d, round %d, wait %d: %v, want within [%v, %v]", run, round, i, d, step/2, step)
				}
				step = min(2*step, 5*time.Minute)
				now = now.Add(24 * time.Hour)
			}
			bo.Reset()
		}
	}
}

// TestIntervalJitterBounds checks that re-reads are spaced d ±20 %, and
// spread over that range rather than all at one end.
func TestIntervalJitterBounds(t *testing.T) {
	const d = 30 * time.Second
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	j := intervalJitter(d, func() time.Time { return now })
	var below, above int
	for i := range 2000 {
		w := j.NextBackOff()
		if w < d-d/5 || w > d+d/5 {
			t.Fatalf("wait %d: %v, want within [%v, %v]", i, w, d-d/5, d+d/5)
		}
		if w < d-d/10 {
			below++
		}
		if w > d+d/10 {
			above++
		}
		now = now.Add(24 * time.Hour)
	}
	if below == 0 || above == 0 {
		t.Errorf("waits not spread: %d in the lowest quarter, %d in the highest", below, above)
	}
}
