package ratelimit

import (
	"testing"
	"time"
)

func TestClientCap(t *testing.T) {
	minute := Rule{Limit: 200, Period: time.Minute, Burst: 1}
	tests := []struct {
		name               string
		rule               Rule
		share, total, maxN int
		want               Rule
	}{
		{"nothing set", minute, 0, 3, 0, Rule{}},
		{"bucket off", Rule{}, 1, 2, 10, Rule{}},
		{"half by share", minute, 1, 2, 0, CapRule(100, time.Minute)},
		{"share rounds down", minute, 1, 3, 0, CapRule(66, time.Minute)},
		{"tiny share is one", minute, 1, 1000, 0, CapRule(1, time.Minute)},
		{"max_per_period alone", minute, 0, 0, 30, CapRule(30, time.Minute)},
		{"max_per_period lower than share", minute, 1, 2, 30, CapRule(30, time.Minute)},
		{"share lower than max_per_period", minute, 1, 4, 80, CapRule(50, time.Minute)},
		{"whole share does not bind", minute, 2, 2, 0, Rule{}},
		{"max_per_period at the limit does not bind", minute, 0, 0, 200, Rule{}},
		{"max_per_period over the limit does not bind", minute, 0, 0, 500, Rule{}},
		{"period follows the bucket", Rule{Limit: 20, Period: 2 * time.Second, Burst: 1}, 1, 4, 0, CapRule(5, 2*time.Second)},
		{"one request a period", Rule{Limit: 2, Period: time.Second, Burst: 1}, 1, 2, 0, Rule{Limit: 2, Period: time.Second + 1, Burst: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ClientCap(tc.rule, tc.share, tc.total, tc.maxN)
			if got != tc.want {
				t.Fatalf("ClientCap(%+v, share %d/%d, max %d) = %+v, want %+v", tc.rule, tc.share, tc.total, tc.maxN, got, tc.want)
			}
			if err := got.Validate(); err != nil {
				t.Fatalf("cap %+v does not validate: %v", got, err)
			}
		})
	}
}
