package gateway

import (
	"fmt"
	"io"
	"time"

	"github.com/exogate/exogate/internal/config"
	"github.com/exogate/exogate/internal/idempotency"
	"github.com/exogate/exogate/internal/metrics"
	"github.com/exogate/exogate/proxy"
	"github.com/exogate/exogate/ratelimit"
)

// keys are the gateway's idempotency keys, kept across reloads: a reload
// must not forget which calls were placed.
type keys struct {
	keys  *idempotency.Keys
	mem   *idempotency.Memory // nil with the Redis backend
	redis io.Closer           // the Redis backend's client; nil without
	cfg   config.Idempotency  // the settings they were made with
}

// leaseMargin is added to the longest a request can take upstream to
// give a reservation's lease.
const leaseMargin = 30 * time.Second

func newKeys(cfg config.Config, getenv func(string) string) (*keys, error) {
	ic := cfg.Idempotency
	// A reservation outlives the request that holds it: its wait in line,
	// Exotel's answer and one replay after a 401 or 429.
	lease := cfg.Limits.MaxWait + 2*cfg.Upstream.Timeout + max(retryWait(cfg.Limits.MaxWait), 0) + leaseMargin
	k := &keys{cfg: ic}
	var backend idempotency.Backend
	switch ic.Backend {
	case config.IdempotencyRedis:
		rc, err := redisSettings(cfg.Limits, getenv)
		if err != nil {
			return nil, fmt.Errorf("idempotency: %w", err)
		}
		client := ratelimit.NewRedisClient(rc)
		backend, k.redis = idempotency.NewRedis(client, rc.KeyPrefix+"idem:"), client
	default:
		k.mem = idempotency.NewMemory(int64(ic.MaxBytes), nil)
		backend = k.mem
	}
	k.keys = idempotency.New(backend, idempotency.Options{TTL: ic.TTL, Lease: lease})
	return k, nil
}

// sameBackend reports whether ic can keep using k (what a reload may not
// change: the backend and its retention).
func (k *keys) sameBackend(ic config.Idempotency) bool {
	return ic.Backend == k.cfg.Backend && ic.TTL == k.cfg.TTL && ic.MaxBytes == k.cfg.MaxBytes
}

// proxy is the handler's idempotency settings under ic.
func (k *keys) proxy(ic config.Idempotency) *proxy.Idempotency {
	return &proxy.Idempotency{Keys: k.keys, RequireFor: ic.Operations(), Forward: ic.OnBackendFailure == config.IdempotencyForward}
}

func (k *keys) close() error {
	if k.redis != nil {
		return k.redis.Close()
	}
	return nil
}

// keysCollector writes the idempotency metrics at scrape time.
type keysCollector struct {
	k                                     *keys
	events, bytes, maxBytes, n, evictions *metrics.Desc
}

func newKeysCollector(k *keys) *keysCollector {
	d := func(typ metrics.Type, name, help string, labels ...string) *metrics.Desc {
		return metrics.NewDesc(typ, "exogate_idempotency_"+name, help, labels...)
	}
	return &keysCollector{
		k:         k,
		events:    d(metrics.Counter, "events_total", "Idempotency-Key events: reserved, replayed, conflict, mismatch, outcome_unknown, released, backend_error.", "event"),
		bytes:     d(metrics.Gauge, "bytes", "Bytes of keys and kept answers in the memory backend."),
		maxBytes:  d(metrics.Gauge, "max_bytes", "The memory backend's cap (idempotency.max_bytes)."),
		n:         d(metrics.Gauge, "keys", "Keys held by the memory backend."),
		evictions: d(metrics.Counter, "evictions_total", "Kept answers the memory backend forgot before their TTL to stay under its cap."),
	}
}

func (c *keysCollector) Describe() []*metrics.Desc {
	return []*metrics.Desc{c.events, c.bytes, c.maxBytes, c.n, c.evictions}
}

func (c *keysCollector) Collect(w *metrics.Writer) {
	for ev, n := range c.k.keys.Counts() {
		w.Write(c.events, float64(n), ev)
	}
	if c.k.mem == nil {
		return
	}
	st := c.k.mem.Stats()
	w.Write(c.bytes, float64(st.Bytes))
	w.Write(c.maxBytes, float64(st.MaxBytes))
	w.Write(c.n, float64(st.Keys))
	w.Write(c.evictions, float64(st.Evictions))
}
