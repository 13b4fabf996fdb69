package ratelimit_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/exogate/exogate/internal/redistest"
	"github.com/exogate/exogate/internal/testutil"
	"github.com/exogate/exogate/ratelimit"
)

// TestRedisPauseFromRedisCapped publishes pauses on the fleet's channel and
// sets a pause key directly, as anyone who can write to Redis could: a pause
// longer than Exotel's own Retry-After may ask for (ratelimit.MaxPause) is
// cut to it, whether it comes as a message or is read from its key when a
// replica subscribes. A message that does not parse is ignored and counted.
func TestRedisPauseFromRedisCapped(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	cfg := ratelimit.Config{Buckets: map[string]ratelimit.Rule{"sms": tenth, "voice_v1": tenth}}
	rc := ratelimit.RedisConfig{Addr: srv.Addr(), Timeout: time.Second}
	r := newRedis(t, cfg, rc)
	rdb := inspect(t, srv.Addr())
	ctx := context.Background()
	publish := func(payload string) {
		t.Helper()
		if err := rdb.Publish(ctx, "exogate:pauses", payload).Err(); err != nil {
			t.Fatal(err)
		}
	}
	capped := func(what string, left time.Duration) {
		t.Helper()
		if left <= 0 || left > ratelimit.MaxPause {
			t.Errorf("%s: PauseLeft = %v, want a pause of at most %v", what, left, ratelimit.MaxPause)
		}
	}

	// 48 hours, and the largest number a message can hold (which overflows
	// a Duration in milliseconds).
	publish(sid + " sms " + strconv.FormatInt((48*time.Hour).Milliseconds(), 10))
	testutil.Eventually(t, 5*time.Second, "the 48h pause arrives", func() bool { return r.PauseLeft(sid, "sms") > 0 })
	capped("48h message", r.PauseLeft(sid, "sms"))
	publish(ac2 + " sms 9223372036854775807")
	testutil.Eventually(t, 5*time.Second, "the huge pause arrives", func() bool { return r.PauseLeft(ac2, "sms") > 0 })
	capped("max int64 message", r.PauseLeft(ac2, "sms"))

	// Malformed messages: ignored (no pause anywhere) and counted. A valid
	// message published after them arrives after them.
	bad := []string{"", "garbage", sid + " voice_v1", sid + " voice_v1 -5", sid + " voice_v1 0", sid + " voice_v1 1e9", sid + " voice_v1 99999999999999999999", " voice_v1 1000", sid + " no such bucket 3600000", sid + " Voice_V1 3600000"}
	for _, p := range bad {
		publish(p)
	}
	publish(sid + " * 60000") // the catch-all lane, as replicas name it
	testutil.Eventually(t, 5*time.Second, "the message after the malformed ones arrives", func() bool { return r.PauseLeft(sid, "other") > 0 })
	if left := r.PauseLeft(sid, "voice_v1"); left != 0 {
		t.Errorf("a malformed message paused voice_v1 for %v", left)
	}
	if got := r.MalformedMessages(); got != int64(len(bad)) {
		t.Errorf("MalformedMessages = %d, want %d", got, len(bad))
	}

	// A pause key set directly with a 48h time to live: a replica that
	// subscribes reads it, capped.
	if err := rdb.Set(ctx, "exogate:pause:"+sid+":voice_v1", "0", 48*time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	late := newRedis(t, cfg, rc)
	capped("48h key read at Start", late.PauseLeft(sid, "voice_v1"))
	// And the replica's own Pause, which finds that key in force, reports
	// and applies no more than the cap.
	if d := late.Pause(sid, "voice_v1", time.Second); d <= 0 || d > ratelimit.MaxPause {
		t.Errorf("Pause during a 48h key = %v, want at most %v", d, ratelimit.MaxPause)
	}
	capped("after Pause", late.PauseLeft(sid, "voice_v1"))
}

// TestMemoryPauseCapped checks that the in-memory limiter, which is also the
// Redis limiter's fallback, cuts a pause to MaxPause.
func TestMemoryPauseCapped(t *testing.T) {
	m, err := ratelimit.NewMemory([]string{sid}, ratelimit.Config{Buckets: map[string]ratelimit.Rule{"sms": tenth}})
	if err != nil {
		t.Fatal(err)
	}
	if d := m.Pause(sid, "sms", 48*time.Hour); d != ratelimit.MaxPause {
		t.Errorf("Pause(48h) = %v, want %v", d, ratelimit.MaxPause)
	}
	if left := m.PauseLeft(sid, "sms"); left <= 0 || left > ratelimit.MaxPause {
		t.Errorf("PauseLeft = %v, want at most %v", left, ratelimit.MaxPause)
	}
}
