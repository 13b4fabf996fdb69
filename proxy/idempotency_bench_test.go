package proxy

import (
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/exogate/exogate/internal/idempotency"
	"github.com/exogate/exogate/internal/redistest"
)

// BenchmarkIdempotency is a Calls/connect POST through the handler
// without a key (the baseline), then with a new key each time (reserve,
// forward, keep the answer) and with a key already answered (the replay),
// on each backend: memory, and a real redis-server on loopback.
func BenchmarkIdempotency(b *testing.B) {
	backends := map[string]func(b *testing.B) idempotency.Backend{
		"memory": func(*testing.B) idempotency.Backend { return idempotency.NewMemory(0, nil) },
		"redis": func(b *testing.B) idempotency.Backend {
			srv := redistest.Start(b)
			client := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 64})
			b.Cleanup(func() { client.Close() })
			return idempotency.NewRedis(client, "bench:idem:")
		},
	}
	b.Run("no-key", func(b *testing.B) { benchKeyed(b, benchHandler(b, zerolog.Nop()), func(int64) string { return "" }) })
	for _, name := range []string{"memory", "redis"} {
		b.Run(name+"/new-key", func(b *testing.B) {
			h := benchHandler(b, zerolog.Nop())
			h.idem = &Idempotency{Keys: idempotency.New(backends[name](b), idempotency.Options{}), MaxAnswer: defaultMaxIdempotencyAnswer}
			benchKeyed(b, h, func(i int64) string { return "key-" + strconv.FormatInt(i, 10) })
		})
		b.Run(name+"/replay", func(b *testing.B) {
			h := benchHandler(b, zerolog.Nop())
			h.idem = &Idempotency{Keys: idempotency.New(backends[name](b), idempotency.Options{}), MaxAnswer: defaultMaxIdempotencyAnswer}
			benchKeyed(b, h, func(int64) string { return "the-same-key" })
		})
	}
}

// benchKeyed sends the POST with key(i) for the i-th request; key(0) is
// sent once before the timing starts (the replay's first answer).
func benchKeyed(b *testing.B, h *Handler, key func(int64) string) {
	send := func(k string) {
		req := httptest.NewRequest("POST", "/v1/Accounts/acme/Calls/connect.json", strings.NewReader("From=09876543210&To=08012345678&CallerId=08039591000"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if k != "" {
			req.Header.Set("Idempotency-Key", k)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
	send(key(0))
	var seq atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			send(key(seq.Add(1)))
		}
	})
}
