package ratelimit

import (
	"context"
	"testing"
	"time"
)

// The in-memory limiter's lifecycle methods are harmless: Admit works
// after Close, and it reports itself as "memory" with no replicas.
func TestMemoryLifecycle(t *testing.T) {
	m, err := NewMemory([]string{"acme"}, Config{Buckets: map[string]Rule{"sms": CapRule(2, time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	m.Start(context.Background())
	if m.Backend() != "memory" || m.Replicas() != 0 || m.MalformedMessages() != 0 {
		t.Errorf("backend %q replicas %d malformed %d", m.Backend(), m.Replicas(), m.MalformedMessages())
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := m.Admit(context.Background(), "acme", "sms"); err != nil {
		t.Errorf("Admit after Close: %v", err)
	}
}
