// Package fakeexotel gives exogate's tests and benchmarks the Exotel
// simulator of package sandbox under the names they use: one Exotel host
// that checks HTTP Basic credentials per account, answers in Exotel's
// shapes, and records every request it received so a test can assert on
// exactly what the gateway sent.
//
// A fake enforces no rate limit of its own unless a test sets one with
// SetLimit, and it is lenient (sandbox.Config.Lenient): the gateway's
// tests forward bodies the gateway does not read, so a missing field or an
// unknown Sid is answered as if it were valid. It sends status callbacks
// to loopback addresses only, so a test's example callback URL is never
// dialled.
package fakeexotel

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/exogate/exogate/sandbox"
)

// Request is one request as the fake received it.
type Request = sandbox.Request

// Account is an account the fake knows, with the key and token it accepts.
type Account = sandbox.Account

// Server is an http.Handler that behaves like one Exotel host.
type Server = sandbox.Simulator

// New returns a fake host named name (which labels the requests it
// records) that accepts the given accounts.
func New(name string, accounts ...Account) *Server {
	return sandbox.New(sandbox.Config{Name: name, Accounts: accounts, Lenient: true, Client: loopbackClient()})
}

// errNotLoopback refuses a callback to an address off the machine.
var errNotLoopback = errors.New("fakeexotel: status callbacks go to loopback addresses only")

// loopbackClient sends callbacks to loopback IP addresses only, on a
// connection each, so none stays open after a test.
func loopbackClient() *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				host, _, err := net.SplitHostPort(addr)
				if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
					return nil, errNotLoopback
				}
				return dialer.DialContext(ctx, network, addr)
			},
		},
	}
}
