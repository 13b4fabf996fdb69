package ratelimit_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/exogate/exogate/internal/redistest"
	"github.com/exogate/exogate/ratelimit"
)

// BenchmarkRedisAdmit measures the path every request takes, admitted
// without waiting, through Redis (a real redis-server on loopback) and,
// for comparison, through Memory with the same rules. The rule is loose
// enough never to run out of tokens. A replica's callers of one
// account×bucket take turns talking to Redis, so "parallel" on one account
// measures that line; "parallel, 64 accounts" spreads the callers over 64
// accounts, whose lines run side by side.
func BenchmarkRedisAdmit(b *testing.B) {
	srv := redistest.Start(b)
	loose := ratelimit.Rule{Limit: 1_000_000_000, Period: time.Second, Burst: 1_000_000}
	accounts := make([]string, 64)
	for i := range accounts {
		accounts[i] = fmt.Sprintf("ac%02d", i)
	}
	configs := []struct {
		name string
		cfg  ratelimit.Config
	}{
		{"limited", ratelimit.Config{Buckets: map[string]ratelimit.Rule{"sms": loose}}},
		{"limited with account cap", ratelimit.Config{Buckets: map[string]ratelimit.Rule{"sms": loose}, Account: loose}},
	}
	for i, c := range configs {
		mem, err := ratelimit.NewMemory(accounts, c.cfg)
		if err != nil {
			b.Fatal(err)
		}
		red, err := ratelimit.NewRedis(accounts, c.cfg, ratelimit.RedisConfig{Addr: srv.Addr(), Timeout: time.Second, KeyPrefix: fmt.Sprintf("bench%d:", i)})
		if err != nil {
			b.Fatal(err)
		}
		red.Start(context.Background())
		b.Cleanup(func() { red.Close() })
		for _, lim := range []struct {
			name  string
			admit func(ctx context.Context, account, bucket string) (time.Duration, error)
		}{
			{"memory", mem.Admit},
			{"redis", red.Admit},
		} {
			ctx := context.Background()
			b.Run(lim.name+"/"+c.name+"/serial", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := lim.admit(ctx, accounts[0], "sms"); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(lim.name+"/"+c.name+"/parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := lim.admit(ctx, accounts[0], "sms"); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
			b.Run(lim.name+"/"+c.name+"/parallel, 64 accounts", func(b *testing.B) {
				b.ReportAllocs()
				var next atomic.Int32
				b.RunParallel(func(pb *testing.PB) {
					account := accounts[int(next.Add(1))%len(accounts)]
					for pb.Next() {
						if _, err := lim.admit(ctx, account, "sms"); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
		if got := red.Backend(); got != "redis" {
			b.Errorf("Backend() = %q after the benchmark: it fell back", got)
		}
	}
}

// BenchmarkRedisLineBurst1 measures how much of a Burst 1 rule a replica's
// waiting line uses: callers always wait, and every moment the head is late
// for a token is lost for good (see the package documentation). It reports
// "used" as the share of the tokens the rule gave out in the run, 1.0 for a
// head never late. This depends on how busy the machine is, which is why it
// is measured here and not asserted by a test.
func BenchmarkRedisLineBurst1(b *testing.B) {
	srv := redistest.Start(b)
	rule := ratelimit.Rule{Limit: 21, Period: time.Second, Burst: 1} // a token every 50ms
	r, err := ratelimit.NewRedis([]string{sid}, ratelimit.Config{MaxWait: time.Minute, Buckets: map[string]ratelimit.Rule{"sms": rule}},
		ratelimit.RedisConfig{Addr: srv.Addr(), Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	r.Start(context.Background())
	b.Cleanup(func() { r.Close() })
	if _, err := r.Admit(context.Background(), sid, "sms"); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	var n atomic.Int64
	b.SetParallelism(4) // callers always waiting in line
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := r.Admit(context.Background(), sid, "sms"); err != nil {
				b.Error(err)
				return
			}
			n.Add(1)
		}
	})
	// The first admit took the burst; each later one took one interval.
	if took := time.Since(start); took > 0 {
		b.ReportMetric(float64(time.Duration(n.Load())*interval(rule))/float64(took), "used")
	}
}
