package main

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/exogate/exogate/internal/exotel"
	"github.com/exogate/exogate/internal/h1"
	"github.com/exogate/exogate/internal/metrics"
	"github.com/exogate/exogate/ratelimit"
)

// adminHandler serves the operator's endpoints on the admin listener:
// /metrics, /status, /healthz, /readyz and POST /-/reload.
func adminHandler(live func() *gateway, m *metrics.Metrics, reload func() error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(live().status())
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		g := live()
		switch {
		case g.Draining():
			http.Error(w, "draining", http.StatusServiceUnavailable)
		case !g.store.Ready():
			http.Error(w, "credentials unavailable", http.StatusServiceUnavailable)
		default:
			_, _ = w.Write([]byte("ok\n"))
		}
	})
	mux.HandleFunc("POST /-/reload", func(w http.ResponseWriter, r *http.Request) {
		if reload == nil {
			http.Error(w, "reload needs a configuration file (-config)", http.StatusConflict)
			return
		}
		if err := reload(); err != nil {
			http.Error(w, "reload refused: "+err.Error(), http.StatusBadRequest)
			return
		}
		_, _ = w.Write([]byte("reloaded\n"))
	})
	return mux
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
	Client    string `json:"client"`               // http1 (exogate's own) or net/http
	IdleConns *int   `json:"idle_conns,omitempty"` // keep-alive connections waiting (http1 only)
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

// CredentialStatus is what is known of an account's live credentials.
type CredentialStatus struct {
	Source     string  `json:"source"`
	Version    string  `json:"version,omitempty"`
	AgeSeconds float64 `json:"age_seconds,omitempty"`
	Loaded     bool    `json:"loaded"`
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
		Version:  buildVersion(),
		Ready:    g.Ready(),
		Draining: g.Draining(),
		Limiter:  LimiterStatus{Backend: g.backend()},
	}
	if r, ok := g.limiter.(*ratelimit.Redis); ok {
		st.Limiter.Replicas = r.Replicas()
	}
	st.Upstream.Client = "net/http"
	if t, ok := g.transport.(*h1.Transport); ok {
		n := t.IdleConns()
		st.Upstream.Client, st.Upstream.IdleConns = "http1", &n
	}
	for _, a := range g.cfg.Accounts {
		sid := strings.ToLower(a.SID)
		as := AccountStatus{SID: sid, Region: a.Region, Breakers: map[string]string{}, Buckets: map[string]BucketStatus{}}
		as.Credentials.Source = a.Credentials.Source
		if c := g.store.Current(sid); c != nil {
			as.Credentials.Loaded = true
			as.Credentials.Version = c.Version()
			as.Credentials.AgeSeconds = time.Since(c.LoadedAt()).Round(time.Millisecond).Seconds()
		}
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

// backend names the limiter backend in use: memory, redis, or local.
func (g *gateway) backend() string {
	if r, ok := g.limiter.(*ratelimit.Redis); ok {
		return r.Backend()
	}
	return "memory"
}

// stateCollector reads, at scrape time, what lives in the limiter and the
// credentials store: pauses, the backend, credential versions and ages,
// refresh errors, the Vault token's TTL.
type stateCollector struct {
	live func() *gateway

	pause, backend, credInfo, credAge, refreshErrors, vaultTTL, malformedPauses *metrics.Desc
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
		credAge:       d(metrics.Gauge, "credentials_age_seconds", "Seconds since the live credential was loaded.", "account"),
		refreshErrors: d(metrics.Counter, "credentials_refresh_errors_total", "Failed reads of the account's credential source.", "account"),
		vaultTTL:      d(metrics.Gauge, "vault_token_ttl_seconds", "Seconds left on exogate's Vault token (absent without Vault)."),
		malformedPauses: d(metrics.Counter, "limiter_malformed_pause_messages_total",
			"Messages on the Redis pause channel that could not be read and were ignored (Redis backend only; counted since the last reload)."),
	}
}

func (c *stateCollector) Describe() []*metrics.Desc {
	return []*metrics.Desc{c.pause, c.backend, c.credInfo, c.credAge, c.refreshErrors, c.vaultTTL, c.malformedPauses}
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
	if _, ok := g.limiter.(*ratelimit.Redis); ok {
		// The accounts' limiter and each capped client's, each on its own
		// channel.
		n := int64(0)
		for _, l := range g.allLimiters() {
			if r, ok := l.(*ratelimit.Redis); ok {
				n += r.MalformedMessages()
			}
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
			w.Write(c.credAge, time.Since(cr.LoadedAt()).Seconds(), sid)
		}
		w.Write(c.refreshErrors, float64(g.store.RefreshErrors(sid)), sid)
	}
	if exp := g.store.VaultTokenExpiresAt(); !exp.IsZero() {
		w.Write(c.vaultTTL, time.Until(exp).Seconds())
	}
}
