package ratelimit

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestShareRule checks the rule each of n replicas enforces without Redis:
// valid, and no replica lets more than its share into a window of Period
// (Limit/n, or one when Limit/n < 1; n of them then no more than Limit), nor
// with Limit < n more than its part of the rule's rate; probed every
// thousandth of Period in fake time for ten periods.
func TestShareRule(t *testing.T) {
	tests := []struct {
		rule Rule
		n    int
	}{
		{Rule{Limit: 200, Period: time.Minute, Burst: 1}, 1},
		{Rule{Limit: 200, Period: time.Minute, Burst: 1}, 3},
		{Rule{Limit: 200, Period: time.Minute, Burst: 50}, 4},
		{Rule{Limit: 20, Period: 2 * time.Second, Burst: 1}, 3},
		{Rule{Limit: 20, Period: 2 * time.Second, Burst: 19}, 3},
		{Rule{Limit: 20, Period: 2 * time.Second, Burst: 5}, 10}, // 2 each
		{Rule{Limit: 20, Period: 2 * time.Second, Burst: 1}, 11}, // 1 each
		{Rule{Limit: 20, Period: 2 * time.Second, Burst: 1}, 20},
		{Rule{Limit: 3, Period: time.Second, Burst: 2}, 2},
		{Rule{Limit: 2, Period: time.Second, Burst: 1}, 3},  // less than one each
		{Rule{Limit: 5, Period: time.Second, Burst: 1}, 40}, // far less
		{Rule{}, 5},
	}
	for _, tc := range tests {
		s := shareRule(tc.rule, tc.n)
		name := fmt.Sprintf("%d per %v burst %d over %d", tc.rule.Limit, tc.rule.Period, tc.rule.Burst, tc.n)
		t.Run(name, func(t *testing.T) {
			if err := s.Validate(); err != nil {
				t.Fatalf("share %+v: %v", s, err)
			}
			if tc.rule.Limit == 0 {
				if s != tc.rule {
					t.Errorf("share of an off rule = %+v, want off", s)
				}
				return
			}
			t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
			now := t0
			m, err := NewMemory([]string{"ac1"}, Config{Buckets: map[string]Rule{"sms": s}, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			d := 10 * tc.rule.Period
			step := tc.rule.Period / 1000
			var admits []time.Duration
			for at := time.Duration(0); at <= d; at += step {
				now = t0.Add(at)
				if _, err := m.Admit(t.Context(), "ac1", "sms"); err == nil {
					admits = append(admits, at)
				}
			}
			share := max(tc.rule.Limit/tc.n, 1)
			if got := fullest(admits, tc.rule.Period); got > share {
				t.Errorf("share %+v: %d admits in a window of %v, want at most %d", s, got, tc.rule.Period, share)
			}
			// Over the run, at least half of the replica's part of what
			// the rule's bucket lets through: (Burst + (Limit−Burst)·d/Period)/n.
			b := tc.rule.burst()
			rate := float64(tc.rule.Limit-b) / float64(tc.rule.Period)
			part := (float64(b) + rate*float64(d)) / float64(tc.n)
			if float64(len(admits)) < part/2 {
				t.Errorf("share %+v: %d admits in %v, less than half of 1/%d of the rule's %.0f", s, len(admits), d, tc.n, part*float64(tc.n))
			}
			// With less than one request per window each, no window
			// guarantee is possible; the replicas keep to the rule's rate.
			if most := 1 + rate*float64(d)/float64(tc.n); tc.rule.Limit < tc.n && float64(len(admits)) > most {
				t.Errorf("share %+v: %d admits in %v, more than the rule's rate over %d replicas allows (%.1f)", s, len(admits), d, tc.n, most)
			}
		})
	}
}

// fullest returns the most instants in one closed window of period.
func fullest(instants []time.Duration, period time.Duration) int {
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
