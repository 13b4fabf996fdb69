package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/exogate/exogate/ratelimit"
)

const sid = "ac0123456789abcdef"

// fakeClock is a clock that moves only when told. It is for tests that never
// let Admit wait; it is not safe for concurrent use.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

// newFakeClock returns a fakeClock and its start.
func newFakeClock() (*fakeClock, time.Time) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	return &fakeClock{t0}, t0
}

// newMemory returns a Memory for the account sid, or fails the test.
func newMemory(t testing.TB, cfg ratelimit.Config) *ratelimit.Memory {
	t.Helper()
	m, err := ratelimit.NewMemory([]string{sid}, cfg)
	if err != nil {
		t.Fatalf("NewMemory: %v", err)
	}
	return m
}

// interval is the time between two tokens of r, worked out here on its own:
// Period/(Limit−Burst), rounded up to a whole nanosecond.
func interval(r ratelimit.Rule) time.Duration {
	n := time.Duration(r.Limit - max(r.Burst, 1))
	return (r.Period + n - 1) / n
}

// maxInWindow returns the most instants that fall in one closed window
// [s, s+period].
func maxInWindow(instants []time.Duration, period time.Duration) int {
	ts := slices.Sorted(slices.Values(instants))
	best, j := 0, 0
	for i := range ts {
		for ts[j] < ts[i]-period {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}

// countUpTo returns how many instants are at or before d.
func countUpTo(instants []time.Duration, d time.Duration) int {
	n := 0
	for _, t := range instants {
		if t <= d {
			n++
		}
	}
	return n
}

// retryAfter returns err's RetryAfter, or fails the test if err is not a
// rejection.
func retryAfter(t *testing.T, err error) time.Duration {
	t.Helper()
	if !errors.Is(err, ratelimit.ErrLimited) {
		t.Fatalf("err = %v, want one that wraps ErrLimited", err)
	}
	var le *ratelimit.LimitedError
	if !errors.As(err, &le) {
		t.Fatalf("err = %#v, want a *LimitedError", err)
	}
	return le.RetryAfter()
}

var windowRules = []ratelimit.Rule{
	{Limit: 200, Period: time.Minute, Burst: 1},
	{Limit: 20, Period: 2 * time.Second, Burst: 1},
	{Limit: 20, Period: 2 * time.Second, Burst: 5},
	{Limit: 3, Period: time.Second, Burst: 2},
	{Limit: 4, Period: time.Second}, // an interval that is not a whole nanosecond
}

func ruleName(r ratelimit.Rule) string {
	return fmt.Sprintf("%d per %v burst %d", r.Limit, r.Period, r.Burst)
}

// TestWindowProbing knocks every 10ms of fake time for five periods, never
// waiting, and checks that no window of Period holds more than Limit admits
// and that the limiter lets through as much as it can.
func TestWindowProbing(t *testing.T) {
	const step = 10 * time.Millisecond
	for _, rule := range windowRules {
		t.Run(ruleName(rule), func(t *testing.T) {
			clock, t0 := newFakeClock()
			m := newMemory(t, ratelimit.Config{
				Buckets: map[string]ratelimit.Rule{"sms": rule},
				Now:     clock.Now,
			})
			d := 5 * rule.Period
			var admits []time.Duration
			for at := time.Duration(0); at <= d; at += step {
				clock.t = t0.Add(at)
				waited, err := m.Admit(context.Background(), sid, "sms")
				switch {
				case err == nil && waited != 0:
					t.Fatalf("at %v: waited %v with MaxWait 0", at, waited)
				case err == nil:
					admits = append(admits, at)
				default:
					retryAfter(t, err)
				}
			}
			if got := maxInWindow(admits, rule.Period); got > rule.Limit {
				t.Errorf("%d admits in one window of %v, limit %d", got, rule.Period, rule.Limit)
			}
			// With Burst 1 a token that comes between two knocks waits for
			// the next one and the time in between is lost; with a larger
			// Burst the bucket keeps it.
			b := max(rule.Burst, 1)
			want := int((time.Duration(rule.Limit-b)*d)/rule.Period) - 1
			if b == 1 {
				gap := (interval(rule) + step - 1) / step * step
				want = 1 + int(d/gap)
			}
			if len(admits) < want {
				t.Errorf("%d admits in %v, want at least %d", len(admits), d, want)
			}
		})
	}
}

// TestExactBoundary checks the edges of the window with exact instants: a
// token is there exactly I after the last one and not a nanosecond sooner,
// and the Limit-th request of a window lands on its closing edge.
func TestExactBoundary(t *testing.T) {
	clock, t0 := newFakeClock()
	m := newMemory(t, ratelimit.Config{
		Buckets: map[string]ratelimit.Rule{"sms": {Limit: 3, Period: time.Second, Burst: 2}},
		Now:     clock.Now,
	})
	steps := []struct {
		at time.Duration
		ok bool
	}{
		{0, true}, {0, true}, {0, false},
		{time.Second - time.Nanosecond, false},
		{time.Second, true}, // the third in [0, 1s]
		{time.Second, false},
		{2*time.Second - time.Nanosecond, false},
		{2 * time.Second, true},
	}
	for i, s := range steps {
		clock.t = t0.Add(s.at)
		_, err := m.Admit(context.Background(), sid, "sms")
		if (err == nil) != s.ok {
			t.Errorf("request %d at %v: err = %v, want admitted %v", i, s.at, err, s.ok)
		}
	}
}

// TestStaleClock checks that a clock reading older than one the limiter has
// already seen (a caller that read the clock first but got the lock second,
// or a clock that goes back) counts as the newer one: it neither waits nor is
// turned away for time that has in fact passed.
func TestStaleClock(t *testing.T) {
	clock, t0 := newFakeClock()
	m := newMemory(t, ratelimit.Config{
		Buckets: map[string]ratelimit.Rule{"sms": {Limit: 3, Period: time.Second, Burst: 2}},
		Account: ratelimit.Rule{Limit: 10, Period: time.Second, Burst: 5},
		Now:     clock.Now,
	})
	steps := []struct {
		at         time.Duration
		retryAfter time.Duration // 0: admitted
	}{
		{time.Second, 0},
		{500 * time.Millisecond, 0},           // counts as 1s: the burst's second token
		{500 * time.Millisecond, time.Second}, // the next token is at 2s, a second after 1s
		{2 * time.Second, 0},
	}
	for i, s := range steps {
		clock.t = t0.Add(s.at)
		waited, err := m.Admit(context.Background(), sid, "sms")
		switch {
		case s.retryAfter == 0 && (err != nil || waited != 0):
			t.Errorf("request %d at %v: waited %v, err %v; want admitted at once", i, s.at, waited, err)
		case s.retryAfter != 0 && retryAfter(t, err) != s.retryAfter:
			t.Errorf("request %d at %v: RetryAfter = %v, want %v", i, s.at, retryAfter(t, err), s.retryAfter)
		}
	}
}

// arrival is one request sent by run.
type arrival struct {
	at     time.Duration // since the start of the run
	bucket string
}

// outcome is what became of an arrival.
type outcome struct {
	arrival
	done   time.Duration // when Admit returned, since the start
	waited time.Duration
	err    error
}

// run sends the arrivals (sorted by at), each from its own goroutine at its
// instant and after the one before has queued, inside the synctest bubble it
// is called from. It returns the outcomes in arrival order, and the indexes
// of the admitted arrivals in the order Admit returned.
func run(t *testing.T, m *ratelimit.Memory, maxWait time.Duration, arrivals []arrival) ([]outcome, []int) {
	t.Helper()
	t0 := time.Now()
	out := make([]outcome, len(arrivals))
	var (
		mu    sync.Mutex
		order []int
		wg    sync.WaitGroup
	)
	for i, a := range arrivals {
		if d := a.at - time.Since(t0); d > 0 {
			time.Sleep(d)
		}
		wg.Go(func() {
			waited, err := m.Admit(context.Background(), sid, a.bucket)
			out[i] = outcome{a, time.Since(t0), waited, err}
			if err == nil {
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
			}
		})
		synctest.Wait()
	}
	wg.Wait()
	for i, o := range out {
		switch {
		case o.err == nil && o.waited != o.done-o.at:
			t.Errorf("arrival %d at %v: admitted at %v but waited = %v", i, o.at, o.done, o.waited)
		case o.err == nil && o.waited > maxWait:
			t.Errorf("arrival %d at %v: waited %v, more than MaxWait %v", i, o.at, o.waited, maxWait)
		case o.err != nil && o.done != o.at:
			t.Errorf("arrival %d at %v: rejected only at %v", i, o.at, o.done)
		case o.err != nil && retryAfter(t, o.err) <= maxWait:
			t.Errorf("arrival %d at %v: rejected with RetryAfter %v, within MaxWait %v", i, o.at, retryAfter(t, o.err), maxWait)
		}
	}
	return out, order
}

// admitted returns when the admitted outcomes for bucket ("" for all) were
// admitted.
func admitted(out []outcome, bucket string) []time.Duration {
	var ts []time.Duration
	for _, o := range out {
		if o.err == nil && (bucket == "" || o.bucket == bucket) {
			ts = append(ts, o.done)
		}
	}
	return ts
}

// TestWindowWaiting lets callers queue and checks the window property on
// when they were let through, and that the queue drains at the full rate.
func TestWindowWaiting(t *testing.T) {
	for _, rule := range windowRules {
		b := max(rule.Burst, 1)
		t.Run(ruleName(rule)+"/all at once", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				maxWait := 5 * rule.Period
				m := newMemory(t, ratelimit.Config{MaxWait: maxWait, Buckets: map[string]ratelimit.Rule{"sms": rule}})
				arrivals := make([]arrival, b+4*(rule.Limit-b)+1)
				for i := range arrivals {
					arrivals[i] = arrival{0, "sms"}
				}
				out, _ := run(t, m, maxWait, arrivals)
				ts := admitted(out, "")
				if len(ts) != len(arrivals) {
					t.Errorf("%d of %d admitted, want all", len(ts), len(arrivals))
				}
				if got := maxInWindow(ts, rule.Period); got > rule.Limit {
					t.Errorf("%d admits in one window of %v, limit %d", got, rule.Period, rule.Limit)
				}
				d := 4 * rule.Period
				if got, want := countUpTo(ts, d), 4*(rule.Limit-b)-1; got < want {
					t.Errorf("%d admitted by %v, want at least %d", got, d, want)
				}
			})
		})
		t.Run(ruleName(rule)+"/twice the rate", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				maxWait := rule.Period / 4
				m := newMemory(t, ratelimit.Config{MaxWait: maxWait, Buckets: map[string]ratelimit.Rule{"sms": rule}})
				gap := rule.Period / time.Duration(2*rule.Limit)
				var arrivals []arrival
				for at := time.Duration(0); at <= 3*rule.Period; at += gap {
					arrivals = append(arrivals, arrival{at, "sms"})
				}
				out, _ := run(t, m, maxWait, arrivals)
				ts := admitted(out, "")
				if len(ts) == len(arrivals) {
					t.Errorf("all %d admitted at twice the rate", len(ts))
				}
				if got := maxInWindow(ts, rule.Period); got > rule.Limit {
					t.Errorf("%d admits in one window of %v, limit %d", got, rule.Period, rule.Limit)
				}
				d := 3 * rule.Period
				if got, want := countUpTo(ts, d), 3*(rule.Limit-b)-1; got < want {
					t.Errorf("%d admitted by %v, want at least %d", got, d, want)
				}
			})
		})
	}
}

// TestAccountCap runs two buckets of 10/s under an account cap of 15/s and
// checks both limits in every window.
func TestAccountCap(t *testing.T) {
	bucketRules := []struct {
		name           string
		bucket, capped ratelimit.Rule
	}{
		{"burst 1", ratelimit.Rule{Limit: 10, Period: time.Second, Burst: 1}, ratelimit.Rule{Limit: 15, Period: time.Second, Burst: 1}},
		{"bursts 4 and 6", ratelimit.Rule{Limit: 10, Period: time.Second, Burst: 4}, ratelimit.Rule{Limit: 15, Period: time.Second, Burst: 6}},
	}
	rng := rand.New(rand.NewPCG(7, 7))
	var random []arrival
	for range 400 {
		random = append(random, arrival{time.Duration(rng.Int64N(int64(10 * time.Second))), []string{"a", "b"}[rng.IntN(2)]})
	}
	slices.SortFunc(random, func(x, y arrival) int { return int(x.at - y.at) })
	var aThenB, interleaved []arrival
	for range 14 {
		aThenB = append(aThenB, arrival{0, "a"})
	}
	for range 14 {
		aThenB = append(aThenB, arrival{0, "b"})
	}
	for i := range 100 {
		interleaved = append(interleaved, arrival{0, []string{"a", "b"}[i%2]})
	}
	scenarios := []struct {
		name     string
		maxWait  time.Duration
		arrivals []arrival
		fullRate bool // the cap binds all along: check it is used to the full
	}{
		// Booking each limiter apart would let 14 of b and 19 in all
		// through within a second here.
		{"14 a then 14 b at once", 10 * time.Second, aThenB, false},
		{"a and b in turn at once", 10 * time.Second, interleaved, true},
		{"random", time.Second, random, false},
	}
	for _, br := range bucketRules {
		for _, sc := range scenarios {
			t.Run(br.name+"/"+sc.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					m := newMemory(t, ratelimit.Config{
						MaxWait: sc.maxWait,
						Buckets: map[string]ratelimit.Rule{"a": br.bucket, "b": br.bucket},
						Account: br.capped,
					})
					out, _ := run(t, m, sc.maxWait, sc.arrivals)
					for _, bucket := range []string{"a", "b"} {
						if got := maxInWindow(admitted(out, bucket), time.Second); got > br.bucket.Limit {
							t.Errorf("bucket %s: %d admits in one second, limit %d", bucket, got, br.bucket.Limit)
						}
					}
					all := admitted(out, "")
					if got := maxInWindow(all, time.Second); got > br.capped.Limit {
						t.Errorf("account: %d admits in one second, cap %d", got, br.capped.Limit)
					}
					capB := max(br.capped.Burst, 1)
					if want := capB + 3*(br.capped.Limit-capB) - 1; sc.fullRate && countUpTo(all, 3*time.Second) < want {
						t.Errorf("%d admitted by 3s, want at least %d", countUpTo(all, 3*time.Second), want)
					}
					if len(all) == 0 {
						t.Error("nothing admitted")
					}
				})
			})
		}
	}
}

// TestAccountCapNoHeadOfLineBlocking checks that a queue in one bucket does
// not hold up another bucket while the cap has room, and that the cap covers
// buckets without a rule.
func TestAccountCapNoHeadOfLineBlocking(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const maxWait = 10 * time.Second
		m := newMemory(t, ratelimit.Config{
			MaxWait: maxWait,
			Buckets: map[string]ratelimit.Rule{"a": {Limit: 10, Period: time.Second, Burst: 1}, "b": {Limit: 10, Period: time.Second, Burst: 1}},
			Account: ratelimit.Rule{Limit: 30, Period: time.Second, Burst: 1},
		})
		var arrivals []arrival
		for range 20 {
			arrivals = append(arrivals, arrival{0, "a"})
		}
		arrivals = append(arrivals, arrival{0, "b"}, arrival{0, "other"}, arrival{0, "unknown"})
		out, _ := run(t, m, maxWait, arrivals)
		// The cap's bookings for a are I_a = 1s/9 apart and its own
		// interval is I_cap = 1s/29: b and other fit in the first gap
		// (I_cap and 2·I_cap), the third newcomer only in the second.
		capI := interval(ratelimit.Rule{Limit: 30, Period: time.Second, Burst: 1})
		aI := interval(ratelimit.Rule{Limit: 10, Period: time.Second, Burst: 1})
		for i, want := range []time.Duration{capI, 2 * capI, aI + capI} {
			if o := out[20+i]; o.err != nil || o.waited != want {
				t.Errorf("%s: waited %v, err %v; want %v, well before a's queue ends at %v", o.bucket, o.waited, o.err, want, out[19].done)
			}
		}
		if last := out[19].done; last != 19*aI {
			t.Errorf("a's queue ended at %v, want 19·I_a = %v", last, 19*aI)
		}
	})
}

// TestFIFO sends callers at known, distinct instants and checks that each
// bucket lets them through in the order they came.
func TestFIFO(t *testing.T) {
	tests := []struct {
		name    string
		buckets map[string]ratelimit.Rule
		account ratelimit.Rule
		cycle   []string // the buckets of successive callers, repeated
		n       int
	}{
		{"burst 1", map[string]ratelimit.Rule{"sms": {Limit: 3, Period: time.Second, Burst: 1}}, ratelimit.Rule{}, []string{"sms"}, 8},
		{"burst 5", map[string]ratelimit.Rule{"sms": {Limit: 20, Period: 2 * time.Second, Burst: 5}}, ratelimit.Rule{}, []string{"sms"}, 30},
		{"cap binds", map[string]ratelimit.Rule{"sms": {Limit: 10, Period: time.Second, Burst: 1}}, ratelimit.Rule{Limit: 4, Period: time.Second, Burst: 1}, []string{"sms"}, 12},
		{"two buckets share a cap", map[string]ratelimit.Rule{"a": {Limit: 10, Period: time.Second, Burst: 2}, "b": {Limit: 5, Period: time.Second, Burst: 1}}, ratelimit.Rule{Limit: 8, Period: time.Second, Burst: 3}, []string{"a", "b", "a"}, 30},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const maxWait = time.Hour
				m := newMemory(t, ratelimit.Config{MaxWait: maxWait, Buckets: tc.buckets, Account: tc.account})
				arrivals := make([]arrival, tc.n)
				for i := range arrivals {
					arrivals[i] = arrival{time.Duration(i) * time.Millisecond, tc.cycle[i%len(tc.cycle)]}
				}
				out, order := run(t, m, maxWait, arrivals)
				if len(order) != tc.n {
					t.Fatalf("%d of %d admitted, want all", len(order), tc.n)
				}
				queued := 0
				for _, o := range out {
					if o.waited > 0 {
						queued++
					}
				}
				if queued < tc.n/2 {
					t.Errorf("only %d of %d callers queued", queued, tc.n)
				}
				for bucket := range tc.buckets {
					var got, want []int
					for _, i := range order {
						if arrivals[i].bucket == bucket {
							got = append(got, i)
						}
					}
					for i, a := range arrivals {
						if a.bucket == bucket {
							want = append(want, i)
						}
					}
					if !slices.Equal(got, want) {
						t.Errorf("bucket %s let callers through in order %v, want %v", bucket, got, want)
					}
				}
			})
		})
	}
}

// TestMaxWait checks that a caller who would queue past MaxWait is turned
// away at once with the exact delay, and takes nothing.
func TestMaxWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rule := ratelimit.Rule{Limit: 20, Period: 2 * time.Second, Burst: 1}
		i := interval(rule) // 105.263158ms
		const maxWait = 150 * time.Millisecond
		m := newMemory(t, ratelimit.Config{MaxWait: maxWait, Buckets: map[string]ratelimit.Rule{"sms": rule}})
		ctx := context.Background()
		t0 := time.Now()

		if waited, err := m.Admit(ctx, sid, "sms"); err != nil || waited != 0 {
			t.Fatalf("first: waited %v, err %v; want admitted at once", waited, err)
		}
		var (
			waited1 time.Duration
			err1    error
			done    = make(chan struct{})
		)
		go func() {
			waited1, err1 = m.Admit(ctx, sid, "sms")
			close(done)
		}()
		synctest.Wait() // the second caller is in line for the token at I

		for _, name := range []string{"third", "fourth"} {
			waited, err := m.Admit(ctx, sid, "sms")
			if waited != 0 || time.Since(t0) != 0 {
				t.Errorf("%s: waited %v (%v of fake time); want an answer at once", name, waited, time.Since(t0))
			}
			// The fourth is told the same as the third: the third took
			// nothing.
			if got := retryAfter(t, err); got != 2*i {
				t.Errorf("%s: RetryAfter = %v, want 2I = %v", name, got, 2*i)
			}
		}

		<-done
		if err1 != nil || waited1 != i || time.Since(t0) != i {
			t.Errorf("second: waited %v, err %v, at %v; want admitted after I = %v", waited1, err1, time.Since(t0), i)
		}
		// Now the next token is I away, within MaxWait.
		if waited, err := m.Admit(ctx, sid, "sms"); err != nil || waited != i {
			t.Errorf("fifth: waited %v, err %v; want admitted after %v", waited, err, i)
		}
	})
}

// TestDeadline checks that ctx's deadline bounds the wait as MaxWait does.
func TestDeadline(t *testing.T) {
	rule := ratelimit.Rule{Limit: 2, Period: time.Second, Burst: 1} // a token a second
	tests := []struct {
		name     string
		deadline time.Duration
		admitted bool
	}{
		{"deadline before the token", 500 * time.Millisecond, false},
		{"deadline on the token", time.Second, false},
		{"deadline just after the token", time.Second + time.Nanosecond, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := newMemory(t, ratelimit.Config{MaxWait: time.Hour, Buckets: map[string]ratelimit.Rule{"sms": rule}})
				if _, err := m.Admit(context.Background(), sid, "sms"); err != nil {
					t.Fatalf("first: %v", err)
				}
				t0 := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), tc.deadline)
				defer cancel()
				waited, err := m.Admit(ctx, sid, "sms")
				if tc.admitted {
					if err != nil || waited != time.Second || time.Since(t0) != time.Second {
						t.Errorf("waited %v, err %v, after %v; want admitted after 1s", waited, err, time.Since(t0))
					}
					return
				}
				if got := retryAfter(t, err); got != time.Second {
					t.Errorf("RetryAfter = %v, want 1s", got)
				}
				if waited != 0 || time.Since(t0) != 0 {
					t.Errorf("waited %v, answered after %v; want an answer at once", waited, time.Since(t0))
				}
			})
		})
	}
}

// TestCancel checks that a caller whose context is cancelled while it waits
// gets context.Canceled and gives its reservation back.
func TestCancel(t *testing.T) {
	second := ratelimit.Rule{Limit: 2, Period: time.Second, Burst: 1} // a token a second
	tests := []struct {
		name    string
		buckets map[string]ratelimit.Rule
		account ratelimit.Rule
		// The first caller (bucket a) is admitted at 0, the second (bucket
		// a) queues and is cancelled at 400ms, then one more caller comes
		// at 400ms for bucket later.
		later     string
		laterWait time.Duration
	}{
		{"bucket", map[string]ratelimit.Rule{"a": second}, ratelimit.Rule{}, "a", 600 * time.Millisecond},
		{"account cap", map[string]ratelimit.Rule{"a": second}, second, "b", 600 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := newMemory(t, ratelimit.Config{MaxWait: time.Hour, Buckets: tc.buckets, Account: tc.account})
				if _, err := m.Admit(context.Background(), sid, "a"); err != nil {
					t.Fatalf("first: %v", err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				var (
					waited time.Duration
					err    error
					done   = make(chan struct{})
				)
				go func() {
					waited, err = m.Admit(ctx, sid, "a")
					close(done)
				}()
				time.Sleep(400 * time.Millisecond)
				cancel()
				<-done
				if !errors.Is(err, context.Canceled) || waited != 400*time.Millisecond {
					t.Errorf("cancelled caller: waited %v, err %v; want context.Canceled after 400ms", waited, err)
				}
				if w, err := m.Admit(context.Background(), sid, tc.later); err != nil || w != tc.laterWait {
					t.Errorf("later caller: waited %v, err %v; want %v, the cancelled caller's place", w, err, tc.laterWait)
				}
			})
		})
	}
}

// TestCancelMidQueue checks that callers queued behind a cancelled one keep
// their times, and that the bucket still serves newcomers after them.
func TestCancelMidQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMemory(t, ratelimit.Config{MaxWait: time.Hour, Buckets: map[string]ratelimit.Rule{"a": {Limit: 2, Period: time.Second, Burst: 1}}})
		t0 := time.Now()
		if _, err := m.Admit(context.Background(), sid, "a"); err != nil {
			t.Fatalf("first: %v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var errSecond error
		var thirdAt time.Duration
		wg.Go(func() { _, errSecond = m.Admit(ctx, sid, "a") })
		synctest.Wait()
		wg.Go(func() {
			if _, err := m.Admit(context.Background(), sid, "a"); err == nil {
				thirdAt = time.Since(t0)
			}
		})
		synctest.Wait()
		time.Sleep(400 * time.Millisecond)
		cancel()
		synctest.Wait() // the second caller has given its booking back
		// The newcomer queues after the third caller (first come, first
		// served); the slot the second gave up goes unused.
		waited, err := m.Admit(context.Background(), sid, "a")
		wg.Wait()
		if !errors.Is(errSecond, context.Canceled) {
			t.Errorf("second: err = %v, want context.Canceled", errSecond)
		}
		if thirdAt != 2*time.Second {
			t.Errorf("third admitted at %v, want 2s as booked", thirdAt)
		}
		if err != nil || waited != 2600*time.Millisecond {
			t.Errorf("newcomer: waited %v, err %v; want 2.6s (admitted at 3s, after the third)", waited, err)
		}
	})
}

// TestRetryAfterAccuracy checks that a rejected caller who comes back after
// RetryAfter is admitted, and not a moment sooner.
func TestRetryAfterAccuracy(t *testing.T) {
	for _, rule := range windowRules {
		t.Run(ruleName(rule), func(t *testing.T) {
			clock, t0 := newFakeClock()
			m := newMemory(t, ratelimit.Config{Buckets: map[string]ratelimit.Rule{"sms": rule}, Now: clock.Now})
			admit := func(at time.Duration) error {
				clock.t = t0.Add(at)
				_, err := m.Admit(context.Background(), sid, "sms")
				return err
			}
			for range max(rule.Burst, 1) {
				if err := admit(0); err != nil {
					t.Fatalf("burst at 0: %v", err)
				}
			}
			d := retryAfter(t, admit(0))
			if d != interval(rule) {
				t.Errorf("RetryAfter = %v, want I = %v", d, interval(rule))
			}
			for _, early := range []time.Duration{time.Millisecond, time.Nanosecond} {
				// Never less than a millisecond, even when the token is
				// a nanosecond away.
				if got := retryAfter(t, admit(d-early)); got != time.Millisecond {
					t.Errorf("at RetryAfter−%v: RetryAfter = %v, want 1ms", early, got)
				}
			}
			if err := admit(d); err != nil {
				t.Errorf("at RetryAfter: %v, want admitted", err)
			}
			if got := retryAfter(t, admit(d)); got != interval(rule) {
				t.Errorf("after that: RetryAfter = %v, want I = %v", got, interval(rule))
			}
		})
	}
}

// TestUnlimited covers accounts and buckets that have no limit, or no
// account at all.
func TestUnlimited(t *testing.T) {
	rule := ratelimit.Rule{Limit: 3, Period: time.Second, Burst: 2}
	tests := []struct {
		name    string
		cfg     ratelimit.Config
		account string
		bucket  string
		admits  int   // how many are admitted at one instant
		err     error // what the next one gets
	}{
		{"unknown account", ratelimit.Config{Buckets: map[string]ratelimit.Rule{"sms": rule}}, "ac9", "sms", 0, ratelimit.ErrUnknownAccount},
		{"account SIDs are lower-case", ratelimit.Config{Buckets: map[string]ratelimit.Rule{"sms": rule}}, "AC0123456789ABCDEF", "sms", 0, ratelimit.ErrUnknownAccount},
		{"limited bucket", ratelimit.Config{Buckets: map[string]ratelimit.Rule{"sms": rule}}, sid, "sms", 2, ratelimit.ErrLimited},
		{"bucket without a rule", ratelimit.Config{Buckets: map[string]ratelimit.Rule{"sms": rule}}, sid, "whatsapp", 1000, nil},
		{"rule off", ratelimit.Config{Buckets: map[string]ratelimit.Rule{"sms": {Limit: 0, Period: time.Second}}}, sid, "sms", 1000, nil},
		{"zero config", ratelimit.Config{}, sid, "sms", 1000, nil},
		{"account cap covers a bucket without a rule", ratelimit.Config{Account: rule}, sid, "whatsapp", 2, ratelimit.ErrLimited},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock, _ := newFakeClock()
			tc.cfg.Now = clock.Now
			m := newMemory(t, tc.cfg)
			for i := range tc.admits {
				if waited, err := m.Admit(context.Background(), tc.account, tc.bucket); err != nil || waited != 0 {
					t.Fatalf("request %d: waited %v, err %v; want admitted", i, waited, err)
				}
			}
			if _, err := m.Admit(context.Background(), tc.account, tc.bucket); !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Errorf("request %d: err = %v, want %v", tc.admits, err, tc.err)
			}
		})
	}
}

func TestZeroMemory(t *testing.T) {
	var m ratelimit.Memory
	if _, err := m.Admit(context.Background(), sid, "sms"); !errors.Is(err, ratelimit.ErrUnknownAccount) {
		t.Errorf("zero Memory: err = %v, want ErrUnknownAccount", err)
	}
}

// TestContextDoneBeforeAdmit checks that a done context is reported at once
// and takes no token.
func TestContextDoneBeforeAdmit(t *testing.T) {
	clock, _ := newFakeClock()
	m := newMemory(t, ratelimit.Config{
		Buckets: map[string]ratelimit.Rule{"sms": {Limit: 2, Period: time.Second, Burst: 1}},
		Now:     clock.Now,
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Admit(ctx, sid, "sms"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: err = %v, want context.Canceled", err)
	}
	if _, err := m.Admit(context.Background(), sid, "sms"); err != nil {
		t.Errorf("after the cancelled call: err = %v, want the token still there", err)
	}
}

func TestNewMemoryErrors(t *testing.T) {
	good := ratelimit.Rule{Limit: 200, Period: time.Minute, Burst: 1}
	tests := []struct {
		name     string
		accounts []string
		cfg      ratelimit.Config
		want     string
	}{
		{"negative max wait", []string{sid}, ratelimit.Config{MaxWait: -time.Second}, "ratelimit: max wait -1s must not be negative"},
		{"bad bucket rule", []string{sid}, ratelimit.Config{Buckets: map[string]ratelimit.Rule{"sms": good, "voice_v1": {Limit: 5, Period: time.Second, Burst: 5}}}, `ratelimit: bucket "voice_v1": burst 5 must be less than limit 5`},
		{"bad account rule", []string{sid}, ratelimit.Config{Account: ratelimit.Rule{Limit: 5}}, "ratelimit: account cap: period 0s must be positive when limit is set"},
		{"empty SID", []string{sid, ""}, ratelimit.Config{}, "ratelimit: empty account SID"},
		{"upper-case SID", []string{"AC1"}, ratelimit.Config{}, `ratelimit: account SID "AC1" is not lower-case`},
		{"duplicate SID", []string{sid, "ac2", sid}, ratelimit.Config{}, `ratelimit: duplicate account SID "ac0123456789abcdef"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ratelimit.NewMemory(tc.accounts, tc.cfg)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("NewMemory() = %v, %v; want error %q", m, err, tc.want)
			}
		})
	}
	if _, err := ratelimit.NewMemory(nil, ratelimit.Config{}); err != nil {
		t.Errorf("NewMemory with no accounts: %v, want nil", err)
	}
}

// TestReconfigured checks that a reload with the same limits keeps each
// remaining account's state, adds new accounts fresh, and that changed
// limits start every account fresh.
func TestReconfigured(t *testing.T) {
	clock, _ := newFakeClock()
	cfg := ratelimit.Config{Buckets: map[string]ratelimit.Rule{"sms": {Limit: 2, Period: time.Hour, Burst: 1}}, Now: clock.Now}
	m1 := newMemory(t, cfg)
	if _, err := m1.Admit(context.Background(), sid, "sms"); err != nil {
		t.Fatal(err)
	}
	m2, err := m1.Reconfigured([]string{sid, "beta"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m2.Admit(context.Background(), sid, "sms"); !errors.Is(err, ratelimit.ErrLimited) {
		t.Errorf("a reload handed out a fresh budget: %v", err)
	}
	if _, err := m2.Admit(context.Background(), "beta", "sms"); err != nil {
		t.Errorf("a new account did not start fresh: %v", err)
	}
	changed := cfg
	changed.Buckets = map[string]ratelimit.Rule{"sms": {Limit: 5, Period: time.Hour, Burst: 2}}
	m3, err := m2.Reconfigured([]string{sid}, changed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m3.Admit(context.Background(), sid, "sms"); err != nil {
		t.Errorf("new limits did not apply: %v", err)
	}
	if _, err := m3.Admit(context.Background(), "beta", "sms"); !errors.Is(err, ratelimit.ErrUnknownAccount) {
		t.Errorf("a removed account is still served: %v", err)
	}
}
