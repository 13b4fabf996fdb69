package ratelimit_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/exogate/exogate/internal/redistest"
	"github.com/exogate/exogate/internal/testutil"
	"github.com/exogate/exogate/ratelimit"
)

// The Redis tests run against a real redis-server (internal/redistest) in
// real time. Instants are measured on this process's monotonic clock, which
// all the replicas of a test share; Redis applies the limits on its own
// clock, at the moment each script runs, which precedes the moment Admit
// returns here by a round trip. The window checks below allow for that: a
// window can only look too full if the round trips differ by a whole token
// interval (over 100ms).

// tenth is a token every 100ms, one at a time.
var tenth = ratelimit.Rule{Limit: 11, Period: time.Second, Burst: 1}

// TestRedisWindowFleetWide runs three replicas, each with its own client,
// sharing one account's bucket, with four times the demand the rule allows
// for two periods, and checks that no window of Period holds more than Limit
// admits across the fleet, and that the fleet lost no token while callers
// were waiting.
//
// The rule has a deep burst on purpose. With Burst 1 every moment a head of
// line is late for its token is lost for good, so how many get through in
// a given time depends on how busy the machine is, not only on the limiter;
// with Burst 10 a token is lost only when nobody takes any for 1.8s, so the
// count below holds on a loaded machine. The window check is, if anything,
// stricter with a deep burst: the refill rate must be Limit − Burst.
func TestRedisWindowFleetWide(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rule := ratelimit.Rule{Limit: 20, Period: 2 * time.Second, Burst: 10}
	cfg := ratelimit.Config{MaxWait: time.Second, Buckets: map[string]ratelimit.Rule{"sms": rule}}
	var logs logSink
	replicas := make([]*ratelimit.Redis, 3)
	for i := range replicas {
		// A generous Timeout: this test is about the window, not outages.
		replicas[i] = newRedis(t, cfg, ratelimit.RedisConfig{Addr: srv.Addr(), Timeout: time.Second, Logger: logs.logger()})
	}

	const d = 2 * 2 * time.Second // two periods
	var (
		mu     sync.Mutex
		admits []time.Duration
		wg     sync.WaitGroup
	)
	t0 := time.Now()
	for _, r := range replicas {
		for range 2 {
			wg.Go(func() {
				// Each caller asks every 150ms, or at once after waiting:
				// six callers ask for 40 a second, eight times the rate.
				tick := time.NewTicker(150 * time.Millisecond)
				defer tick.Stop()
				for time.Since(t0) < d {
					_, err := r.Admit(context.Background(), sid, "sms")
					at := time.Since(t0)
					switch {
					case err == nil:
						mu.Lock()
						admits = append(admits, at)
						mu.Unlock()
					case !isRejection(err):
						t.Errorf("Admit: %v", err)
						return
					}
					<-tick.C
				}
			})
		}
	}
	wg.Wait()
	slices.Sort(admits)

	// The instants are when Admit returned, a little after Redis decided:
	// a window of Period here spans a little more of Redis's time, and can
	// hold more than Limit only if those delays differ by a whole token
	// interval (200ms).
	if got := maxInWindow(admits, rule.Period); got > rule.Limit {
		t.Errorf("%d admits in one window of %v across the fleet, limit %d", got, rule.Period, rule.Limit)
	}
	// With callers always waiting, no token is lost: the first Burst go at
	// once, then one every interval from the first admit to the last. (The
	// last admit may be seen late by as much as one interval; the floor
	// takes another.)
	iv := interval(rule)
	if len(admits) == 0 {
		t.Fatal("no admits")
	}
	span := admits[len(admits)-1] - admits[0]
	if want := rule.Burst + int(span/iv) - 1; len(admits) < want {
		t.Errorf("%d admits from the first to the last, %v later: want at least %d (Burst %d, then one every %v)", len(admits), span, want, rule.Burst, iv)
	}
	t.Logf("%d admits over %v (last at %v); fullest window %d", len(admits), span, admits[len(admits)-1], maxInWindow(admits, rule.Period))
	// The demand lasted d: the admits must not have stopped early.
	if last := admits[len(admits)-1]; last < d-rule.Period {
		t.Errorf("last admit at %v, want one in the last period before %v", last, d)
	}
	if n := logs.count("warn", msgDown); n != 0 {
		t.Errorf("%d switches to the fallback during the run, want none", n)
	}

	// Every key the limiters wrote starts with the prefix.
	keys, err := inspect(t, srv.Addr()).Keys(context.Background(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "exogate:") {
			t.Errorf("key %q lacks the prefix exogate:", k)
		}
	}
	if len(keys) < 2 {
		t.Errorf("keys %v, want the bucket and the heartbeats", keys)
	}
}

// TestRedisFIFO checks that callers of one account×bucket in a replica are
// let through in the order they came, each one token after the one before:
// never sooner than the rule allows. How much later depends on how busy the
// machine is (with Burst 1 every moment the head is late is lost for good),
// so no upper bound on the waits is asserted here.
func TestRedisFIFO(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	r := newRedis(t, ratelimit.Config{MaxWait: 5 * time.Second, Buckets: map[string]ratelimit.Rule{"sms": tenth}}, ratelimit.RedisConfig{Addr: srv.Addr(), Timeout: time.Second})
	// Redis admits the first caller at an instant after t0 by its clock,
	// and each later one at least an interval after the one before; every
	// Admit returns after Redis decided.
	t0 := time.Now()
	if _, err := r.Admit(context.Background(), sid, "sms"); err != nil {
		t.Fatalf("first: %v", err)
	}
	const n = 6
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		order []int
		at    []time.Duration // since t0, in the order of order
		done  atomic.Int32
	)
	for i := range n {
		wg.Go(func() {
			defer done.Add(1)
			if _, err := r.Admit(context.Background(), sid, "sms"); err != nil {
				t.Errorf("caller %d: %v", i, err)
				return
			}
			mu.Lock()
			order = append(order, i)
			at = append(at, time.Since(t0))
			mu.Unlock()
		})
		// Caller i is in line (or through it) before caller i+1 comes.
		testutil.Eventually(t, 5*time.Second, "caller in line", func() bool { return r.InLine(sid, "sms")+int(done.Load()) >= i+1 })
	}
	wg.Wait()
	if len(order) != n || !slices.IsSorted(order) {
		t.Fatalf("callers let through in order %v, want 0..%d", order, n-1)
	}
	// Redis's clock and this process's may run apart by a little over a
	// second (NTP slewing); a millisecond is plenty.
	const slack = time.Millisecond
	iv := interval(tenth)
	for k, a := range at {
		if earliest := time.Duration(k+1)*iv - slack; a < earliest {
			t.Errorf("caller %d admitted %v after the first asked, before its token at %v", order[k], a, earliest+slack)
		}
	}
	t.Logf("admitted at %v after the first asked (tokens every %v)", at, iv)
}

// TestRedisRejections checks the callers turned away: at once when the
// predicted wait is beyond MaxWait or the deadline, with the wait as
// RetryAfter; and a caller cancelled in line.
func TestRedisRejections(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	tests := []struct {
		name     string
		maxWait  time.Duration
		ahead    int           // callers put in line (after the first admit) before the one tested
		deadline time.Duration // of the tested caller's context; 0: none
		cancel   bool          // cancel the tested caller once it is in line
		retry    time.Duration // the RetryAfter wanted; 0: admitted
	}{
		{"no waiting", 0, 0, 0, false, 100 * time.Millisecond},
		{"token within MaxWait", 250 * time.Millisecond, 0, 0, false, 0},
		{"second in line within MaxWait", 250 * time.Millisecond, 1, 0, false, 0},
		{"third in line beyond MaxWait", 250 * time.Millisecond, 2, 0, false, 300 * time.Millisecond},
		{"deadline before the token", time.Second, 0, 50 * time.Millisecond, false, 100 * time.Millisecond},
		{"deadline before its turn in line", time.Second, 2, 250 * time.Millisecond, false, 300 * time.Millisecond},
		{"cancelled in line", time.Second, 1, 0, true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRedis(t, ratelimit.Config{MaxWait: tc.maxWait, Buckets: map[string]ratelimit.Rule{"sms": tenth}},
				ratelimit.RedisConfig{Addr: srv.Addr(), Timeout: time.Second, KeyPrefix: "t:" + tc.name + ":"})
			// Redis gives the first caller its token after t0; the next
			// tokens follow an interval apart, by Redis's clock.
			t0 := time.Now()
			if _, err := r.Admit(context.Background(), sid, "sms"); err != nil {
				t.Fatalf("first: %v", err)
			}
			var wg sync.WaitGroup
			defer wg.Wait()
			for i := range tc.ahead {
				wg.Go(func() { _, _ = r.Admit(context.Background(), sid, "sms") })
				testutil.Eventually(t, time.Second, "caller in line", func() bool { return r.InLine(sid, "sms") == i+1 })
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.deadline > 0 {
				ctx, cancel = context.WithTimeout(ctx, tc.deadline)
				defer cancel()
			}
			if tc.cancel {
				go func() {
					testutil.Eventually(t, time.Second, "caller in line", func() bool { return r.InLine(sid, "sms") == tc.ahead+1 })
					cancel()
				}()
			}
			before := time.Since(t0)
			waited, err := r.Admit(ctx, sid, "sms")
			// How long the test took so far: what the machine's slowness
			// may have taken off the waits the cases name.
			elapsed := time.Since(t0)
			bound := tc.deadline
			if bound == 0 {
				bound = tc.maxWait
			}
			switch {
			case tc.retry != 0 && err == nil && before+bound >= tc.retry:
				// A slow machine took so long to line the others up that the
				// caller's token, tc.retry after the first, now falls within
				// its bound: admitting it is right, within that bound.
				if waited > bound {
					t.Errorf("waited %v, beyond its bound %v", waited, bound)
				}
			case tc.cancel:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("err = %v, want context.Canceled", err)
				}
			case tc.retry == 0:
				if err != nil {
					t.Errorf("waited %v, err %v; want admitted", waited, err)
				}
				// Its token comes an interval after each one ahead: it can
				// only have found one ready if that much time went by.
				if ready := time.Duration(tc.ahead+1) * interval(tenth); waited == 0 && elapsed < ready {
					t.Errorf("admitted without waiting %v after the first, before its token at %v", elapsed, ready)
				}
			default:
				if got := retryAfter(t, err); !retryWithin(got, tc.retry, elapsed) {
					t.Errorf("RetryAfter = %v, want %v less at most the %v since the first", got, tc.retry, elapsed)
				}
				// The limiter reports the time a caller spent in line.
				if waited != 0 {
					t.Errorf("rejected after waiting %v, want at once", waited)
				}
			}
		})
	}
}

// TestRedisAccountCap checks that the cap is shared by an account's buckets
// (and covers a bucket without a rule), and not by other accounts. The rules
// are slow (a token every 5s and 20s) so that no token comes back during the
// test however slow the machine: every step but the first of each account
// meets an empty bucket or cap.
func TestRedisAccountCap(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	bucket := ratelimit.Rule{Limit: 3, Period: 10 * time.Second, Burst: 1} // a token every 5s
	r := newRedis(t, ratelimit.Config{
		Buckets: map[string]ratelimit.Rule{"sms": bucket},
		Account: ratelimit.Rule{Limit: 3, Period: 40 * time.Second, Burst: 1}, // a token every 20s
	}, ratelimit.RedisConfig{Addr: srv.Addr(), Timeout: time.Second})
	steps := []struct {
		account, bucket string
		retry           time.Duration // 0: admitted
	}{
		{sid, "sms", 0},
		{sid, "whatsapp", 20 * time.Second}, // the cap's next token
		{sid, "sms", 5 * time.Second},       // the bucket's next token
		{ac2, "sms", 0},
		{ac2, "whatsapp", 20 * time.Second},
	}
	var t0 time.Time // before the account's first step
	for i, s := range steps {
		if s.retry == 0 {
			t0 = time.Now()
		}
		_, err := r.Admit(context.Background(), s.account, s.bucket)
		if s.retry == 0 {
			if err != nil {
				t.Errorf("step %d (%s %s): %v, want admitted", i, s.account, s.bucket, err)
			}
			continue
		}
		if got, elapsed := retryAfter(t, err), time.Since(t0); !retryWithin(got, s.retry, elapsed) {
			t.Errorf("step %d (%s %s): RetryAfter = %v, want %v less at most the %v since the account's first", i, s.account, s.bucket, got, s.retry, elapsed)
		}
	}
	if n, err := inspect(t, srv.Addr()).Exists(context.Background(), "exogate:cap:"+sid, "exogate:rate:"+sid+":sms").Result(); err != nil || n != 2 {
		t.Errorf("EXISTS cap and bucket keys = %d, %v; want 2", n, err)
	}
}

// TestRedisPausePropagation checks that a pause made on one replica holds
// back the others until its end, and that buckets without a rule of their
// own share one pause.
func TestRedisPausePropagation(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	cfg := ratelimit.Config{Buckets: map[string]ratelimit.Rule{"sms": tenth}}
	rc := ratelimit.RedisConfig{Addr: srv.Addr(), Timeout: time.Second}
	a, c := newRedis(t, cfg, rc), newRedis(t, cfg, rc)
	cfg.MaxWait = 5 * time.Second
	b := newRedis(t, cfg, rc)

	// Long enough that the news reaches B and C before its end, even on a
	// loaded machine (PauseLeft says nothing once a pause is over).
	const pause = 3 * time.Second
	t0 := time.Now()
	if got := a.Pause(sid, "sms", pause); got != pause {
		t.Fatalf("Pause = %v, want %v", got, pause)
	}
	testutil.Eventually(t, pause, "B and C learn of the pause", func() bool {
		return b.PauseLeft(sid, "sms") > 0 && c.PauseLeft(sid, "sms") > 0
	})
	if got, elapsed := retryAfter(t, admitErr(c, sid, "sms")), time.Since(t0); !retryWithin(got, pause, elapsed) {
		t.Errorf("C (no waiting): RetryAfter = %v, want what is left of %v after %v", got, pause, elapsed)
	}
	if err := admitErr(c, ac2, "sms"); err != nil {
		t.Errorf("another account: %v, want admitted", err)
	}
	if _, err := b.Admit(context.Background(), sid, "sms"); err != nil {
		t.Errorf("B (waiting): %v, want admitted after the pause", err)
	}
	if took := time.Since(t0); took < pause-20*time.Millisecond {
		t.Errorf("B admitted %v after the pause started, before its end at %v", took, pause)
	}

	// Buckets without a rule of their own share the account's other pause.
	a.Pause(sid, "whatsapp", time.Minute)
	testutil.Eventually(t, 10*time.Second, "C learns of the pause", func() bool { return c.PauseLeft(sid, "other") > 0 })
	if left := c.PauseLeft(sid, "sms"); left != 0 {
		t.Errorf("sms: PauseLeft = %v, want 0", left)
	}
	if err := admitErr(c, sid, "voice_v1"); !isRejection(err) {
		t.Errorf("voice_v1 during the shared pause: %v, want a rejection", err)
	}
}

// admitErr returns Admit's error.
func admitErr(r *ratelimit.Redis, account, bucket string) error {
	_, err := r.Admit(context.Background(), account, bucket)
	return err
}

// TestRedisPauseBackoff checks the backoff for pauses without a
// Retry-After across the fleet: it doubles with each pause, whichever
// replica makes it, a success during the pause changes nothing, and a
// success after it starts it again at 1s.
func TestRedisPauseBackoff(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	cfg := ratelimit.Config{Buckets: map[string]ratelimit.Rule{"sms": tenth}}
	rc := ratelimit.RedisConfig{Addr: srv.Addr(), Timeout: time.Second}
	a, b := newRedis(t, cfg, rc), newRedis(t, cfg, rc)
	rdb := inspect(t, srv.Addr())
	stepKey := "exogate:pause-step:" + sid + ":sms"
	stepExists := func() bool {
		n, err := rdb.Exists(context.Background(), stepKey).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n == 1
	}

	if d := a.Pause(sid, "sms", 0); d < 500*time.Millisecond || d > time.Second {
		t.Errorf("first pause: %v, want between 0.5s and 1s", d)
	}
	testutil.Eventually(t, time.Second, "B learns of the pause", func() bool { return b.PauseLeft(sid, "sms") > 0 })
	if d := b.Pause(sid, "sms", 0); d < time.Second || d > 2*time.Second {
		t.Errorf("second pause (from B): %v, want between 1s and 2s", d)
	}
	a.Succeeded(sid, "sms") // during the pause: ignored
	testutil.Eventually(t, 3*time.Second, "the pause ends", func() bool {
		return a.PauseLeft(sid, "sms") == 0 && b.PauseLeft(sid, "sms") == 0
	})
	if !stepExists() {
		t.Fatal("the backoff step is gone after a success during the pause")
	}
	b.Succeeded(sid, "sms")
	testutil.Eventually(t, time.Second, "the backoff step is deleted", func() bool { return !stepExists() })
	if d := a.Pause(sid, "sms", 0); d < 500*time.Millisecond || d > time.Second {
		t.Errorf("pause after a success: %v, want between 0.5s and 1s", d)
	}
	// A Retry-After gives the pause asked for, and never shortens one.
	t5 := time.Now()
	if d := b.Pause(sid, "sms", 5*time.Second); d != 5*time.Second {
		t.Errorf("Pause(5s) = %v, want 5s", d)
	}
	if d, elapsed := a.Pause(sid, "sms", time.Second), time.Since(t5); !retryWithin(d, 5*time.Second, elapsed) {
		t.Errorf("Pause(1s) during a 5s pause = %v, want what is left of the 5s after %v", d, elapsed)
	}
}

// TestRedisStartDuringPause checks that a replica started while a pause is
// in force honours it from the start.
func TestRedisStartDuringPause(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	cfg := ratelimit.Config{Buckets: map[string]ratelimit.Rule{"sms": tenth}}
	rc := ratelimit.RedisConfig{Addr: srv.Addr(), Timeout: time.Second}
	a := newRedis(t, cfg, rc)
	paused := time.Now()
	a.Pause(sid, "sms", 2*time.Second)
	a.Pause(sid, "whatsapp", 2*time.Second)

	late := newRedis(t, cfg, rc)
	for _, bucket := range []string{"sms", "other"} {
		asked := time.Now()
		left := late.PauseLeft(sid, bucket)
		if elapsed := time.Since(paused); !retryWithin(left, 2*time.Second, elapsed) {
			t.Errorf("%s: PauseLeft right after Start = %v, want what is left of 2s after %v", bucket, left, elapsed)
		}
		if got, elapsed := retryAfter(t, admitErr(late, sid, bucket)), time.Since(asked); !retryWithin(got, left, elapsed) {
			t.Errorf("%s: RetryAfter = %v, want the pause left, %v, less at most %v", bucket, got, left, elapsed)
		}
	}
}

// TestRedisOutageLocal stops Redis under three replicas: they switch to
// their local share (logging it once each), Admit returns nothing but
// rejections, and no replica lets more than Limit/3 into a window. Redis
// comes back: they switch back (logging it once each) and share the budget
// again.
func TestRedisOutageLocal(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rule := ratelimit.Rule{Limit: 20, Period: 2 * time.Second, Burst: 1}
	cfg := ratelimit.Config{Buckets: map[string]ratelimit.Rule{"sms": rule}}
	logs := make([]*logSink, 3)
	replicas := make([]*ratelimit.Redis, 3)
	for i := range replicas {
		logs[i] = &logSink{}
		replicas[i] = newRedis(t, cfg, ratelimit.RedisConfig{Addr: srv.Addr(), Timeout: 200 * time.Millisecond, Logger: logs[i].logger()})
	}
	testutil.Eventually(t, 5*time.Second, "the replicas see each other", func() bool {
		for _, r := range replicas {
			if r.Replicas() != 3 {
				return false
			}
		}
		return true
	})

	srv.Stop()
	const d = 2 * 2 * time.Second
	admits := make([][]time.Duration, len(replicas))
	var wg sync.WaitGroup
	t0 := time.Now()
	for i, r := range replicas {
		wg.Go(func() {
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for time.Since(t0) < d {
				_, err := r.Admit(context.Background(), sid, "sms")
				switch {
				case err == nil:
					admits[i] = append(admits[i], time.Since(t0))
				case !isRejection(err):
					t.Errorf("replica %d: Admit during the outage: %v", i, err)
					return
				}
				<-tick.C
			}
		})
	}
	wg.Wait()
	share := rule.Limit / len(replicas)
	total := 0
	for i, r := range replicas {
		if got := maxInWindow(admits[i], rule.Period); got > share {
			t.Errorf("replica %d: %d admits in one window of %v without Redis, share %d", i, got, rule.Period, share)
		}
		if len(admits[i]) < share {
			t.Errorf("replica %d: %d admits in %v without Redis, want at least its share %d", i, len(admits[i]), d, share)
		}
		total += len(admits[i])
		if b := r.Backend(); b != "local" {
			t.Errorf("replica %d: Backend() = %q during the outage, want local", i, b)
		}
		if n := logs[i].count("warn", msgDown); n != 1 {
			t.Errorf("replica %d: %d warnings of the switch, want 1", i, n)
		}
	}
	t.Logf("admits without Redis: %d in %v", total, d)

	srv.Restart()
	testutil.Eventually(t, 5*time.Second, "the replicas switch back", func() bool {
		for _, r := range replicas {
			if r.Backend() != "redis" {
				return false
			}
		}
		return true
	})
	for i := range replicas {
		if n := logs[i].count("info", msgUp); n != 1 {
			t.Errorf("replica %d: %d notes of the switch back, want 1", i, n)
		}
		if n := logs[i].count("warn", msgDown); n != 1 {
			t.Errorf("replica %d: %d warnings of the switch after the restart, want still 1", i, n)
		}
	}
	// The restarted Redis is empty: one token (Burst 1) for the whole fleet.
	var (
		mu       sync.Mutex
		admitted int
	)
	for _, r := range replicas {
		wg.Go(func() {
			for _, err := range admitAll(r, 3, sid, "sms") {
				switch {
				case err == nil:
					mu.Lock()
					admitted++
					mu.Unlock()
				case !isRejection(err):
					t.Errorf("after the restart: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if admitted != 1 {
		t.Errorf("after the restart 9 callers on 3 replicas at once: %d admitted, want 1 (the shared burst)", admitted)
	}
	testutil.Eventually(t, 5*time.Second, "the heartbeats resume", func() bool { return replicas[0].Replicas() == 3 })
}

// TestRedisOutagePolicies checks OnFailure allow and deny while Redis is
// down, and that a pause still holds.
func TestRedisOutagePolicies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		policy string
		retry  time.Duration // 0: admitted
	}{
		{ratelimit.OnFailureAllow, 0},
		{ratelimit.OnFailureDeny, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.policy, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			var logs logSink
			r := newRedis(t, ratelimit.Config{Buckets: map[string]ratelimit.Rule{"sms": tenth}},
				ratelimit.RedisConfig{Addr: srv.Addr(), Timeout: 200 * time.Millisecond, OnFailure: tc.policy, Logger: logs.logger()})
			srv.Stop()
			for i := range 30 {
				_, err := r.Admit(context.Background(), sid, "sms")
				if tc.retry == 0 && err != nil {
					t.Fatalf("request %d: %v, want admitted", i, err)
				}
				if tc.retry != 0 && retryAfter(t, err) != tc.retry {
					t.Fatalf("request %d: RetryAfter %v, want %v", i, retryAfter(t, err), tc.retry)
				}
			}
			if b := r.Backend(); b != "local" {
				t.Errorf("Backend() = %q, want local", b)
			}
			if n := logs.count("warn", msgDown); n != 1 {
				t.Errorf("%d warnings of the switch, want 1", n)
			}
			paused := time.Now()
			if d := r.Pause(sid, "sms", 3*time.Second); d != 3*time.Second {
				t.Errorf("Pause without Redis = %v, want 3s", d)
			}
			if got, elapsed := retryAfter(t, admitErr(r, sid, "sms")), time.Since(paused); !retryWithin(got, 3*time.Second, elapsed) {
				t.Errorf("during a pause: RetryAfter = %v, want what is left of 3s after %v", got, elapsed)
			}
		})
	}
}

// TestRedisSlowKey checks that a slow Redis call for one account×bucket
// does not hold up the callers of another bucket or account, and that a
// call stalled past Timeout lets its caller go. The proxy holds the slow
// call until the test lets it go, so what is checked is the order of
// events, not how long they took.
func TestRedisSlowKey(t *testing.T) {
	t.Parallel()
	rule := map[string]ratelimit.Rule{"sms": tenth, "whatsapp": tenth}
	tests := []struct {
		name     string
		timeout  time.Duration
		past     bool // the call is held past Timeout; else released within it
		switches int  // to the fallback, because of the slow call
	}{
		// A Timeout far beyond what the test takes: the slow call ends
		// only when the proxy lets it go.
		{"slow call within Timeout", time.Minute, false, 0},
		{"call stalled past Timeout", 300 * time.Millisecond, true, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			proxy := newStallProxy(t, srv.Addr(), "rate:"+sid+":sms")
			var logs logSink
			r := newRedis(t, ratelimit.Config{Buckets: rule}, ratelimit.RedisConfig{Addr: proxy.Addr(), Timeout: tc.timeout, Logger: logs.logger()})
			// Connect and load the script first, so that the slow call is
			// the only thing that can be slow, whatever the machine.
			testutil.Eventually(t, 10*time.Second, "a first admit through Redis", func() bool {
				_, err := r.Admit(context.Background(), ac2, "whatsapp")
				return err == nil && r.Backend() == "redis"
			})
			switchesBefore := logs.count("warn", msgDown)
			var (
				slowErr  error
				slowTook time.Duration
				done     = make(chan struct{})
			)
			go func() {
				t0 := time.Now()
				_, slowErr = r.Admit(context.Background(), sid, "sms")
				slowTook = time.Since(t0)
				close(done)
			}()
			testutil.Eventually(t, 10*time.Second, "the slow call", func() bool { return proxy.stalled.Load() > 0 })
			if tc.past {
				// The proxy never lets it go: only Timeout can end it.
				<-done
				if proxy.stalled.Load() == 0 {
					t.Fatal("the slow call was not held")
				}
				if slowTook < tc.timeout {
					t.Errorf("slow caller returned after %v, before Timeout %v", slowTook, tc.timeout)
				}
			}
			for _, other := range []struct{ account, bucket string }{{sid, "whatsapp"}, {ac2, "sms"}} {
				if _, err := r.Admit(context.Background(), other.account, other.bucket); err != nil {
					t.Errorf("%s %s while %s %s is slow: %v; want admitted", other.account, other.bucket, sid, "sms", err)
				}
				if !tc.past {
					select {
					case <-done:
						t.Fatalf("%s %s: the slow call ended before the proxy let it go", other.account, other.bucket)
					default:
					}
				}
			}
			if !tc.past {
				proxy.release()
				<-done
				if slowErr != nil {
					t.Errorf("slow caller: %v, want admitted once Redis answered", slowErr)
				}
			} else if slowErr != nil && !isRejection(slowErr) {
				t.Errorf("slow caller: %v", slowErr)
			}
			// (The health check may have switched back already.)
			if n := logs.count("warn", msgDown) - switchesBefore; n != tc.switches {
				t.Errorf("%d switches to the fallback, want %d", n, tc.switches)
			}
		})
	}
}

// TestRedisSucceededCheap checks that Succeeded, with no backoff known, and
// PauseLeft neither allocate nor talk to Redis.
func TestRedisSucceededCheap(t *testing.T) {
	srv := redistest.Start(t)
	r := newRedis(t, ratelimit.Config{Buckets: map[string]ratelimit.Rule{"sms": tenth}}, ratelimit.RedisConfig{Addr: srv.Addr(), Timeout: time.Second})
	rdb := inspect(t, srv.Addr())
	before, err := rdb.Info(context.Background(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		r.Succeeded(sid, "sms")
		r.PauseLeft(sid, "sms")
	})
	if allocs != 0 {
		t.Errorf("Succeeded and PauseLeft allocate %v times per call, want 0", allocs)
	}
	after, err := rdb.Info(context.Background(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	// The INFO calls themselves are the only commands in between (give or
	// take a heartbeat).
	if commands(after)-commands(before) > 3 {
		t.Errorf("Redis processed %d commands during 2000 calls of Succeeded and PauseLeft", commands(after)-commands(before))
	}
}

// commands returns total_commands_processed from INFO stats.
func commands(info string) int {
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "total_commands_processed:"); ok {
			n := 0
			for _, c := range v {
				n = n*10 + int(c-'0')
			}
			return n
		}
	}
	return -1
}

// TestRedisUnknownAccount covers the account the limiter was not built
// with.
func TestRedisUnknownAccount(t *testing.T) {
	r, err := ratelimit.NewRedis([]string{sid}, ratelimit.Config{}, ratelimit.RedisConfig{Addr: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Admit(context.Background(), "ac9", "sms"); !errors.Is(err, ratelimit.ErrUnknownAccount) {
		t.Errorf("Admit: err = %v, want ErrUnknownAccount", err)
	}
	if d := r.Pause("ac9", "sms", time.Second); d != 0 {
		t.Errorf("Pause = %v, want 0", d)
	}
	if d := r.PauseLeft("ac9", "sms"); d != 0 {
		t.Errorf("PauseLeft = %v, want 0", d)
	}
	r.Succeeded("ac9", "sms")
	// Without a rule there is nothing to ask Redis (which is not there).
	if _, err := r.Admit(context.Background(), sid, "sms"); err != nil {
		t.Errorf("Admit without a rule: %v", err)
	}
	if b := r.Backend(); b != "redis" {
		t.Errorf("Backend() = %q, want redis (never asked)", b)
	}
}

func TestNewRedisErrors(t *testing.T) {
	good := ratelimit.RedisConfig{Addr: "127.0.0.1:6379"}
	tests := []struct {
		name     string
		accounts []string
		cfg      ratelimit.Config
		rc       ratelimit.RedisConfig
		want     string
	}{
		{"no addr", []string{sid}, ratelimit.Config{}, ratelimit.RedisConfig{}, "ratelimit: redis: addr is required"},
		{"bad policy", []string{sid}, ratelimit.Config{}, ratelimit.RedisConfig{Addr: good.Addr, OnFailure: "open"}, `ratelimit: redis: on_failure "open" must be local, allow or deny`},
		{"negative timeout", []string{sid}, ratelimit.Config{}, ratelimit.RedisConfig{Addr: good.Addr, Timeout: -time.Second}, "ratelimit: redis: timeout -1s must not be negative"},
		{"negative replicas", []string{sid}, ratelimit.Config{}, ratelimit.RedisConfig{Addr: good.Addr, Replicas: -1}, "ratelimit: redis: replicas -1 must not be negative"},
		{"SID with a colon", []string{"ac:1"}, ratelimit.Config{}, good, `ratelimit: account SID "ac:1" has characters other than a-z, 0-9, _ and -`},
		{"upper-case SID", []string{"AC1"}, ratelimit.Config{}, good, `ratelimit: account SID "AC1" is not lower-case`},
		{"bad rule", []string{sid}, ratelimit.Config{Buckets: map[string]ratelimit.Rule{"sms": {Limit: 5, Period: time.Second, Burst: 5}}}, good, `ratelimit: bucket "sms": burst 5 must be less than limit 5`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ratelimit.NewRedis(tc.accounts, tc.cfg, tc.rc)
			if err == nil {
				r.Close()
			}
			if err == nil || err.Error() != tc.want {
				t.Fatalf("NewRedis() error = %v, want %q", err, tc.want)
			}
		})
	}
}
