package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/exogate/exogate/internal/config"
	"github.com/exogate/exogate/proxy"
)

// checkHints are the seed document's "what to check" for each answer of the
// credential test.
var checkHints = map[int]string{
	http.StatusOK:              "credentials are valid",
	http.StatusUnauthorized:    "authentication failed: verify the API key and API token",
	http.StatusForbidden:       "credentials valid but access denied: check that the account is active (not suspended) and has permission for the resource",
	http.StatusNotFound:        "the Account SID is incorrect, or the account's region is wrong",
	http.StatusTooManyRequests: "rate limited: back off and retry later",
}

// kindHints say what to check when exogate could not complete the test;
// the log line above the result names the cause.
var kindHints = map[string]string{
	proxy.KindUpstreamUnreachable:    "no connection to Exotel: check DNS, the network path and any egress proxy or firewall to the region's host (the log line above names the cause)",
	proxy.KindUpstreamTimeout:        "Exotel did not answer within upstream.timeout: check the network path to the region's host",
	proxy.KindCredentialsUnavailable: "the account's credentials could not be loaded: check its source (the log lines above say why)",
	proxy.KindCircuitOpen:            "the circuit breaker for this account is open after failures: see the log lines above",
}

// check runs the seed's credential test, GET /v1/Accounts/{sid}/Calls.json,
// for every account through the gateway's own handler (so through the same
// limiter, breaker, credentials and transport as live traffic), one line per
// account. It fails if any account does not answer 200.
//
// The credential test is the operator's, not a caller's: it goes through
// the limiter, breaker and transport of live traffic, but no caller's
// identity or rights apply to it.
func Check(ctx context.Context, cfg config.Config, deps Deps, stdout io.Writer) error {
	gw, err := checkGateway(ctx, cfg, deps)
	if err != nil {
		return err
	}
	defer func() { _ = gw.close(context.WithoutCancel(ctx)) }()
	failed := 0
	for _, a := range cfg.Accounts {
		if !checkAccount(ctx, gw, a, stdout) {
			failed++
		}
		sid := strings.ToLower(a.SID)
		if c := gw.store.Current(sid); c != nil {
			if age := time.Since(c.CreatedAt()); age > cfg.Rotation.MaxAge {
				fmt.Fprintf(stdout, "warn %s: the credential in use (%s %s) was made %s ago, over rotation.max_age (%s): rotate it with `exogate rotate`\n",
					sid, c.Source(), c.Version(), days(age), days(cfg.Rotation.MaxAge))
			}
		}
	}
	if len(cfg.Clients) > 0 {
		fmt.Fprintf(stdout, "note %d clients (the test above runs as none of them): %s; a caller whose identity names no client gets 401\n", len(cfg.Clients), anonymousRule(cfg.Auth))
	}
	if failed > 0 {
		return fmt.Errorf("check: %d of %d accounts failed", failed, len(cfg.Accounts))
	}
	return nil
}

// CheckPair runs the credential test for account sid with a key and token
// that no source holds yet (`exogate rotate` tests a new pair before it
// publishes it): the same request to the account's region, through the
// same transport, printed in the same words as Check. The pair is handed
// over in memory only, and an in-memory limiter takes the request.
func CheckPair(ctx context.Context, cfg config.Config, deps Deps, sid, key, token string, stdout io.Writer) error {
	const keyVar, tokenVar = "EXOGATE_CHECK_API_KEY", "EXOGATE_CHECK_API_TOKEN"
	var acct *config.Account
	for _, a := range cfg.Accounts {
		if strings.EqualFold(a.SID, sid) {
			a.Credentials = config.Credentials{Source: "env", APIKeyEnv: keyVar, APITokenEnv: tokenVar}
			acct = &a
		}
	}
	if acct == nil {
		return fmt.Errorf("check: the configuration has no account %q", sid)
	}
	ccfg := cfg
	ccfg.Accounts = []config.Account{*acct}
	ccfg.Limits.Backend = "memory"
	getenv := deps.Getenv
	deps.Getenv = func(k string) string {
		switch k {
		case keyVar:
			return key
		case tokenVar:
			return token
		}
		return getenv(k)
	}
	gw, err := checkGateway(ctx, ccfg, deps)
	if err != nil {
		return err
	}
	defer func() { _ = gw.close(context.WithoutCancel(ctx)) }()
	if !checkAccount(ctx, gw, *acct, stdout) {
		return fmt.Errorf("check: Exotel did not accept the new key and token for %s", strings.ToLower(sid))
	}
	return nil
}

// checkGateway starts a gateway for the credential test: cfg's accounts,
// no callers, and a moment for file and Vault sources to load (an account
// still without credentials then reports credentials_unavailable).
func checkGateway(ctx context.Context, cfg config.Config, deps Deps) (*gateway, error) {
	ccfg := cfg
	ccfg.Clients, ccfg.Auth.Anonymous = nil, nil
	gw, err := newGateway(ccfg, deps.Getenv, deps.Logger, deps.Metrics, deps.Version, nil, shared{})
	if err != nil {
		return nil, err
	}
	gw.start("") // no admin listener
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for waiting := true; waiting && !gw.store.Ready(); {
		select {
		case <-ctx.Done():
			_ = gw.close(context.WithoutCancel(ctx))
			return nil, ctx.Err()
		case <-deadline.C:
			waiting = false
		case <-tick.C:
		}
	}
	return gw, nil
}

// checkAccount runs the credential test for one account, prints its line,
// and reports whether Exotel answered 200.
func checkAccount(ctx context.Context, gw *gateway, a config.Account, stdout io.Writer) bool {
	sid := strings.ToLower(a.SID)
	rec := gw.credentialTest(ctx, sid)

	hint, ok := checkHints[rec.status]
	if kind := rec.header.Get(proxy.HeaderError); kind != "" {
		hint = kindHints[kind]
		if hint == "" {
			hint = "exogate could not complete the test: " + strings.ReplaceAll(kind, "_", " ")
		}
	} else if !ok {
		hint = "unexpected answer from Exotel"
	}
	outcome := "ok"
	if rec.status != http.StatusOK {
		outcome = "FAIL"
	}
	fmt.Fprintf(stdout, "%-4s %s (%s): %d %s: %s\n", outcome, sid, a.Region, rec.status, http.StatusText(rec.status), hint)
	return rec.status == http.StatusOK
}

// days renders a duration of a day or more in days, else as is.
func days(d time.Duration) string {
	if d < 24*time.Hour {
		return d.Round(time.Second).String()
	}
	return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
}

// anonymousRule says what a caller without identity gets where clients are
// configured.
func anonymousRule(a config.Auth) string {
	switch {
	case !a.AllowAnonymous:
		return "a caller without identity gets 401"
	case a.Anonymous == nil:
		return "a caller without identity may do nothing (auth.allow_anonymous without auth.anonymous: 403)"
	}
	r := a.Anonymous
	all := func(l []string) string {
		if len(l) == 0 {
			return "all"
		}
		return strings.Join(l, ",")
	}
	return fmt.Sprintf("a caller without identity may use accounts %s, operations %s, buckets %s, methods %s",
		strings.Join(r.Accounts, ","), all(r.Operations), all(r.Buckets), all(r.Methods))
}

// statusRecorder is the ResponseWriter of a check: it keeps the status and
// headers and discards the body.
type statusRecorder struct {
	header http.Header
	status int
}

func (r *statusRecorder) Header() http.Header { return r.header }
func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return len(p), nil
}
