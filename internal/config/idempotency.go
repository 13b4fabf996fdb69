package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/exogate/exogate/internal/exotel"
	"github.com/exogate/exogate/internal/idempotency"
)

// Idempotency configures Idempotency-Key handling: a POST sent with a key
// is forwarded once and its outcome kept for TTL, so that a retry cannot
// place a second call (internal/idempotency).
type Idempotency struct {
	// Backend: memory (one gateway, the default) or redis (shared by every
	// replica, on limits.redis's connection).
	Backend string `yaml:"backend"`
	// TTL is how long a key is kept (default 24h); never less than the
	// longest a request can be in flight, so that a key is not forgotten
	// while its request may still be at Exotel.
	TTL time.Duration `yaml:"ttl"`
	// MaxBytes caps the memory backend's keys and kept answers (default
	// 64 MiB); past it the oldest go first.
	MaxBytes ByteSize `yaml:"max_bytes"`
	// RequireFor are operations (calls_connect, sms_send, ... or
	// calls.connect) whose POSTs must carry a key.
	RequireFor []string `yaml:"require_for"`
	// OnBackendFailure: refuse (503, the default) or forward without the
	// key's protection.
	OnBackendFailure string `yaml:"on_backend_failure"`
}

// The values of idempotency.backend and idempotency.on_backend_failure.
const (
	IdempotencyMemory  = "memory"
	IdempotencyRedis   = "redis"
	IdempotencyRefuse  = "refuse"
	IdempotencyForward = "forward"
)

func idempotencyDefaults() Idempotency {
	return Idempotency{Backend: IdempotencyMemory, TTL: idempotency.DefaultTTL, MaxBytes: idempotency.DefaultMaxBytes, OnBackendFailure: IdempotencyRefuse}
}

// Operations returns RequireFor as operations; names that are not
// operations are left out (Validate reports them).
func (i Idempotency) Operations() []exotel.Operation {
	var ops []exotel.Operation
	for _, name := range i.RequireFor {
		if op, ok := exotel.ParseOperation(strings.ReplaceAll(name, "_", ".")); ok {
			ops = append(ops, op)
		}
	}
	return ops
}

func (i Idempotency) validate(p *problems) {
	if i.Backend != IdempotencyMemory && i.Backend != IdempotencyRedis {
		p.add("idempotency.backend", "must be memory or redis, got %q", i.Backend)
	}
	p.positive("idempotency.ttl", i.TTL)
	if i.MaxBytes < 4096 {
		p.add("idempotency.max_bytes", "must be at least 4096, got %d", i.MaxBytes)
	}
	if i.OnBackendFailure != IdempotencyRefuse && i.OnBackendFailure != IdempotencyForward {
		p.add("idempotency.on_backend_failure", "must be refuse or forward, got %q", i.OnBackendFailure)
	}
	for n, name := range i.RequireFor {
		op, ok := exotel.ParseOperation(strings.ReplaceAll(name, "_", "."))
		if !ok {
			p.add(fmt.Sprintf("idempotency.require_for[%d]", n), "%q is not an operation (such as calls_connect or sms_send)", name)
		} else if op.String() == "" {
			p.add(fmt.Sprintf("idempotency.require_for[%d]", n), "%q is not an operation", name)
		}
	}
}
