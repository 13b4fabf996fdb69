// Package rotate is `exogate rotate`: it tests a new Exotel API key and
// token with Exotel's credential test, publishes them to the account's
// credentials source, asks every replica of the gateway to read them now,
// and waits until each one reports the new version in use, with Exotel
// accepting it. Only then is the old key safe to delete in Exotel's
// dashboard, and the command says so.
//
// The pair travels from standard input to the test and the source, in
// memory; it is never printed, logged or written anywhere else.
package rotate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/exogate/exogate/credentials"
	"github.com/exogate/exogate/internal/config"
	"github.com/exogate/exogate/internal/gateway"
)

// Exit codes besides 0.
const (
	// ExitRefused: nothing was published (the test failed, another
	// rotation won, the source could not be written, bad input).
	ExitRefused = 1
	// ExitUnconfirmed: the new version is published, but a replica did not
	// confirm it in time.
	ExitUnconfirmed = 2
)

// Error is a failure of the command and its exit code.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// ExitCode is the process's exit code for e.
func (e *Error) ExitCode() int { return e.Code }

func refused(format string, args ...any) error {
	return &Error{Code: ExitRefused, Err: fmt.Errorf(format, args...)}
}

// Options is one run of the command.
type Options struct {
	Config  config.Config
	Account string
	// Key and Token are the new pair (ignored with Rollback).
	Key, Token string
	// Rollback publishes the previous KV v2 version's pair again.
	Rollback bool
	// Replicas are the replicas' admin URLs. Empty: Discover finds them.
	Replicas []string
	// Discover lists the replicas' admin URLs (from the Redis heartbeats).
	Discover func(ctx context.Context) ([]string, error)
	// Timeout bounds the wait for the fleet (default 2m).
	Timeout time.Duration
	// VaultToken is the operator's Vault token.
	VaultToken string
	// AdminToken is the bearer token the replicas' admin writes need ("":
	// none).
	AdminToken string
	// Deps runs the credential test.
	Deps gateway.Deps
	// Client reaches the replicas (default: a client with a 5s timeout).
	Client *http.Client
	Out    io.Writer
}

// Run runs the rotation. Its error is an *Error carrying the exit code.
func Run(ctx context.Context, o Options) error {
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 5 * time.Second}
	}
	sid := strings.ToLower(o.Account)
	pub, err := gateway.PublisherFor(o.Config, sid, o.VaultToken, o.Deps.Getenv)
	if err != nil {
		return refused("rotate: %w", err)
	}
	base, err := pub.Read(ctx)
	if err != nil {
		return refused("rotate: reading the current credentials: %w", err)
	}
	fmt.Fprintf(o.Out, "%s: current credentials at %s: %s\n", sid, pub.Where(), describe(base))
	key, token := o.Key, o.Token
	if o.Rollback {
		var from string
		if key, token, from, err = pub.Previous(ctx, base); err != nil {
			return refused("rotate -rollback: %w", err)
		}
		fmt.Fprintf(o.Out, "%s: rolling back to the pair of %s\n", sid, from)
	}
	replicas := o.Replicas
	if len(replicas) == 0 {
		if o.Discover == nil {
			return refused("rotate: no replicas to confirm: give -replicas")
		}
		if replicas, err = o.Discover(ctx); err != nil {
			return refused("rotate: finding the replicas: %w", err)
		}
		if len(replicas) == 0 {
			return refused("rotate: no replica has a heartbeat in Redis: give -replicas, or start the gateway first")
		}
	}

	replicas = replicaURLs(replicas)
	fmt.Fprintf(o.Out, "%s: testing the new key and token with Exotel's credential test\n", sid)
	if err := gateway.CheckPair(ctx, o.Config, o.Deps, sid, key, token, o.Out); err != nil {
		return refused("rotate: %w; nothing was written", err)
	}
	version, err := pub.Publish(ctx, base, key, token)
	if errors.Is(err, credentials.ErrConflict) {
		return refused("rotate: another rotation wrote first (%w); nothing was written: run `exogate rotate` again if this key is still to be published", err)
	}
	if err != nil {
		return refused("rotate: publishing: %w; nothing was written", err)
	}
	fmt.Fprintf(o.Out, "%s: published %s to %s\n", sid, version, pub.Where())

	f := fleet{client: o.Client, token: o.AdminToken, sid: sid, version: version, out: o.Out}
	if missing := f.confirm(ctx, replicas, o.Timeout); len(missing) > 0 {
		return &Error{Code: ExitUnconfirmed, Err: fmt.Errorf(
			"rotate: %d of %d replicas did not confirm %s within %s: %s; %s stays published (the other replicas use it)",
			len(missing), len(replicas), version, o.Timeout, strings.Join(missing, "; "), version)}
	}
	fmt.Fprintf(o.Out, "every replica (%d) uses %s for %s\n", len(replicas), version, sid)
	switch {
	case base.HasKey(key):
		// Only the token changed (or the same pair was published again):
		// the key named is the one in use.
		fmt.Fprintf(o.Out, "the key %s… is unchanged: keep it in Exotel's dashboard\n", base.KeyPrefix)
	case base.KeyPrefix != "":
		fmt.Fprintf(o.Out, "the old key %s… (%s) may now be deleted in Exotel's dashboard\n", base.KeyPrefix, base.Version)
	}
	return nil
}

// describe says what a snapshot holds, by label and key prefix only.
func describe(s credentials.Snapshot) string {
	switch {
	case s.Version == "":
		return "no credentials yet"
	case s.KeyPrefix == "":
		return s.Version
	}
	return fmt.Sprintf("%s (key %s…)", s.Version, s.KeyPrefix)
}
