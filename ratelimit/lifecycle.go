package ratelimit

import "context"

// Memory has the same lifecycle and introspection methods as Redis, so
// that the gateway holds either behind one interface.

// Start does nothing: the in-memory limiter has no background work.
func (m *Memory) Start(context.Context) {}

// Close does nothing and returns nil: the in-memory limiter holds no
// connections.
func (m *Memory) Close() error { return nil }

// Backend is "memory".
func (m *Memory) Backend() string { return "memory" }

// Replicas is 0: an in-memory limiter does not know of other replicas.
func (m *Memory) Replicas() int { return 0 }

// MalformedMessages is 0: there is no pause channel to read.
func (m *Memory) MalformedMessages() int64 { return 0 }
