package ratelimit_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/exogate/exogate/ratelimit"
)

func TestRuleValidate(t *testing.T) {
	tests := []struct {
		name string
		rule ratelimit.Rule
		want string // "" for valid
	}{
		{"zero rule is off", ratelimit.Rule{}, ""},
		{"off ignores the rest", ratelimit.Rule{Limit: 0, Period: -time.Second, Burst: -3}, ""},
		{"exotel default", ratelimit.Rule{Limit: 200, Period: time.Minute, Burst: 1}, ""},
		{"burst 0 means 1", ratelimit.Rule{Limit: 2, Period: time.Second}, ""},
		{"largest burst", ratelimit.Rule{Limit: 5, Period: time.Second, Burst: 4}, ""},
		{"negative limit", ratelimit.Rule{Limit: -1, Period: time.Second}, "limit -1 must not be negative"},
		{"zero period", ratelimit.Rule{Limit: 5}, "period 0s must be positive when limit is set"},
		{"negative period", ratelimit.Rule{Limit: 5, Period: -time.Second}, "period -1s must be positive when limit is set"},
		{"negative burst", ratelimit.Rule{Limit: 5, Period: time.Second, Burst: -1}, "burst -1 must not be negative"},
		{"burst equals limit", ratelimit.Rule{Limit: 5, Period: time.Second, Burst: 5}, "burst 5 must be less than limit 5"},
		{"burst above limit", ratelimit.Rule{Limit: 5, Period: time.Second, Burst: 9}, "burst 9 must be less than limit 5"},
		{"limit 1 leaves no refill", ratelimit.Rule{Limit: 1, Period: time.Second}, "burst 0 (meaning 1) must be less than limit 1"},
		{"limit 1 burst 1", ratelimit.Rule{Limit: 1, Period: time.Second, Burst: 1}, "burst 1 must be less than limit 1"},
		{"absurd period", ratelimit.Rule{Limit: 2, Period: 200 * 365 * 24 * time.Hour, Burst: 1}, "period 1752000h0m0s is too long for limit 2 and burst 1"},
		{"absurd burst", ratelimit.Rule{Limit: 1 << 40, Period: 100 * 24 * time.Hour, Burst: 1<<40 - 1}, "period 2400h0m0s is too long for limit 1099511627776 and burst 1099511627775"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.rule.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || err.Error() != tc.want):
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestLimitedError(t *testing.T) {
	var err error = &ratelimit.LimitedError{Delay: 1500 * time.Millisecond}
	if !errors.Is(err, ratelimit.ErrLimited) {
		t.Errorf("errors.Is(%v, ErrLimited) = false", err)
	}
	if got, want := err.Error(), "ratelimit: rate limit exceeded: retry after 1.5s"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	var ra interface{ RetryAfter() time.Duration }
	if !errors.As(err, &ra) || ra.RetryAfter() != 1500*time.Millisecond {
		t.Errorf("RetryAfter() via errors.As = %v, want 1.5s", ra)
	}
}

func TestCapRule(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want ratelimit.Rule
	}{
		{0, ratelimit.Rule{}},
		{-3, ratelimit.Rule{}},
		{1, ratelimit.Rule{Limit: 2, Period: time.Minute + 1, Burst: 1}},
		{2, ratelimit.Rule{Limit: 2, Period: time.Minute, Burst: 1}},
		{50, ratelimit.Rule{Limit: 50, Period: time.Minute, Burst: 49}},
	} {
		got := ratelimit.CapRule(tc.n, time.Minute)
		if got != tc.want {
			t.Errorf("CapRule(%d) = %+v, want %+v", tc.n, got, tc.want)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("CapRule(%d) does not validate: %v", tc.n, err)
		}
	}
	// One per window really means one: two admits a period apart never
	// share a closed window.
	clock, t0 := newFakeClock()
	m, err := ratelimit.NewMemory([]string{sid}, ratelimit.Config{Buckets: map[string]ratelimit.Rule{"sms": ratelimit.CapRule(1, time.Second)}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	var admits []time.Duration
	for d := time.Duration(0); d <= 5*time.Second; d += 10 * time.Millisecond {
		clock.t = t0.Add(d)
		if _, err := m.Admit(context.Background(), sid, "sms"); err == nil {
			admits = append(admits, d)
		}
	}
	if got := maxInWindow(admits, time.Second); got != 1 {
		t.Errorf("%d admits in one window, want 1", got)
	}
}
