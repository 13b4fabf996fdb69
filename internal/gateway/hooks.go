package gateway

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/exogate/exogate/internal/config"
	"github.com/exogate/exogate/internal/logx"
	"github.com/exogate/exogate/internal/metrics"
	"github.com/exogate/exogate/proxy"
	"github.com/exogate/exogate/ratelimit"
	"github.com/exogate/exogate/webhooks"
)

// hooks is the callback path of the running gateway: the webhooks service,
// which keeps its store, queue and deliveries across reloads, and the
// listener Exotel calls. It is also the proxy's CallbackResolver.
type hooks struct {
	svc    *webhooks.Service
	routes atomic.Pointer[map[string]config.WebhookRoute]
	log    zerolog.Logger
	redis  io.Closer // the claimer's Redis client; nil without
	srv    *http.Server
	ln     net.Listener
}

// newHooks opens the webhook store and the service. lookup reaches Exotel
// through the gateway's own outbound path.
func newHooks(cfg config.Config, getenv func(string) string, log zerolog.Logger, lookup webhooks.Lookup) (*hooks, error) {
	settings, err := cfg.Webhooks.Settings(getenv, cfg.Breaker)
	if err != nil {
		return nil, err
	}
	h := &hooks{log: log.With().Str("component", "webhooks").Logger()}
	deps := webhooks.Deps{Log: h.log, Lookup: lookup, Replica: replicaName()}
	if cfg.Limits.Backend == "redis" {
		rc, err := redisSettings(cfg.Limits, getenv)
		if err != nil {
			return nil, err
		}
		client := ratelimit.NewRedisClient(rc)
		deps.Claimer, h.redis = webhooks.NewRedisClaimer(client, rc.KeyPrefix+"webhooks:"), client
	}
	h.svc, err = webhooks.Open(cfg.Webhooks.Store.Path, settings, deps)
	if err != nil {
		if h.redis != nil {
			_ = h.redis.Close()
		}
		return nil, fmt.Errorf("webhooks: %w", err)
	}
	h.setRoutes(cfg.Webhooks)
	return h, nil
}

// replicaName labels this process in the Redis claims, for people reading
// them: the host name. The webhooks service adds its store's identity,
// which tells apart two replicas on one host.
func replicaName() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return fmt.Sprintf("pid-%d", os.Getpid())
}

func (h *hooks) setRoutes(w config.Webhooks) {
	m := make(map[string]config.WebhookRoute, len(w.Routes))
	for _, r := range w.Routes {
		m[r.Name] = r
	}
	h.routes.Store(&m)
}

// reconfigure applies a reload's webhooks section. The listener, its TLS
// and the store stay as they are: changing them needs a restart.
func (h *hooks) reconfigure(old, cfg config.Config, getenv func(string) string) error {
	o, w := old.Webhooks, cfg.Webhooks
	switch {
	case w.Listen != o.Listen:
		return fmt.Errorf("webhooks.listen: changing %q to %q needs a restart", o.Listen, w.Listen)
	case w.Store.Path != o.Store.Path:
		return fmt.Errorf("webhooks.store.path: changing %q to %q needs a restart", o.Store.Path, w.Store.Path)
	case w.TLS != o.TLS || w.AllowInsecureHTTP != o.AllowInsecureHTTP:
		return errors.New("webhooks.tls and webhooks.allow_insecure_http: changing them needs a restart (the certificate files are re-read when they change)")
	case (cfg.Limits.Backend == "redis") != (old.Limits.Backend == "redis"):
		return errors.New("limits.backend: with webhooks, changing to or from redis needs a restart (the callbacks' claims live there)")
	}
	settings, err := w.Settings(getenv, cfg.Breaker)
	if err != nil {
		return err
	}
	if err := h.svc.Reconfigure(settings); err != nil {
		return fmt.Errorf("webhooks: %w", err)
	}
	h.setRoutes(w)
	return nil
}

// CallbackURL is the proxy's resolver of exogate://ROUTE: the route must
// exist, belong to account and receive callbacks of kind. Another
// account's route is refused as one that does not exist: a caller learns
// nothing of accounts it may not use.
func (h *hooks) CallbackURL(account, kind, route string) (string, error) {
	r, ok := (*h.routes.Load())[route]
	switch {
	case !ok || !strings.EqualFold(r.Account, account):
		return "", fmt.Errorf("exogate://%s: no webhook route has this name", route)
	case r.Kind != kind:
		return "", fmt.Errorf("exogate://%s: the webhook route receives %s callbacks, not %s", route, r.Kind, kind)
	}
	return h.svc.URL(route)
}

// Expect tells the route of a call the gateway placed; a route without
// reconciliation ignores it.
func (h *hooks) Expect(account, route, sid string) {
	if err := h.svc.Expect(route, sid); err != nil {
		h.log.Warn().Str("route", route).Str("account", account).Str("error", err.Error()).Msg("the placed call will not be reconciled")
	}
}

// start opens the callback listener and starts the deliveries.
func (h *hooks) start(ctx context.Context, cfg config.Config, stop <-chan struct{}, errc chan<- error) error {
	w, log := cfg.Webhooks, h.log
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", w.Listen)
	if err != nil {
		return fmt.Errorf("webhooks listen (webhooks.listen, or -hooks in the sandbox): %w", err)
	}
	scheme := "https"
	if w.TLS.CertFile != "" {
		tlsConf, err := newServerTLS(stop, config.TLS{CertFile: w.TLS.CertFile, KeyFile: w.TLS.KeyFile}, log)
		if err != nil {
			ln.Close()
			return fmt.Errorf("webhooks.tls: %w", err)
		}
		ln = tls.NewListener(ln, tlsConf)
	} else {
		scheme = "http"
		log.Warn().Str("listen", w.Listen).Msg("webhooks.allow_insecure_http: the callback listener speaks plain HTTP; only behind a balancer that terminates TLS")
	}
	if len(w.SourceCIDRs) == 0 {
		log.Warn().Msg("webhooks.source_cidrs is empty: callbacks are accepted from any address (ask Exotel support for its egress ranges)")
	}
	h.srv = &http.Server{
		Handler:           h.svc.Handler(),
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		ReadTimeout:       cfg.Server.ReadTimeout,
		WriteTimeout:      cfg.Server.WriteTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		MaxHeaderBytes:    int(cfg.MaxHeaderBytes),
		ErrorLog:          logx.StdLogger(log, "webhooks"),
	}
	h.srv.DisableGeneralOptionsHandler = true
	h.ln = ln
	go func() { errc <- h.srv.Serve(ln) }()
	h.svc.Start(context.WithoutCancel(ctx))
	routes := make([]string, 0, len(w.Routes))
	for _, r := range w.Routes {
		routes = append(routes, r.Name+"→"+redactedURL(r.Target))
	}
	log.Info().Str("webhooks_addr", ln.Addr().String()).Str("scheme", scheme).Str("public_url", w.PublicURL).
		Str("store", w.Store.Path).Strs("routes", routes).Msg("webhooks listening")
	return nil
}

// redactedURL is u with any password in it masked, for logs.
func redactedURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	return p.Redacted()
}

// close stops the listener (callbacks in flight finish within ctx), then
// the deliveries, and closes the store.
func (h *hooks) close(ctx context.Context) error {
	var errs []error
	if h.srv != nil {
		if err := h.srv.Shutdown(ctx); err != nil {
			_ = h.srv.Close()
			errs = append(errs, fmt.Errorf("webhooks listener: %w", err))
		}
	}
	if err := h.svc.Close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("webhooks: %w", err))
	}
	if h.redis != nil {
		_ = h.redis.Close()
	}
	return errors.Join(errs...)
}

// lookup is the webhooks' view of Exotel's records: GET the call or SMS
// through the live gateway, as the operator (AsOperator): the account's
// credentials, rate limit and breaker apply.
func lookup(serve http.Handler) webhooks.Lookup {
	return func(ctx context.Context, account string, kind webhooks.Kind, sid string) (webhooks.Details, error) {
		path := "/v1/Accounts/" + url.PathEscape(account) + "/Calls/" + url.PathEscape(sid) + ".json"
		if kind == webhooks.KindSMS {
			path = "/v1/Accounts/" + url.PathEscape(account) + "/SMS/Messages/" + url.PathEscape(sid) + ".json"
		}
		req, err := http.NewRequestWithContext(proxy.AsOperator(ctx), http.MethodGet, path, nil)
		if err != nil {
			return webhooks.Details{}, err
		}
		req.RequestURI = path
		rec := &bodyRecorder{statusRecorder: statusRecorder{header: http.Header{}}, max: 1 << 20}
		serve.ServeHTTP(rec, req)
		switch {
		case rec.status == http.StatusNotFound && rec.header.Get(proxy.HeaderError) == "":
			return webhooks.Details{}, webhooks.ErrNotFound
		case rec.status != http.StatusOK:
			return webhooks.Details{}, fmt.Errorf("GET %s: %d %s", redactSid(path, sid), rec.status, rec.header.Get(proxy.HeaderError))
		}
		return parseDetails(kind, rec.body)
	}
}

// redactSid keeps a Sid out of error messages' paths (it is not a secret,
// but it is a customer's call).
func redactSid(path, sid string) string { return strings.Replace(path, sid, "{sid}", 1) }

// parseDetails reads Exotel's v1 JSON record of a call ({"Call":{...}}) or
// an SMS ({"SMSMessage":{...}}).
func parseDetails(kind webhooks.Kind, body []byte) (webhooks.Details, error) {
	var doc map[string]map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		return webhooks.Details{}, fmt.Errorf("Exotel's record: %w", err)
	}
	rec, ok := doc["Call"]
	if kind == webhooks.KindSMS {
		rec, ok = doc["SMSMessage"]
	}
	if !ok {
		return webhooks.Details{}, errors.New("Exotel's record: no Call or SMSMessage object")
	}
	d := webhooks.Details{Fields: make(map[string]string, len(rec))}
	for k, v := range rec {
		switch t := v.(type) {
		case string:
			d.Fields[k] = t
		case float64, bool:
			d.Fields[k] = fmt.Sprint(t)
		}
	}
	d.Sid, d.Status = d.Fields["Sid"], d.Fields["Status"]
	return d, nil
}

// bodyRecorder is a statusRecorder that keeps up to max bytes of the body.
type bodyRecorder struct {
	statusRecorder
	body []byte
	max  int
}

func (r *bodyRecorder) Write(p []byte) (int, error) {
	_, _ = r.statusRecorder.Write(p)
	if room := r.max - len(r.body); room > 0 {
		r.body = append(r.body, p[:min(len(p), room)]...)
	}
	return len(p), nil
}

// hooksAdmin is the callback path's admin handler, nil without webhooks.
func (s *Server) hooksAdmin() http.Handler {
	if s.hooks == nil {
		return nil
	}
	return s.hooks.svc.Admin()
}

// hooksCollector writes the callback path's metrics at scrape time.
type hooksCollector struct {
	svc *webhooks.Service

	received, attempts, delivered, dead, polled, pending, oldest *metrics.Desc
}

func newHooksCollector(svc *webhooks.Service) *hooksCollector {
	d := func(typ metrics.Type, name, help string, labels ...string) *metrics.Desc {
		return metrics.NewDesc(typ, "exogate_webhooks_"+name, help, labels...)
	}
	return &hooksCollector{
		svc:       svc,
		received:  d(metrics.Counter, "received_total", "Callbacks received, by outcome: accepted, duplicate, variant, or the refusal's reason (method, source, token, size, payload, store).", "outcome"),
		attempts:  d(metrics.Counter, "delivery_attempts_total", "Delivery attempts by result: delivered, failed, timeout, gone, breaker_open, forged, claimed.", "result"),
		delivered: d(metrics.Counter, "delivered_total", "Callbacks delivered to their route's target."),
		dead:      d(metrics.Counter, "dead_total", "Callbacks given up on (max_age passed, 410 Gone, or forged); replay them from the admin listener."),
		polled:    d(metrics.Counter, "polled_total", "Synthetic terminal callbacks made by reconciliation from Exotel's call details."),
		pending:   d(metrics.Gauge, "pending", "Callbacks waiting for delivery, per route.", "route"),
		oldest:    d(metrics.Gauge, "oldest_pending_age_seconds", "Age of the oldest callback waiting for delivery, per route (0 when none waits).", "route"),
	}
}

func (c *hooksCollector) Describe() []*metrics.Desc {
	return []*metrics.Desc{c.received, c.attempts, c.delivered, c.dead, c.polled, c.pending, c.oldest}
}

func (c *hooksCollector) Collect(w *metrics.Writer) {
	n := c.svc.Counters()
	for k, v := range n.Received {
		w.Write(c.received, float64(v), k)
	}
	for k, v := range n.Attempts {
		w.Write(c.attempts, float64(v), k)
	}
	w.Write(c.delivered, float64(n.Delivered))
	w.Write(c.dead, float64(n.Dead))
	w.Write(c.polled, float64(n.Polled))
	st, err := c.svc.Stats()
	if err != nil {
		return
	}
	now := time.Now()
	for route, rs := range st {
		w.Write(c.pending, float64(rs.Pending), route)
		age := 0.0
		if rs.Pending > 0 && !rs.OldestPending.IsZero() {
			age = max(now.Sub(rs.OldestPending), 0).Seconds()
		}
		w.Write(c.oldest, age, route)
	}
}
