package idempotency

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/exogate/exogate/internal/redistest"
	"github.com/exogate/exogate/internal/testutil"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// backends runs f against each backend: Memory, and Redis on a real
// redis-server.
func backends(t *testing.T, f func(t *testing.T, b Backend, clock *fakeClock)) {
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		clock := newFakeClock()
		f(t, NewMemory(0, clock.now), clock)
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		srv := redistest.Start(t)
		client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		t.Cleanup(func() { client.Close() })
		f(t, NewRedis(client, "test:idem:"), newFakeClock())
	})
}

var (
	ctx   = context.Background()
	scope = Scope{Client: "billing", Account: "acme", Method: "POST", Path: "/v1/Accounts/acme/Calls/connect"}
	fpA   = FingerprintOf([]byte("From=1&To=2"), "application/x-www-form-urlencoded")
	fpB   = FingerprintOf([]byte("From=1&To=3"), "application/x-www-form-urlencoded")
)

func begin(t *testing.T, k *Keys, s Scope, key string, fp Fingerprint) (State, *Claim, *Answer) {
	t.Helper()
	st, c, a, err := k.Begin(ctx, s, key, fp)
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	return st, c, a
}

func TestKeysLifecycle(t *testing.T) {
	backends(t, func(t *testing.T, b Backend, clock *fakeClock) {
		k := New(b, Options{Now: clock.now})
		st, claim, _ := begin(t, k, scope, "key-1", fpA)
		if st != Reserved || claim == nil {
			t.Fatalf("first Begin: %v, want Reserved", st)
		}
		if st, _, _ := begin(t, k, scope, "key-1", fpA); st != InFlight {
			t.Errorf("repeat while in flight: %v, want InFlight", st)
		}
		if st, _, _ := begin(t, k, scope, "key-1", fpB); st != Mismatch {
			t.Errorf("another body while in flight: %v, want Mismatch", st)
		}
		want := Answer{Status: 200, ContentType: "application/json", Body: []byte(`{"Call":{"Sid":"c1"}}`)}
		if err := claim.Finish(ctx, want); err != nil {
			t.Fatal(err)
		}
		st, _, got := begin(t, k, scope, "key-1", fpA)
		if st != Replay || got == nil || got.Status != 200 || got.ContentType != want.ContentType || string(got.Body) != string(want.Body) {
			t.Fatalf("repeat after Finish: %v %+v, want Replay of %+v", st, got, want)
		}
		if st, _, _ := begin(t, k, scope, "key-1", fpB); st != Mismatch {
			t.Errorf("another body after Finish: %v, want Mismatch", st)
		}
		// Other scopes never see the key.
		for _, s := range []Scope{
			{Client: "support", Account: scope.Account, Method: scope.Method, Path: scope.Path},
			{Client: scope.Client, Account: "other", Method: scope.Method, Path: scope.Path},
			{Client: scope.Client, Account: scope.Account, Method: "PUT", Path: scope.Path},
			{Client: scope.Client, Account: scope.Account, Method: scope.Method, Path: "/v1/Accounts/acme/Sms/send"},
		} {
			if st, _, _ := begin(t, k, s, "key-1", fpA); st != Reserved {
				t.Errorf("scope %+v: %v, want Reserved", s, st)
			}
		}
		n := k.Counts()
		if n["reserved"] != 5 || n["replayed"] != 1 || n["conflict"] != 1 || n["mismatch"] != 2 {
			t.Errorf("counts %v", n)
		}
	})
}

func TestKeysRelease(t *testing.T) {
	backends(t, func(t *testing.T, b Backend, clock *fakeClock) {
		k := New(b, Options{Now: clock.now})
		_, claim, _ := begin(t, k, scope, "key-r", fpA)
		if err := claim.Release(ctx); err != nil {
			t.Fatal(err)
		}
		// Freed: the next request with the key, whatever its body, is a
		// first request.
		st, again, _ := begin(t, k, scope, "key-r", fpB)
		if st != Reserved {
			t.Fatalf("after Release: %v, want Reserved", st)
		}
		// The first claim can no longer touch the key.
		if err := claim.Finish(ctx, Answer{Status: 200}); err != nil {
			t.Fatal(err)
		}
		if st, _, _ := begin(t, k, scope, "key-r", fpB); st != InFlight {
			t.Errorf("a stale claim's Finish changed the new reservation: %v", st)
		}
		if err := again.Finish(ctx, Answer{Status: 201}); err != nil {
			t.Fatal(err)
		}
		if _, _, a := begin(t, k, scope, "key-r", fpB); a == nil || a.Status != 201 {
			t.Errorf("the new claim's answer: %+v", a)
		}
	})
}

// A reservation whose holder died (no Finish, no Release) becomes an
// unknown outcome once its lease ends, never a free key.
func TestKeysLeaseEndsInUnknown(t *testing.T) {
	backends(t, func(t *testing.T, b Backend, clock *fakeClock) {
		k := New(b, Options{Now: clock.now, Lease: 40 * time.Second})
		begin(t, k, scope, "key-l", fpA)
		clock.advance(39 * time.Second)
		if st, _, _ := begin(t, k, scope, "key-l", fpA); st != InFlight {
			t.Fatalf("within the lease: %v, want InFlight", st)
		}
		clock.advance(2 * time.Second)
		st, _, a := begin(t, k, scope, "key-l", fpA)
		if st != Replay || a == nil || !a.Unknown {
			t.Fatalf("after the lease: %v %+v, want Replay of an unknown outcome", st, a)
		}
		if st, _, _ := begin(t, k, scope, "key-l", fpB); st != Mismatch {
			t.Errorf("another body after the lease: %v, want Mismatch", st)
		}
		if n := k.Counts()["outcome_unknown"]; n != 1 {
			t.Errorf("outcome_unknown counted %d times, want 1", n)
		}
	})
}

// Ten requests with one key at once: exactly one is reserved.
func TestKeysConcurrentBegin(t *testing.T) {
	backends(t, func(t *testing.T, b Backend, clock *fakeClock) {
		k := New(b, Options{Now: clock.now})
		var reserved, inFlight atomic.Int32
		var wg sync.WaitGroup
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, _, _, err := k.Begin(ctx, scope, "key-c", fpA)
				switch {
				case err != nil:
					t.Error(err)
				case st == Reserved:
					reserved.Add(1)
				case st == InFlight:
					inFlight.Add(1)
				}
			}()
		}
		wg.Wait()
		if reserved.Load() != 1 || inFlight.Load() != 9 {
			t.Errorf("%d reserved and %d in flight, want 1 and 9", reserved.Load(), inFlight.Load())
		}
	})
}

func TestMemoryExpiry(t *testing.T) {
	clock := newFakeClock()
	m := NewMemory(0, clock.now)
	k := New(m, Options{Now: clock.now, TTL: time.Hour})
	_, claim, _ := begin(t, k, scope, "key-e", fpA)
	if err := claim.Finish(ctx, Answer{Status: 200}); err != nil {
		t.Fatal(err)
	}
	clock.advance(59 * time.Minute)
	if st, _, _ := begin(t, k, scope, "key-e", fpA); st != Replay {
		t.Fatalf("before the TTL: %v, want Replay", st)
	}
	clock.advance(2 * time.Minute)
	if st, _, _ := begin(t, k, scope, "key-e", fpB); st != Reserved {
		t.Fatalf("after the TTL: %v, want Reserved (the key forgotten)", st)
	}
	if s := m.Stats(); s.Keys != 1 {
		t.Errorf("%d keys kept, want only the new one", s.Keys)
	}
}

// Redis keeps a key for the TTL by its own clock.
func TestRedisTTL(t *testing.T) {
	srv := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer client.Close()
	k := New(NewRedis(client, "test:idem:"), Options{TTL: 3 * time.Hour})
	_, claim, _ := begin(t, k, scope, "key-t", fpA)
	if err := claim.Finish(ctx, Answer{Status: 200}); err != nil {
		t.Fatal(err)
	}
	keys, err := client.Keys(ctx, "test:idem:*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys %v, %v", keys, err)
	}
	if strings.Contains(keys[0], "key-t") {
		t.Errorf("the caller's key is in the Redis key %q", keys[0])
	}
	ttl, err := client.PTTL(ctx, keys[0]).Result()
	if err != nil || ttl <= 2*time.Hour || ttl > 3*time.Hour {
		t.Errorf("PTTL %v (%v), want about 3h", ttl, err)
	}
	srv.Stop()
	if _, _, _, err := k.Begin(ctx, scope, "key-t", fpA); !errors.Is(err, ErrBackend) {
		t.Errorf("Begin with Redis down: %v, want ErrBackend", err)
	}
	if n := k.Counts()["backend_error"]; n != 1 {
		t.Errorf("backend_error counted %d times, want 1", n)
	}
}

// Past the cap the oldest outcomes go first; a reservation stays.
func TestMemoryCap(t *testing.T) {
	clock := newFakeClock()
	m := NewMemory(4096, clock.now)
	k := New(m, Options{Now: clock.now})
	begin(t, k, scope, "in-flight", fpA)
	body := []byte(strings.Repeat("x", 1000))
	for i := range 6 {
		_, c, _ := begin(t, k, scope, "done-"+string(rune('a'+i)), fpA)
		if err := c.Finish(ctx, Answer{Status: 200, Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	s := m.Stats()
	if s.Bytes > s.MaxBytes || s.Evictions == 0 {
		t.Fatalf("stats %+v: want under the cap after evictions", s)
	}
	if st, _, _ := begin(t, k, scope, "done-a", fpB); st != Reserved {
		t.Errorf("the oldest outcome: %v, want forgotten", st)
	}
	if st, _, _ := begin(t, k, scope, "done-f", fpA); st != Replay {
		t.Errorf("the newest outcome: %v, want kept", st)
	}
	if st, _, _ := begin(t, k, scope, "in-flight", fpA); st != InFlight {
		t.Errorf("the reservation: %v, want kept while in flight", st)
	}
}

func TestValidKey(t *testing.T) {
	for key, want := range map[string]bool{
		"a": true, "order-17:retry": true, strings.Repeat("k", 255): true,
		"": false, strings.Repeat("k", 256): false, "has space": false, "tab\t": false, "é": false, "\x7f": false,
	} {
		if ValidKey(key) != want {
			t.Errorf("ValidKey(%q) = %v, want %v", key, !want, want)
		}
	}
}

// A Redis that lost its data (restarted empty) while a request was in
// flight must not let the request's retry be forwarded again: the
// outcome is kept all the same.
func TestFinishAfterRedisLostTheReservation(t *testing.T) {
	srv := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { client.Close() })
	k := New(NewRedis(client, "test:idem:"), Options{})
	st, claim, _ := begin(t, k, scope, "lost", fpA)
	if st != Reserved {
		t.Fatalf("Begin: %v, want Reserved", st)
	}
	srv.Restart()
	ans := Answer{Status: 200, ContentType: "application/json", Body: []byte(`{"Call":{"Sid":"c1"}}`)}
	// The client reconnects on its own; the first command may meet the
	// closed connection.
	var err error
	testutil.Eventually(t, 10*time.Second, "Finish after the restart", func() bool {
		err = claim.Finish(ctx, ans)
		return err == nil
	})
	st, _, got := begin(t, k, scope, "lost", fpA)
	if st != Replay || got == nil || string(got.Body) != string(ans.Body) {
		t.Fatalf("retry after the restart: %v %+v, want the kept answer", st, got)
	}
}

// A TTL shorter than the lease must not let a reservation in flight be
// forgotten, and a retry forwarded while the first request still waits on
// Exotel.
func TestTTLShorterThanLease(t *testing.T) {
	clock := newFakeClock()
	k := New(NewMemory(0, clock.now), Options{TTL: time.Minute, Lease: 3 * time.Minute, Now: clock.now})
	st, claim, _ := begin(t, k, scope, "short", fpA)
	if st != Reserved {
		t.Fatalf("first Begin: %v, want Reserved", st)
	}
	clock.advance(2 * time.Minute)
	if st, _, _ := begin(t, k, scope, "short", fpA); st != InFlight {
		t.Fatalf("repeat past the TTL, within the lease: %v, want InFlight", st)
	}
	if err := claim.Finish(ctx, Answer{Status: 200, Body: []byte("placed")}); err != nil {
		t.Fatal(err)
	}
	clock.advance(30 * time.Second)
	if st, _, a := begin(t, k, scope, "short", fpA); st != Replay || a == nil || string(a.Body) != "placed" {
		t.Fatalf("repeat after the first finished: %v %+v, want its answer", st, a)
	}
}

// An answer larger than a small memory cap is not forgotten the moment it
// is kept: its retry would be forwarded again.
func TestMemoryKeepsAnAnswerLargerThanItsCap(t *testing.T) {
	mem := NewMemory(4096, nil)
	k := New(mem, Options{})
	_, claim, _ := begin(t, k, scope, "big", fpA)
	big := []byte(strings.Repeat("x", 8192))
	if err := claim.Finish(ctx, Answer{Status: 200, Body: big}); err != nil {
		t.Fatal(err)
	}
	if st, _, a := begin(t, k, scope, "big", fpA); st != Replay || a == nil || len(a.Body) != len(big) {
		t.Fatalf("retry: %v, want the kept answer", st)
	}
	// The next outcome kept makes room by forgetting it.
	_, claim, _ = begin(t, k, scope, "small", fpA)
	if err := claim.Finish(ctx, Answer{Status: 200}); err != nil {
		t.Fatal(err)
	}
	if st := mem.Stats(); st.Bytes > st.MaxBytes || st.Evictions != 1 {
		t.Fatalf("after another outcome: %+v, want the large one forgotten", st)
	}
}
