package ratelimit_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/exogate/exogate/ratelimit"
)

// aSecond is a token a second, one at a time.
var aSecond = ratelimit.Rule{Limit: 2, Period: time.Second, Burst: 1}

// TestPauseAdmit checks that a caller who comes during a pause goes at its
// end, or is turned away at once with the time left, for a bucket with a
// rule, one without, and one under an account cap.
func TestPauseAdmit(t *testing.T) {
	const pause = 3 * time.Second
	configs := []struct {
		name   string
		cfg    ratelimit.Config
		bucket string
	}{
		{"limited bucket", ratelimit.Config{Buckets: map[string]ratelimit.Rule{"sms": aSecond}}, "sms"},
		{"bucket without a rule", ratelimit.Config{Buckets: map[string]ratelimit.Rule{"sms": aSecond}}, "whatsapp"},
		{"bucket with rule off", ratelimit.Config{Buckets: map[string]ratelimit.Rule{"sms": {}}}, "sms"},
		{"account cap only", ratelimit.Config{Account: aSecond}, "sms"},
	}
	cases := []struct {
		name     string
		maxWait  time.Duration
		deadline time.Duration // 0: none
		waited   time.Duration // when admitted
		reject   bool
	}{
		{"no waiting", 0, 0, 0, true},
		{"MaxWait shorter than the pause", pause - time.Millisecond, 0, 0, true},
		{"MaxWait covers the pause", pause, 0, pause, false},
		{"deadline on the end", time.Hour, pause, 0, true},
		{"deadline after the end", time.Hour, pause + time.Nanosecond, pause, false},
	}
	for _, c := range configs {
		for _, tc := range cases {
			t.Run(c.name+"/"+tc.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					c.cfg.MaxWait = tc.maxWait
					m := newMemory(t, c.cfg)
					if got := m.Pause(sid, c.bucket, pause); got != pause {
						t.Fatalf("Pause = %v, want %v", got, pause)
					}
					ctx := context.Background()
					if tc.deadline > 0 {
						var cancel context.CancelFunc
						ctx, cancel = context.WithTimeout(ctx, tc.deadline)
						defer cancel()
					}
					t0 := time.Now()
					waited, err := m.Admit(ctx, sid, c.bucket)
					if tc.reject {
						if got := retryAfter(t, err); got != pause {
							t.Errorf("RetryAfter = %v, want the pause left, %v", got, pause)
						}
						if waited != 0 || time.Since(t0) != 0 {
							t.Errorf("rejected after %v (waited %v), want at once", time.Since(t0), waited)
						}
						return
					}
					if err != nil || waited != tc.waited || time.Since(t0) != tc.waited {
						t.Errorf("waited %v, err %v, after %v; want admitted after %v", waited, err, time.Since(t0), tc.waited)
					}
					if left := m.PauseLeft(sid, c.bucket); left != 0 {
						t.Errorf("PauseLeft after the pause = %v, want 0", left)
					}
				})
			})
		}
	}
}

// TestPauseScope checks which buckets a pause holds back: its own, and for
// a bucket not in Config.Buckets every other such bucket of the account.
func TestPauseScope(t *testing.T) {
	clock, _ := newFakeClock()
	ac2 := "ac2"
	m, err := ratelimit.NewMemory([]string{sid, ac2}, ratelimit.Config{
		Buckets: map[string]ratelimit.Rule{"sms": aSecond, "voice_v1": {}},
		Now:     clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		paused        string
		other         string
		account       string
		otherIsPaused bool
	}{
		{"sms", "voice_v1", sid, false},
		{"voice_v1", "sms", sid, false},
		{"sms", "sms", ac2, false},
		{"whatsapp", "other", sid, true}, // neither is in Config.Buckets
		{"whatsapp", "sms", sid, false},
	}
	for _, tc := range tests {
		t.Run(tc.paused+" then "+tc.account+" "+tc.other, func(t *testing.T) {
			m, err := ratelimit.NewMemory([]string{sid, ac2}, ratelimit.Config{
				Buckets: map[string]ratelimit.Rule{"sms": aSecond, "voice_v1": {}},
				Now:     clock.Now,
			})
			if err != nil {
				t.Fatal(err)
			}
			m.Pause(sid, tc.paused, time.Minute)
			if left := m.PauseLeft(tc.account, tc.other); (left > 0) != tc.otherIsPaused {
				t.Errorf("PauseLeft(%s, %s) = %v, want paused %v", tc.account, tc.other, left, tc.otherIsPaused)
			}
			_, err = m.Admit(context.Background(), tc.account, tc.other)
			if paused := errors.Is(err, ratelimit.ErrLimited); paused != tc.otherIsPaused {
				t.Errorf("Admit(%s, %s): err %v, want paused %v", tc.account, tc.other, err, tc.otherIsPaused)
			}
		})
	}
	if got := m.Pause("ac9", "sms", time.Second); got != 0 {
		t.Errorf("Pause of an unknown account = %v, want 0", got)
	}
	if got := m.PauseLeft("ac9", "sms"); got != 0 {
		t.Errorf("PauseLeft of an unknown account = %v, want 0", got)
	}
	m.Succeeded("ac9", "sms") // must not panic
}

// TestPauseMovesQueue checks that callers already in line when a pause
// starts are moved past its end in their order, that a newcomer queues
// behind them, and that one whom the move pushes past its MaxWait is told at
// once.
func TestPauseMovesQueue(t *testing.T) {
	for _, capped := range []bool{false, true} {
		name := "bucket"
		cfg := ratelimit.Config{MaxWait: 5 * time.Second, Buckets: map[string]ratelimit.Rule{"sms": aSecond}}
		if capped {
			name = "bucket and account cap"
			cfg.Account = ratelimit.Rule{Limit: 20, Period: time.Second, Burst: 5}
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := newMemory(t, cfg)
				t0 := time.Now()
				if _, err := m.Admit(context.Background(), sid, "sms"); err != nil {
					t.Fatalf("first: %v", err)
				}
				type result struct {
					at, waited time.Duration
					err        error
				}
				results := make([]result, 4)
				var (
					wg    sync.WaitGroup
					mu    sync.Mutex
					order []int
				)
				send := func(i int) {
					wg.Go(func() {
						w, err := m.Admit(context.Background(), sid, "sms")
						results[i] = result{time.Since(t0), w, err}
						mu.Lock()
						order = append(order, i)
						mu.Unlock()
					})
					synctest.Wait()
				}
				send(0) // booked at 1s
				send(1) // at 2s
				send(2) // at 3s
				time.Sleep(500 * time.Millisecond)
				// The pause ends at 3.5s: 0 and 1 go at 3.5s and 4.5s, and
				// 2, booked at 5.5s now, is beyond its MaxWait (5s from 0).
				if got := m.Pause(sid, "sms", 3*time.Second); got != 3*time.Second {
					t.Errorf("Pause = %v, want 3s", got)
				}
				synctest.Wait()
				send(3) // a newcomer at 0.5s: after 1, at 5.5s − well within 5s of MaxWait
				wg.Wait()

				want := []result{
					{3500 * time.Millisecond, 3500 * time.Millisecond, nil},
					{4500 * time.Millisecond, 4500 * time.Millisecond, nil},
					{500 * time.Millisecond, 500 * time.Millisecond, &ratelimit.LimitedError{Delay: 5 * time.Second}},
					{5500 * time.Millisecond, 5 * time.Second, nil},
				}
				for i, w := range want {
					g := results[i]
					if g.at != w.at || g.waited != w.waited || (g.err == nil) != (w.err == nil) {
						t.Errorf("caller %d: done at %v, waited %v, err %v; want %v, %v, %v", i, g.at, g.waited, g.err, w.at, w.waited, w.err)
						continue
					}
					if w.err != nil {
						if got := retryAfter(t, g.err); got != w.err.(*ratelimit.LimitedError).Delay {
							t.Errorf("caller %d: RetryAfter = %v, want %v", i, got, w.err.(*ratelimit.LimitedError).Delay)
						}
					}
				}
				if want := []int{2, 0, 1, 3}; !equalInts(order, want) {
					t.Errorf("callers returned in order %v, want %v", order, want)
				}
			})
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestPauseExtendedWhileWaiting checks that a caller waiting out a pause
// waits out a longer one that replaces it, and that cancelling it works.
func TestPauseExtendedWhileWaiting(t *testing.T) {
	for _, bucket := range []string{"sms", "whatsapp"} { // with and without a rule
		t.Run(bucket, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := newMemory(t, ratelimit.Config{MaxWait: 10 * time.Second, Buckets: map[string]ratelimit.Rule{"sms": aSecond}})
				m.Pause(sid, bucket, time.Second)
				t0 := time.Now()
				var (
					wg       sync.WaitGroup
					waited   time.Duration
					err      error
					doneAt   time.Duration
					errC     error
					canceled = make(chan struct{})
				)
				ctx, cancel := context.WithCancel(context.Background())
				wg.Go(func() {
					waited, err = m.Admit(context.Background(), sid, bucket)
					doneAt = time.Since(t0)
				})
				synctest.Wait() // first in line
				wg.Go(func() {
					_, errC = m.Admit(ctx, sid, bucket)
					close(canceled)
				})
				time.Sleep(500 * time.Millisecond)
				if got := m.Pause(sid, bucket, 2*time.Second); got != 2*time.Second {
					t.Errorf("Pause = %v, want 2s", got)
				}
				cancel()
				<-canceled
				wg.Wait()
				if !errors.Is(errC, context.Canceled) {
					t.Errorf("cancelled caller: err %v, want context.Canceled", errC)
				}
				if err != nil || waited != 2500*time.Millisecond || doneAt != 2500*time.Millisecond {
					t.Errorf("waited %v, err %v, done at %v; want admitted at 2.5s", waited, err, doneAt)
				}
			})
		})
	}
}

// TestPauseNeverShortens checks that a shorter pause leaves a longer one in
// force and that Pause returns what is in force.
func TestPauseNeverShortens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMemory(t, ratelimit.Config{Buckets: map[string]ratelimit.Rule{"sms": aSecond}})
		steps := []struct {
			after time.Duration // sleep before the call
			d     time.Duration
			want  time.Duration
		}{
			{0, 5 * time.Second, 5 * time.Second},
			{0, time.Second, 5 * time.Second},
			{2 * time.Second, time.Second, 3 * time.Second},
			{0, 4 * time.Second, 4 * time.Second},
			{0, 3 * time.Second, 4 * time.Second},
		}
		for i, s := range steps {
			time.Sleep(s.after)
			if got := m.Pause(sid, "sms", s.d); got != s.want {
				t.Errorf("step %d: Pause(%v) = %v, want %v", i, s.d, got, s.want)
			}
			if got := m.PauseLeft(sid, "sms"); got != s.want {
				t.Errorf("step %d: PauseLeft = %v, want %v", i, got, s.want)
			}
		}
	})
}

// TestPauseBackoff checks the pauses without a Retry-After: 1s doubling per
// consecutive pause up to 60s, each jittered to between half and all of its
// step; a success during a pause does not reset it, one after does.
func TestPauseBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMemory(t, ratelimit.Config{Buckets: map[string]ratelimit.Rule{"sms": aSecond}})
		steps := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60}
		for i, step := range steps {
			step *= time.Second
			d := m.Pause(sid, "sms", 0)
			if d < step/2 || d > step {
				t.Errorf("pause %d: %v, want between %v and %v", i+1, d, step/2, step)
			}
			if left := m.PauseLeft(sid, "sms"); left != d {
				t.Errorf("pause %d: PauseLeft = %v, want %v", i+1, left, d)
			}
			// A success during the pause answers a request sent before it.
			m.Succeeded(sid, "sms")
			time.Sleep(d)
		}
		m.Succeeded(sid, "sms")
		if d := m.Pause(sid, "sms", 0); d < 500*time.Millisecond || d > time.Second {
			t.Errorf("after a success: pause %v, want between 0.5s and 1s", d)
		}
		// A pause with a Retry-After counts as a step too.
		time.Sleep(time.Second)
		m.Pause(sid, "sms", 10*time.Millisecond)
		time.Sleep(10 * time.Millisecond)
		if d := m.Pause(sid, "sms", 0); d < 2*time.Second || d > 4*time.Second {
			t.Errorf("third consecutive pause: %v, want between 2s and 4s", d)
		}
	})
}

// TestPauseJitterSpreads checks that the backoff is random within its step,
// not always the same point of it.
func TestPauseJitterSpreads(t *testing.T) {
	seen := map[time.Duration]bool{}
	for range 20 {
		clock, _ := newFakeClock()
		m := newMemory(t, ratelimit.Config{Now: clock.Now})
		seen[m.Pause(sid, "sms", 0)] = true
	}
	if len(seen) < 10 {
		t.Errorf("20 first backoffs took only %d values", len(seen))
	}
}

// TestSucceededDoesNotAllocate pins the cheap path of Succeeded and
// PauseLeft.
func TestSucceededDoesNotAllocate(t *testing.T) {
	m := newMemory(t, ratelimit.Config{Buckets: map[string]ratelimit.Rule{"sms": aSecond}})
	allocs := testing.AllocsPerRun(1000, func() {
		m.Succeeded(sid, "sms")
		m.PauseLeft(sid, "sms")
	})
	if allocs != 0 {
		t.Errorf("Succeeded and PauseLeft allocate %v times per call, want 0", allocs)
	}
}
