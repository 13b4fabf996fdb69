package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/exogate/exogate/internal/config"
	"github.com/exogate/exogate/internal/exotel"
	"github.com/exogate/exogate/internal/metrics"
	"github.com/exogate/exogate/proxy"
)

// adminHandler serves the operator's endpoints on the admin listener:
// /metrics, /status, /healthz, /readyz, POST /-/reload and POST
// /-/refresh?account=SID. Every request
// other than GET and HEAD must carry the token of the live configuration's
// admin.token_file when it names one (see tokenCheck), and a reload sooner
// than admin.min_reload_interval after the previous one is answered 429.
//
// extra adds handlers by mux pattern (the sandbox's /sandbox/ endpoints,
// which show the bodies sent upstream); they need the admin token for
// every method, reads included.
func adminHandler(live func() *gateway, m *metrics.Metrics, reload func() error, hooks http.Handler, log zerolog.Logger, extra map[string]http.Handler) http.Handler {
	mux := http.NewServeMux()
	token := newTokenCheck(func() string { return live().cfg.Admin.TokenFile }, log)
	for pattern, h := range extra {
		mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Other methods were checked by token.wrap already.
			if (r.Method == http.MethodGet || r.Method == http.MethodHead) && !token.passes(w, r) {
				return
			}
			h.ServeHTTP(w, r)
		}))
	}
	if hooks != nil {
		// GET /webhooks, GET /webhooks/messages, POST /webhooks/replay.
		mux.Handle("/webhooks", hooks)
		mux.Handle("/webhooks/", hooks)
	}
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(live().status())
	})
	mux.HandleFunc("POST /-/refresh", refreshHandler(live))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		// The proxy listener's /readyz gives the same answer.
		if ready, reason := live().Readiness(); !ready {
			http.Error(w, reason, http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	// Each reload logs in to Vault again and opens new Redis connections:
	// one per interval at most, whatever its outcome. SIGHUP is not limited
	// (whoever can signal the process needs no endpoint).
	reloads := rate.NewLimiter(rate.Every(live().cfg.Admin.MinReloadInterval), 1)
	mux.HandleFunc("POST /-/reload", func(w http.ResponseWriter, r *http.Request) {
		if reload == nil {
			http.Error(w, "reload needs a configuration file (-config)", http.StatusConflict)
			return
		}
		every := live().cfg.Admin.MinReloadInterval
		reloads.SetLimit(rate.Every(every))
		if res := reloads.Reserve(); res.Delay() > 0 {
			wait := res.Delay()
			res.Cancel()
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			http.Error(w, fmt.Sprintf("too many reloads: at most one per admin.min_reload_interval (%s)", every), http.StatusTooManyRequests)
			return
		}
		if err := reload(); err != nil {
			http.Error(w, "reload refused: "+err.Error(), http.StatusBadRequest)
			return
		}
		_, _ = w.Write([]byte("reloaded\n"))
	})
	return token.wrap(mux)
}

// tokenCheck guards the admin listener: wrap lets GET and HEAD requests
// through to next, and every other request only with "Authorization:
// Bearer <token>", the token being the content of the file file names;
// file "" lets everything through (a loopback listener without
// admin.token_file: configuration validation refuses that off loopback).
// The file is read at each such request, so a rotated token applies at
// once and nothing but the file holds it. A wrong or missing token is
// answered 401 with WWW-Authenticate: Bearer; an unreadable file 503.
// Refusals are logged at most once a minute, never with the token sent or
// expected.
type tokenCheck struct {
	file                func() string
	log                 zerolog.Logger
	refused, unreadable *rate.Sometimes
}

func newTokenCheck(tokenFile func() string, log zerolog.Logger) *tokenCheck {
	return &tokenCheck{file: tokenFile, log: log,
		refused: &rate.Sometimes{First: 1, Interval: time.Minute}, unreadable: &rate.Sometimes{First: 1, Interval: time.Minute}}
}

// wrap lets GET and HEAD through to next, and other requests when passes.
func (c *tokenCheck) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead || c.passes(w, r) {
			next.ServeHTTP(w, r)
		}
	})
}

// passes reports whether r carries the admin token, or no token file is
// set; when not, it has answered w.
func (c *tokenCheck) passes(w http.ResponseWriter, r *http.Request) bool {
	file := c.file()
	if file == "" {
		return true
	}
	want, err := readAdminToken(file)
	if err != nil {
		c.unreadable.Do(func() {
			c.log.Error().Str("error", err.Error()).Msg("admin: the token file cannot be read; admin requests that need it are refused")
		})
		http.Error(w, "admin token unavailable", http.StatusServiceUnavailable)
		return false
	}
	if !bearerMatches(r.Header.Get("Authorization"), want) {
		c.refused.Do(func() {
			c.log.Warn().Str("remote_addr", r.RemoteAddr).Str("method", r.Method).Str("path", r.URL.Path).
				Msg("admin: refused a request without the admin token (logged at most once a minute)")
		})
		w.Header().Set("WWW-Authenticate", `Bearer realm="exogate-admin"`)
		http.Error(w, "unauthorized: send Authorization: Bearer <the token in admin.token_file>", http.StatusUnauthorized)
		return false
	}
	return true
}

// minAdminToken is the shortest admin token accepted.
const minAdminToken = 32

// readAdminToken reads the admin token from file: its content without
// surrounding white space, at least minAdminToken printable ASCII
// characters without spaces (as a Bearer token is sent). Errors name the
// file and never hold its content.
func readAdminToken(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("admin.token_file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4097))
	if err != nil {
		return nil, fmt.Errorf("admin.token_file: %s: %w", file, err)
	}
	if len(b) > 4096 {
		return nil, fmt.Errorf("admin.token_file: %s is larger than 4096 bytes", file)
	}
	tok := bytes.TrimSpace(b)
	if len(tok) < minAdminToken {
		return nil, fmt.Errorf("admin.token_file: %s: the token must be at least %d characters (e.g. openssl rand -hex 32)", file, minAdminToken)
	}
	for _, c := range tok {
		if c <= ' ' || c > '~' {
			return nil, fmt.Errorf("admin.token_file: %s: the token must be printable ASCII without spaces", file)
		}
	}
	return tok, nil
}

// bearerMatches reports whether an Authorization header carries the token
// want as a Bearer credential, comparing in constant time (the hashes, so
// that not even the length is told by the time taken).
func bearerMatches(header string, want []byte) bool {
	scheme, got, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	g, w := sha256.Sum256([]byte(strings.TrimSpace(got))), sha256.Sum256(want)
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// Status is the JSON of GET /status. It never holds a secret: credentials
// appear as their source, version and age only.
type Status struct {
	Version  string          `json:"version"`
	Ready    bool            `json:"ready"`
	Draining bool            `json:"draining"`
	Limiter  LimiterStatus   `json:"limiter"`
	Upstream UpstreamStatus  `json:"upstream"`
	Accounts []AccountStatus `json:"accounts"`
}

// UpstreamStatus describes the client that carries requests to Exotel.
type UpstreamStatus struct {
	// Client is always net/http, Go's http.Transport, whatever
	// upstream.client says.
	Client string `json:"client"`
	// IdleConns is never set: http.Transport does not tell how many
	// keep-alive connections wait. The field stays so that the JSON's
	// shape does not change ("idle_conns" is left out).
	IdleConns *int `json:"idle_conns,omitempty"`
}

// LimiterStatus describes the limiter backend.
type LimiterStatus struct {
	Backend  string `json:"backend"` // memory, redis, or local (Redis down)
	Replicas int    `json:"replicas,omitempty"`
}

// AccountStatus is one account's state.
type AccountStatus struct {
	SID         string                  `json:"sid"`
	Region      string                  `json:"region"`
	Credentials CredentialStatus        `json:"credentials"`
	Breakers    map[string]string       `json:"breakers"` // host -> closed | half-open | open
	Buckets     map[string]BucketStatus `json:"buckets"`
}

// CredentialStatus is what is known of an account's live credentials:
// where they come from, which version, how old, and since when in use. It
// never holds a value.
type CredentialStatus struct {
	Source  string `json:"source"`
	Version string `json:"version,omitempty"`
	// AgeSeconds counts from CreatedAt.
	AgeSeconds float64 `json:"age_seconds,omitempty"`
	// CreatedAt is when the source made the pair: Vault's created_time
	// (KV v2), the files' modification time, the first read (KV v1), or
	// start-up (env).
	CreatedAt *time.Time `json:"created_at,omitempty"`
	// InUseSince is when this replica started using the version.
	InUseSince *time.Time `json:"in_use_since,omitempty"`
	// MaxAgeExceeded: older than rotation.max_age.
	MaxAgeExceeded bool `json:"max_age_exceeded,omitempty"`
	// PreviousVersion is the version the current one replaced.
	PreviousVersion string `json:"previous_version,omitempty"`
	// PreviousAcceptedAt is set while Exotel refuses the current version
	// and accepts the previous one (it has not taken the new token yet):
	// the last time it did.
	PreviousAcceptedAt *time.Time `json:"previous_accepted_at,omitempty"`
	// AcceptedAt is when Exotel first accepted the current version on this
	// replica; absent until it has answered a call with it.
	AcceptedAt *time.Time `json:"accepted_at,omitempty"`
	Loaded     bool       `json:"loaded"`
}

// BucketStatus is a bucket's configuration and current pause.
type BucketStatus struct {
	Limit        int     `json:"limit"`
	Period       string  `json:"period"`
	Burst        int     `json:"burst"`
	PauseSeconds float64 `json:"pause_seconds,omitempty"`
}

func (g *gateway) status() Status {
	st := Status{
		Version:  g.version,
		Ready:    g.Ready(),
		Draining: g.Draining(),
		Limiter:  LimiterStatus{Backend: g.backend()},
	}
	st.Limiter.Replicas = g.limiter.Replicas()
	st.Upstream.Client = "net/http"
	for _, a := range g.cfg.Accounts {
		sid := strings.ToLower(a.SID)
		as := AccountStatus{SID: sid, Region: a.Region, Breakers: map[string]string{}, Buckets: map[string]BucketStatus{}}
		as.Credentials = g.credentialStatus(a)
		for _, h := range []exotel.Host{exotel.HostAPI, exotel.HostCCM} {
			if s, ok := g.BreakerState(sid, h); ok {
				as.Breakers[h.String()] = s.String()
			}
		}
		for name, r := range g.cfg.Limits.Buckets {
			as.Buckets[name] = BucketStatus{Limit: r.Limit, Period: r.Period.String(), Burst: r.Burst,
				PauseSeconds: g.limiter.PauseLeft(sid, name).Seconds()}
		}
		st.Accounts = append(st.Accounts, as)
	}
	sort.Slice(st.Accounts, func(i, j int) bool { return st.Accounts[i].SID < st.Accounts[j].SID })
	return st
}

// credentialStatus describes account a's live credentials.
func (g *gateway) credentialStatus(a config.Account) CredentialStatus {
	sid := strings.ToLower(a.SID)
	cs := CredentialStatus{Source: a.Credentials.Source}
	c := g.store.Current(sid)
	if c == nil {
		return cs
	}
	utc := func(t time.Time) *time.Time {
		t = t.UTC().Round(time.Millisecond)
		return &t
	}
	age := time.Since(c.CreatedAt())
	cs.Loaded, cs.Version = true, c.Version()
	cs.AgeSeconds = age.Round(time.Millisecond).Seconds()
	cs.CreatedAt, cs.InUseSince = utc(c.CreatedAt()), utc(c.LoadedAt())
	cs.MaxAgeExceeded = age > g.cfg.Rotation.MaxAge
	if p := g.store.Previous(sid); p != nil {
		cs.PreviousVersion = p.Version()
	}
	if at := g.store.PreviousAcceptedAt(sid); !at.IsZero() {
		cs.PreviousAcceptedAt = utc(at)
	}
	if at := g.store.CurrentAcceptedAt(sid); !at.IsZero() {
		cs.AcceptedAt = utc(at)
	}
	return cs
}

// refreshHandler serves POST /-/refresh?account=SID: it re-reads the
// account's credentials source now and, while Exotel has not yet accepted
// the current version here, sends Exotel's credential test with it (as the
// operator, through the limiter, breaker and replays of live traffic: a 401
// is retried with the previous version, which then shows as
// previous_accepted_at). It answers the account's credential status: what
// `exogate rotate` asks each replica after publishing a new token. 400
// without an account, 404 for one the gateway does not serve, 502 when the
// source cannot be read (the last good credentials keep serving; the answer
// says why, never with a value). Each one reads the source and may send a
// request to Exotel, so per account one is served per
// rotation.min_forced_refresh: one sooner is answered 429 with Retry-After
// and the status as it is.
func refreshHandler(live func() *gateway) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		names := r.URL.Query()["account"]
		switch {
		case len(names) == 0 || names[0] == "":
			http.Error(w, "refresh: the account query parameter is required (POST /-/refresh?account=SID)", http.StatusBadRequest)
			return
		case len(names) > 1:
			http.Error(w, "refresh: name the account once (POST /-/refresh?account=SID)", http.StatusBadRequest)
			return
		}
		g := live()
		var acct *config.Account
		for i := range g.cfg.Accounts {
			if strings.EqualFold(g.cfg.Accounts[i].SID, names[0]) {
				acct = &g.cfg.Accounts[i]
			}
		}
		if acct == nil {
			http.Error(w, "refresh: this gateway serves no account "+strconv.Quote(names[0]), http.StatusNotFound)
			return
		}
		// The store and the pacer key accounts in lower case; the answer
		// and Exotel's credential test use the configured SID.
		sid := strings.ToLower(acct.SID)
		ctx, cancel := context.WithTimeout(r.Context(), g.cfg.Vault.Timeout+g.cfg.Upstream.Timeout+5*time.Second)
		defer cancel()
		answer := struct {
			SID         string           `json:"sid"`
			Credentials CredentialStatus `json:"credentials"`
			// Test is the status Exotel's credential test got, when one
			// was sent.
			Test  int    `json:"test,omitempty"`
			Error string `json:"error,omitempty"`
		}{SID: acct.SID}
		status := http.StatusOK
		if wait := g.refreshes.wait(sid); wait > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			answer.Error = fmt.Sprintf("refresh: too many refreshes of account %s: at most one per rotation.min_forced_refresh (%s)", acct.SID, g.refreshes.every)
			status = http.StatusTooManyRequests
		} else if c, err := g.store.Refresh(ctx, sid); err != nil {
			answer.Error, status = "refresh: cannot read the credentials source: "+err.Error(), http.StatusBadGateway
		} else if c != nil && g.store.CurrentAcceptedAt(sid).IsZero() {
			answer.Test = g.credentialTest(proxy.AsOperator(ctx), acct.SID).status
		}
		answer.Credentials = g.credentialStatus(*acct)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(answer)
	}
}

// refreshPacer lets one POST /-/refresh per account through per interval,
// with a rate.Limiter per account as /-/reload has one. It is safe for
// concurrent use.
type refreshPacer struct {
	every time.Duration
	now   func() time.Time // default time.Now

	mu       sync.Mutex
	accounts map[string]*rate.Limiter
}

// wait returns how long account's refresh must wait, or 0 when it may go
// now (which then counts as the account's last refresh). Only configured
// accounts get here, which bounds the map.
func (p *refreshPacer) wait(account string) time.Duration {
	now := time.Now()
	if p.now != nil {
		now = p.now()
	}
	p.mu.Lock()
	l := p.accounts[account]
	if l == nil {
		if p.accounts == nil {
			p.accounts = map[string]*rate.Limiter{}
		}
		l = rate.NewLimiter(rate.Every(p.every), 1)
		p.accounts[account] = l
	}
	p.mu.Unlock()
	res := l.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d
	}
	return 0
}

// credentialTest sends Exotel's credential test, GET
// /v1/Accounts/{sid}/Calls.json, for account sid through the gateway's own
// handler (so through the limiter, breaker, credentials and transport of
// live traffic) and returns what it was answered, body discarded. ctx may
// carry proxy.AsOperator.
func (g *gateway) credentialTest(ctx context.Context, sid string) *statusRecorder {
	path := "/v1/Accounts/" + sid + "/Calls.json"
	rec := &statusRecorder{header: http.Header{}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, path, nil)
	if err != nil {
		return rec
	}
	req.RequestURI = path
	g.ServeHTTP(rec, req)
	return rec
}

// backend names the limiter backend in use: memory, redis, or local.
func (g *gateway) backend() string { return g.limiter.Backend() }

// stateCollector reads, at scrape time, what lives in the limiter and the
// credentials store: pauses, the backend, credential versions and ages,
// refresh errors, the Vault token's TTL.
type stateCollector struct {
	live func() *gateway

	pause, backend, credInfo, credAge, credMaxAge, prevAccepted, refreshErrors, vaultTTL, malformedPauses *metrics.Desc
}

func newStateCollector(live func() *gateway) *stateCollector {
	d := func(typ metrics.Type, name, help string, labels ...string) *metrics.Desc {
		return metrics.NewDesc(typ, "exogate_"+name, help, labels...)
	}
	return &stateCollector{
		live:          live,
		pause:         d(metrics.Gauge, "limiter_pause_seconds", "Seconds left of a pause after Exotel's own 429, per account and bucket.", "account", "bucket"),
		backend:       d(metrics.Gauge, "limiter_backend", "The limiter backend in use (1): memory, redis, or local (Redis unreachable).", "backend"),
		credInfo:      d(metrics.Gauge, "credentials_info", "The live credential's source and version per account (1); never a value.", "account", "source", "version"),
		credAge:       d(metrics.Gauge, "credentials_age_seconds", "Seconds since the live credential was made (Vault's created_time, the files' modification time, start-up for env).", "account"),
		credMaxAge:    d(metrics.Gauge, "credentials_max_age_seconds", "rotation.max_age: the age past which a credential is due for rotation."),
		prevAccepted:  d(metrics.Gauge, "credentials_previous_accepted", "1 while Exotel refuses the account's current credential and accepts the previous one (it has not taken the new token yet).", "account"),
		refreshErrors: d(metrics.Counter, "credentials_refresh_errors_total", "Failed reads of the account's credential source.", "account"),
		vaultTTL:      d(metrics.Gauge, "vault_token_ttl_seconds", "Seconds left on exogate's Vault token (absent without Vault)."),
		malformedPauses: d(metrics.Counter, "limiter_malformed_pause_messages_total",
			"Messages on the Redis pause channel that could not be read and were ignored (Redis backend only; counted since the last reload)."),
	}
}

func (c *stateCollector) Describe() []*metrics.Desc {
	return []*metrics.Desc{c.pause, c.backend, c.credInfo, c.credAge, c.credMaxAge, c.prevAccepted, c.refreshErrors, c.vaultTTL, c.malformedPauses}
}

func (c *stateCollector) Collect(w *metrics.Writer) {
	g := c.live()
	for _, b := range []string{"memory", "redis", "local"} {
		v := 0.0
		if g.backend() == b {
			v = 1
		}
		w.Write(c.backend, v, b)
	}
	if g.backend() != "memory" {
		// The accounts' limiter and each capped client's, each on its own
		// channel.
		n := int64(0)
		for _, l := range g.allLimiters() {
			n += l.MalformedMessages()
		}
		w.Write(c.malformedPauses, float64(n))
	}
	for _, a := range g.cfg.Accounts {
		sid := strings.ToLower(a.SID)
		for name := range g.cfg.Limits.Buckets {
			w.Write(c.pause, g.limiter.PauseLeft(sid, name).Seconds(), sid, name)
		}
		if cr := g.store.Current(sid); cr != nil {
			w.Write(c.credInfo, 1, sid, cr.Source(), cr.Version())
			w.Write(c.credAge, time.Since(cr.CreatedAt()).Seconds(), sid)
		}
		prev := 0.0
		if !g.store.PreviousAcceptedAt(sid).IsZero() {
			prev = 1
		}
		w.Write(c.prevAccepted, prev, sid)
		w.Write(c.refreshErrors, float64(g.store.RefreshErrors(sid)), sid)
	}
	w.Write(c.credMaxAge, g.cfg.Rotation.MaxAge.Seconds())
	if exp := g.store.VaultTokenExpiresAt(); !exp.IsZero() {
		w.Write(c.vaultTTL, time.Until(exp).Seconds())
	}
}
