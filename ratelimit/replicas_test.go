package ratelimit_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/exogate/exogate/internal/redistest"
	"github.com/exogate/exogate/internal/testutil"
	"github.com/exogate/exogate/ratelimit"
)

// TestListReplicas checks that the replicas' heartbeats publish their admin
// URLs: both live replicas are listed with theirs, sorted by ID; a closed
// one is gone at once, a silent one once its last heartbeat is older than
// the heartbeats' time to live; replicas under another key prefix are not
// listed.
func TestListReplicas(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	rc := ratelimit.RedisConfig{Addr: srv.Addr(), Timeout: time.Second}
	mk := func(id, url, prefix string) *ratelimit.Redis {
		c := rc
		c.ID, c.AdminURL, c.KeyPrefix = id, url, prefix
		return newRedis(t, ratelimit.Config{}, c)
	}
	mk("b", "http://10.0.0.2:9901", "")
	a := mk("a", "http://10.0.0.1:9901", "")
	mk("c", "", "")
	mk("other", "http://10.9.9.9:9901", "elsewhere:")

	got, err := ratelimit.ListReplicas(ctx, rc)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "http://10.0.0.1:9901", "b": "http://10.0.0.2:9901", "c": ""}
	if len(got) != 3 {
		t.Fatalf("ListReplicas = %+v, want a, b, c", got)
	}
	for i, r := range got {
		if r.ID != []string{"a", "b", "c"}[i] || r.AdminURL != want[r.ID] || r.SeenAt.IsZero() {
			t.Errorf("replica %d = %+v", i, r)
		}
	}

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	ids := listIDs(t, rc)
	if ids != "b c" {
		t.Errorf("after closing a: %q, want \"b c\"", ids)
	}
	c := inspect(t, srv.Addr())
	if c.HExists(ctx, "exogate:replica-admin", "a").Val() {
		t.Error("a's admin URL kept after Close")
	}

	// A replica that died without Close: its last heartbeat, 11s ago, is
	// past the time to live. It is not listed, and the others' heartbeats
	// forget its admin URL.
	now, err := c.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	c.ZAdd(ctx, "exogate:replicas", redisZ(now.Add(-11*time.Second).UnixMilli(), "dead"))
	c.HSet(ctx, "exogate:replica-admin", "dead", "http://10.0.0.9:9901")
	if ids := listIDs(t, rc); ids != "b c" {
		t.Errorf("with a dead replica: %q, want \"b c\"", ids)
	}
	testutil.Eventually(t, 10*time.Second, "the heartbeats forget the dead replica", func() bool {
		return !c.HExists(ctx, "exogate:replica-admin", "dead").Val() && c.ZScore(ctx, "exogate:replicas", "dead").Err() != nil
	})

	other := rc
	other.KeyPrefix = "elsewhere:"
	got, err = ratelimit.ListReplicas(ctx, other)
	if err != nil || len(got) != 1 || got[0].ID != "other" || got[0].AdminURL != "http://10.9.9.9:9901" {
		t.Errorf("under elsewhere: %+v, %v", got, err)
	}
}

// listIDs returns the listed replicas' IDs, space-separated.
func listIDs(t *testing.T, rc ratelimit.RedisConfig) string {
	t.Helper()
	got, err := ratelimit.ListReplicas(context.Background(), rc)
	if err != nil {
		t.Fatal(err)
	}
	s := ""
	for i, r := range got {
		if i > 0 {
			s += " "
		}
		s += r.ID
	}
	return s
}

func redisZ(score int64, member string) redis.Z {
	return redis.Z{Score: float64(score), Member: member}
}
