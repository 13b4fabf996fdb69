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
	http.StatusForbidden:       "credentials valid but access denied: check that the account has permission for the resource",
	http.StatusNotFound:        "the Account SID is incorrect, or the account's region is wrong",
	http.StatusTooManyRequests: "rate limited: back off and retry later",
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
	ccfg := cfg
	ccfg.Clients, ccfg.Auth.Anonymous = nil, nil
	gw, err := newGateway(ccfg, deps.Getenv, deps.Logger, deps.Metrics, deps.Version, nil, shared{})
	if err != nil {
		return err
	}
	gw.start("") // no admin listener
	defer func() { _ = gw.close(context.WithoutCancel(ctx)) }()
	// Give file and Vault sources a moment to load; an account still without
	// credentials then reports credentials_unavailable.
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for waiting := true; waiting && !gw.store.Ready(); {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			waiting = false
		case <-tick.C:
		}
	}
	failed := 0
	for _, a := range cfg.Accounts {
		sid := strings.ToLower(a.SID)
		path := "/v1/Accounts/" + sid + "/Calls.json"
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, path, nil)
		if err != nil {
			return err
		}
		req.RequestURI = path
		rec := &statusRecorder{header: http.Header{}}
		gw.ServeHTTP(rec, req)

		hint, ok := checkHints[rec.status]
		if kind := rec.header.Get(proxy.HeaderError); kind != "" {
			hint = "exogate could not complete the test: " + strings.ReplaceAll(kind, "_", " ")
		} else if !ok {
			hint = "unexpected answer from Exotel"
		}
		outcome := "ok"
		if rec.status != http.StatusOK {
			outcome, failed = "FAIL", failed+1
		}
		fmt.Fprintf(stdout, "%-4s %s (%s): %d %s: %s\n", outcome, sid, a.Region, rec.status, http.StatusText(rec.status), hint)
	}
	if len(cfg.Clients) > 0 {
		fmt.Fprintf(stdout, "note %d clients (the test above runs as none of them): %s; a caller whose identity names no client gets 401\n", len(cfg.Clients), anonymousRule(cfg.Auth))
	}
	if failed > 0 {
		return fmt.Errorf("check: %d of %d accounts failed", failed, len(cfg.Accounts))
	}
	return nil
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
