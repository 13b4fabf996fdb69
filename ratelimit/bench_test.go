package ratelimit_test

import (
	"context"
	"testing"
	"time"

	"github.com/exogate/exogate/ratelimit"
)

// BenchmarkAdmit measures the path every request takes: admitted without
// waiting. "limited" uses a rule loose enough (5·10⁸ a second, a burst of a
// million) that the benchmark never runs out of tokens, so it measures the
// bookkeeping, not waiting.
func BenchmarkAdmit(b *testing.B) {
	loose := ratelimit.Rule{Limit: 1_000_000_000, Period: time.Second, Burst: 1_000_000}
	cases := []struct {
		name string
		cfg  ratelimit.Config
	}{
		{"unlimited", ratelimit.Config{}},
		{"limited", ratelimit.Config{Buckets: map[string]ratelimit.Rule{"sms": loose}}},
		{"limited with account cap", ratelimit.Config{Buckets: map[string]ratelimit.Rule{"sms": loose}, Account: loose}},
	}
	for _, tc := range cases {
		m := newMemory(b, tc.cfg)
		ctx := context.Background()
		b.Run(tc.name+"/serial", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Admit(ctx, sid, "sms"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := m.Admit(ctx, sid, "sms"); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// TestAdmitDoesNotAllocate pins the benchmark's claim: admitting without
// waiting allocates nothing.
func TestAdmitDoesNotAllocate(t *testing.T) {
	loose := ratelimit.Rule{Limit: 1_000_000_000, Period: time.Second, Burst: 1_000_000}
	m := newMemory(t, ratelimit.Config{Buckets: map[string]ratelimit.Rule{"sms": loose}, Account: loose})
	ctx := context.Background()
	for _, bucket := range []string{"sms", "whatsapp"} {
		allocs := testing.AllocsPerRun(1000, func() {
			if _, err := m.Admit(ctx, sid, bucket); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("Admit(%q) allocates %v times per call, want 0", bucket, allocs)
		}
	}
}
