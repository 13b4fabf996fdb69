package webhooks

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/exogate/exogate/internal/redistest"
)

func TestRedisClaimer(t *testing.T) {
	srv := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	cl := NewRedisClaimer(c, "exogate:hooks:")
	ctx := context.Background()
	steps := []struct {
		replica string
		want    bool
	}{{"r1", true}, {"r1", true}, {"r2", false}}
	for i, s := range steps {
		got, err := cl.Claim(ctx, "calls|call|x|completed|terminal", s.replica, time.Hour)
		if err != nil || got != s.want {
			t.Fatalf("step %d: Claim by %s = %v, %v; want %v", i, s.replica, got, err, s.want)
		}
	}
	v, err := c.Get(ctx, "exogate:hooks:calls|call|x|completed|terminal").Result()
	if err != nil || v != "r1" {
		t.Fatalf("value %q, %v", v, err)
	}
	if ttl := c.PTTL(ctx, "exogate:hooks:calls|call|x|completed|terminal").Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("ttl %v", ttl)
	}
	srv.Stop()
	if _, err := cl.Claim(ctx, "k", "r1", time.Hour); err == nil {
		t.Fatal("no error with Redis down")
	}
}

// TestClaimAcrossReplicas: a callback Exotel sent to two replicas sharing
// Redis reaches the target once; with Redis down each delivers
// (at least once rather than at most once).
func TestClaimAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	a := newEnv(t, func(_ *Config, d *Deps) { d.Claimer, d.Replica = NewRedisClaimer(c, "h:"), "a" })
	b := newEnv(t, func(cfg *Config, d *Deps) {
		cfg.Routes[0].Target = a.target.srv.URL
		d.Claimer, d.Replica = NewRedisClaimer(c, "h:"), "b"
	})
	a.post("calls", formType, callForm)
	b.post("calls", formType, callForm)
	a.deliverDue("calls")
	b.deliverDue("calls")
	if n := a.target.hits.Load(); n != 1 {
		t.Fatalf("target hit %d times, want once", n)
	}
	a.only("calls", StateDelivered)
	if m := b.only("calls", StateDelivered); m.LastError != "claimed by another replica" {
		t.Fatalf("replica b: %+v", m)
	}
	if c := b.svc.Counters(); c.Attempts[resClaimed] != 1 {
		t.Fatalf("counters %+v", c)
	}
	srv.Stop()
	a.post("sms", formType, smsForm)
	b.post("sms", formType, smsForm)
	a.deliverDue("sms")
	b.deliverDue("sms")
	a.only("sms", StateDelivered)
	b.only("sms", StateDelivered)
}
