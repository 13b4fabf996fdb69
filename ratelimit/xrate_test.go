package ratelimit_test

import (
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/time/rate"

	"github.com/exogate/exogate/ratelimit"
)

// TestTwoXRateLimitersOverAdmit is the reason the account cap is booked
// jointly rather than with one x/time/rate limiter per bucket plus one for
// the account: reserving on both and waiting for the later delay lets the
// requests bunch up past the cap. Buckets a and b of 10/s, an account cap of
// 15/s, 14 requests for a then 14 for b, all at once. The same arrivals
// through Memory stay within every limit.
func TestTwoXRateLimitersOverAdmit(t *testing.T) {
	bucketRule := ratelimit.Rule{Limit: 10, Period: time.Second, Burst: 1}
	capRule := ratelimit.Rule{Limit: 15, Period: time.Second, Burst: 1}
	perSecond := func(r ratelimit.Rule) rate.Limit {
		return rate.Limit(float64(r.Limit-r.Burst) / r.Period.Seconds())
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := rate.NewLimiter(perSecond(bucketRule), 1)
	b := rate.NewLimiter(perSecond(bucketRule), 1)
	account := rate.NewLimiter(perSecond(capRule), 1)

	var naive []time.Duration
	for i := range 28 {
		bucket := a
		if i >= 14 {
			bucket = b
		}
		rb, ra := bucket.ReserveN(t0, 1), account.ReserveN(t0, 1)
		naive = append(naive, max(rb.DelayFrom(t0), ra.DelayFrom(t0)))
	}
	if got := maxInWindow(naive, time.Second); got <= capRule.Limit {
		t.Fatalf("two x/time/rate limiters kept to the cap (%d in a second); the joint booking would not be needed", got)
	}

	synctest.Test(t, func(t *testing.T) {
		m := newMemory(t, ratelimit.Config{
			MaxWait: time.Minute,
			Buckets: map[string]ratelimit.Rule{"a": bucketRule, "b": bucketRule},
			Account: capRule,
		})
		var arrivals []arrival
		for i := range 28 {
			arrivals = append(arrivals, arrival{0, map[bool]string{true: "a", false: "b"}[i < 14]})
		}
		out, _ := run(t, m, time.Minute, arrivals)
		var joint []time.Duration
		for _, o := range out {
			if o.err != nil {
				t.Fatalf("%s: %v", o.bucket, o.err)
			}
			joint = append(joint, o.done)
		}
		if got := maxInWindow(joint, time.Second); got > capRule.Limit {
			t.Errorf("Memory let %d through in one second, cap %d", got, capRule.Limit)
		}
	})
}
