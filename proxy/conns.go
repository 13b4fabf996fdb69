package proxy

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
)

// ConnLimit bounds a listener's open connections. Its ConnContext and
// ConnState methods go into the http.Server's fields of the same names; a
// connection opened past Max is not refused at accept (a caller would see
// only a reset) but gets one Exotel-shaped 503 overloaded answer, with
// Connection: close, from the Handler. The zero value has no bound. Safe for
// concurrent use.
type ConnLimit struct {
	Max  int64 // 0: no bound
	open atomic.Int64
}

type overConnectionsKey struct{}

// ConnContext counts a new connection and marks it when it is past Max.
func (c *ConnLimit) ConnContext(ctx context.Context, _ net.Conn) context.Context {
	if n := c.open.Add(1); c.Max > 0 && n > c.Max {
		return context.WithValue(ctx, overConnectionsKey{}, true)
	}
	return ctx
}

// ConnState forgets a connection once it is closed or hijacked.
func (c *ConnLimit) ConnState(_ net.Conn, s http.ConnState) {
	if s == http.StateClosed || s == http.StateHijacked {
		c.open.Add(-1)
	}
}

// Open returns the number of connections open now.
func (c *ConnLimit) Open() int64 { return c.open.Load() }

// overConnections reports whether the request came on a connection opened
// past its listener's bound.
func overConnections(ctx context.Context) bool {
	v, _ := ctx.Value(overConnectionsKey{}).(bool)
	return v
}
