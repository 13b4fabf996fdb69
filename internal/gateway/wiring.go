package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/exogate/exogate/credentials"
	"github.com/exogate/exogate/internal/callers"
	"github.com/exogate/exogate/internal/config"
	"github.com/exogate/exogate/internal/metrics"
	"github.com/exogate/exogate/proxy"
	"github.com/exogate/exogate/ratelimit"
)

// NewLogger is the gateway's logger: zerolog at the configured level, JSON
// or console lines on w.
func NewLogger(c config.Log, w io.Writer) (zerolog.Logger, error) {
	level, err := zerolog.ParseLevel(c.Level)
	if err != nil {
		return zerolog.Logger{}, fmt.Errorf("log.level: %w", err)
	}
	if c.Format == "console" {
		w = zerolog.ConsoleWriter{Out: w, NoColor: true, TimeFormat: time.RFC3339}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger(), nil
}

// gateway is the wired program: the handler and what it needs started and
// stopped.
type gateway struct {
	*proxy.Handler
	cfg     config.Config
	store   *credentials.Store
	limiter limiter
	clients clientLimiters
	// transport carries the gateway's upstream connections.
	transport *http.Transport
	// warmRoots: an upstream is https and no ca_file loaded the system roots
	// up front.
	warmRoots bool
	log       zerolog.Logger
	version   string
	// cancel ends the background work start began; close calls it.
	cancel context.CancelFunc
	// refreshes paces POST /-/refresh per account.
	refreshes *refreshPacer
}

// clientLimiters holds each client with a share or a max_per_period to its
// own cap, per account bucket, before the account's limit. Clients without
// either have no entry.
type clientLimiters map[string]limiter

// Admit implements proxy.ClientLimiter.
func (c clientLimiters) Admit(ctx context.Context, client, account, bucket string) (time.Duration, error) {
	l, ok := c[client]
	if !ok {
		return 0, nil
	}
	return l.Admit(ctx, account, bucket)
}

// newClientLimiters builds one limiter per capped client, on the same
// backend as the accounts' (its keys under key_prefix + "client:<id>:"),
// each bucket capped by ratelimit.ClientCap.
func newClientLimiters(cfg config.Config, sids []string, getenv func(string) string, log zerolog.Logger, prev *gateway) (clientLimiters, error) {
	totalShare := 0
	for _, c := range cfg.Clients {
		totalShare += c.Share
	}
	out := clientLimiters{}
	for _, c := range cfg.Clients {
		if c.Share == 0 && c.MaxPerPeriod == 0 {
			continue
		}
		rules := map[string]ratelimit.Rule{}
		for name, r := range cfg.Limits.Buckets {
			capRule := ratelimit.ClientCap(r.RateLimit(), c.Share, totalShare, c.MaxPerPeriod)
			if capRule.Limit > 0 {
				rules[name] = capRule
			}
		}
		accts := sids
		if !slices.Contains(c.Accounts, "*") {
			accts = nil
			for _, a := range c.Accounts {
				accts = append(accts, strings.ToLower(a))
			}
		}
		l := cfg.Limits
		l.Account = config.Rule{}
		l.Redis.KeyPrefix += "client:" + c.ID + ":"
		var old limiter
		if prev != nil {
			old = prev.clients[c.ID]
		}
		lim, err := newLimiter(l, accts, rules, getenv, log, old)
		if err != nil {
			return nil, fmt.Errorf("clients: %s: %w", c.ID, err)
		}
		out[c.ID] = lim
	}
	return out, nil
}

// start begins the background work: credentials loading and refresh, and
// the shared limiter's heartbeats (publishing adminURL) and pause
// subscription. It runs until close.
func (g *gateway) start(adminURL string) {
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	if r, ok := g.limiter.(*ratelimit.Redis); ok {
		r.SetAdminURL(adminURL)
	}
	g.store.Start(ctx)
	for _, l := range g.allLimiters() {
		l.Start(ctx)
	}
}

func (g *gateway) allLimiters() []limiter {
	ls := []limiter{g.limiter}
	for _, l := range g.clients {
		ls = append(ls, l)
	}
	return ls
}

// close stops the background work and revokes exogate's own Vault token.
func (g *gateway) close(ctx context.Context) error {
	var errs []error
	for _, l := range g.allLimiters() {
		errs = append(errs, l.Close())
	}
	errs = append(errs, g.store.Close(ctx))
	if g.cancel != nil {
		g.cancel()
	}
	g.transport.CloseIdleConnections()
	return errors.Join(errs...)
}

// shared is what every gateway of a Server uses, across reloads.
type shared struct {
	callbacks proxy.CallbackResolver // fills in exogate:// callback URLs (nil: no webhooks)
	idem      *proxy.Idempotency
}

// newGateway builds the credentials store, the limiter, the upstream
// transport and the handler from a validated configuration.
func newGateway(cfg config.Config, getenv func(string) string, log zerolog.Logger, m *metrics.Metrics, version string, prev *gateway, sh shared) (*gateway, error) {
	store, err := newStore(cfg, getenv, log, prev)
	if err != nil {
		return nil, err
	}
	buckets := make(map[string]ratelimit.Rule, len(cfg.Limits.Buckets))
	for name, r := range cfg.Limits.Buckets {
		buckets[name] = r.RateLimit()
	}
	var prevLimiter limiter
	if prev != nil {
		prevLimiter = prev.limiter
	}
	sids := accountSIDs(cfg)
	limiter, err := newLimiter(cfg.Limits, sids, buckets, getenv, log, prevLimiter)
	if err != nil {
		return nil, err
	}
	clientLims, err := newClientLimiters(cfg, sids, getenv, log, prev)
	if err != nil {
		return nil, err
	}
	ident, err := newIdentifier(cfg)
	if err != nil {
		return nil, err
	}
	warnUpstream(cfg.Upstream, log, prev)
	accounts, upstreams, err := upstreamAccounts(cfg)
	if err != nil {
		return nil, err
	}
	transport, err := newTransport(cfg.Upstream)
	if err != nil {
		return nil, err
	}
	h, err := proxy.New(proxy.Config{
		Callbacks:     sh.callbacks,
		Idempotency:   sh.idem,
		Accounts:      accounts,
		Authorizer:    store,
		Limiter:       limiter,
		RetryWait:     retryWait(cfg.Limits.MaxWait),
		Transport:     transport,
		Breaker:       cfg.Breaker.Proxy(),
		MaxBody:       int64(cfg.MaxBody),
		Logger:        log,
		Metrics:       m,
		Previous:      prevHandler(prev),
		Callers:       ident,
		ClientLimiter: clientLims,
		MaxWait:       cfg.Limits.MaxWait,
		MaxInFlight:   cfg.MaxInFlight,
		WriteTimeout:  cfg.Server.WriteTimeout,
	})
	if err != nil {
		return nil, err
	}
	gw := &gateway{Handler: h, cfg: cfg, store: store, limiter: limiter, clients: clientLims, transport: transport, log: log, version: version,
		refreshes: &refreshPacer{every: cfg.Rotation.MinForcedRefresh}}
	for _, u := range upstreams {
		gw.warmRoots = gw.warmRoots || (u.Scheme == "https" && cfg.Upstream.CAFile == "")
	}
	return gw, nil
}

// accountSIDs is the configured accounts' SIDs, in lower case.
func accountSIDs(cfg config.Config) []string {
	sids := make([]string, 0, len(cfg.Accounts))
	for _, a := range cfg.Accounts {
		sids = append(sids, strings.ToLower(a.SID))
	}
	return sids
}

// newStore builds the credentials store of every account; on a reload,
// prev's store hands on the credentials of unchanged accounts and its
// Vault session.
func newStore(cfg config.Config, getenv func(string) string, log zerolog.Logger, prev *gateway) (*credentials.Store, error) {
	specs := make([]credentials.Spec, 0, len(cfg.Accounts))
	for _, a := range cfg.Accounts {
		specs = append(specs, credentialSpec(a))
	}
	return credentials.New(credentials.Config{
		Accounts:         specs,
		Vault:            vaultConfig(cfg.Vault),
		RefreshInterval:  cfg.Vault.RefreshInterval,
		FilePollInterval: cfg.Rotation.FilePollInterval,
		PreviousGrace:    cfg.Rotation.PreviousGrace,
		MinForcedRefresh: cfg.Rotation.MinForcedRefresh,
		ReauthorizeWait:  cfg.Rotation.ReauthorizeWait,
		Getenv:           getenv,
		Logger:           log,
		Previous:         prevStore(prev),
	})
}

// credentialSpec says where account a's credentials come from.
func credentialSpec(a config.Account) credentials.Spec {
	cr := a.Credentials
	spec := credentials.Spec{
		Account:      strings.ToLower(a.SID),
		Source:       cr.Source,
		APIKeyEnv:    cr.APIKeyEnv,
		APITokenEnv:  cr.APITokenEnv,
		APIKeyFile:   cr.APIKeyFile,
		APITokenFile: cr.APITokenFile,
	}
	if cr.Vault != nil {
		spec.Vault = cr.Vault.Credentials()
	}
	return spec
}

// vaultConfig maps the vault section.
func vaultConfig(v config.Vault) credentials.VaultConfig {
	return credentials.VaultConfig{
		Address:       v.Address,
		CAFile:        v.CAFile,
		Namespace:     v.Namespace,
		Timeout:       v.Timeout,
		Auth:          v.Auth.Credentials(),
		AllowInsecure: v.AllowInsecure,
	}
}

// PublisherFor returns the writer of account sid's credentials source as
// cfg configures it, writing to Vault with the operator's vaultToken.
func PublisherFor(cfg config.Config, sid, vaultToken string, getenv func(string) string) (*credentials.Publisher, error) {
	for _, a := range cfg.Accounts {
		if strings.EqualFold(a.SID, sid) {
			return credentials.NewPublisher(credentials.PublishConfig{
				Spec: credentialSpec(a), Vault: vaultConfig(cfg.Vault), VaultToken: vaultToken, Getenv: getenv,
			})
		}
	}
	return nil, fmt.Errorf("the configuration has no account %q", sid)
}

// newIdentifier is who may call and what they may do: nil (every caller
// anonymous and unrestricted) without clients and without auth.anonymous.
func newIdentifier(cfg config.Config) (proxy.Identifier, error) {
	if len(cfg.Clients) == 0 && cfg.Auth.Anonymous == nil {
		return nil, nil
	}
	cc := callers.Config{AllowAnonymous: cfg.Auth.AllowAnonymous}
	if a := cfg.Auth.Anonymous; a != nil {
		cc.Anonymous = &callers.Rights{Accounts: a.Accounts, Buckets: a.Buckets, Methods: a.Methods, Operations: a.Operations}
	}
	for _, c := range cfg.Clients {
		cc.Clients = append(cc.Clients, callers.ClientConfig{ID: c.ID, SecretSHA256: c.SecretSHA256, CertIdentity: c.CertIdentity,
			Rights: callers.Rights{Accounts: c.Accounts, Buckets: c.Buckets, Methods: c.Methods, Operations: c.Operations}})
	}
	cs, err := callers.New(cc)
	if err != nil {
		return nil, fmt.Errorf("clients: %w", err)
	}
	return cs, nil
}

// warnUpstream logs the upstream settings an operator should know about:
// plain-http upstreams allowed, and upstream.client, which has no effect
// (once, not again on a reload that keeps it).
func warnUpstream(u config.Upstream, log zerolog.Logger, prev *gateway) {
	if u.AllowInsecureHTTP {
		log.Warn().Msg("upstream.allow_insecure_http is on: plain-http upstreams are accepted; never use this in production")
	}
	if c := u.Client; c != "net/http" && (prev == nil || prev.cfg.Upstream.Client != c) {
		log.Warn().Str("client", c).Msg("upstream.client has no effect: Go's http.Transport is the only upstream client; remove the setting")
	}
}

// upstreamAccounts is each account with its region's two base URLs, and
// every upstream URL.
func upstreamAccounts(cfg config.Config) ([]proxy.Account, []*url.URL, error) {
	accounts := make([]proxy.Account, 0, len(cfg.Accounts))
	var upstreams []*url.URL
	for _, a := range cfg.Accounts {
		hosts := cfg.Upstream.Regions[a.Region]
		api, err := url.Parse(hosts.API)
		if err != nil {
			return nil, nil, fmt.Errorf("upstream.regions.%s.api: %w", a.Region, err)
		}
		ccm, err := url.Parse(hosts.CCM)
		if err != nil {
			return nil, nil, fmt.Errorf("upstream.regions.%s.ccm: %w", a.Region, err)
		}
		accounts = append(accounts, proxy.Account{SID: a.SID, API: api, CCM: ccm})
		upstreams = append(upstreams, api, ccm)
	}
	return accounts, upstreams, nil
}

func prevStore(g *gateway) *credentials.Store {
	if g == nil {
		return nil
	}
	return g.store
}

func prevHandler(g *gateway) *proxy.Handler {
	if g == nil {
		return nil
	}
	return g.Handler
}

// retryWait is how long a request may wait out Exotel's 429 before its one
// retry: as long as it may wait for the limiter; never when it may not wait.
func retryWait(maxWait time.Duration) time.Duration {
	if maxWait <= 0 {
		return -1
	}
	return maxWait
}

// limiter is what the gateway needs of either limiter backend.
type limiter interface {
	proxy.Limiter
	proxy.Pauser
	PauseLeft(account, bucket string) time.Duration
	// Start begins the background work (Redis: heartbeats and the pause
	// subscription) until ctx ends or Close.
	Start(ctx context.Context)
	Close() error
	Backend() string // memory, redis, or local (Redis unavailable)
	Replicas() int   // 0 when unknown
	MalformedMessages() int64
}

// newLimiter builds the in-memory limiter, or the Redis one shared by every
// replica. On a reload, prev is the limiter being replaced: an in-memory one
// hands its state on (Redis keeps its own).
func newLimiter(l config.Limits, sids []string, buckets map[string]ratelimit.Rule, getenv func(string) string, log zerolog.Logger, prev limiter) (limiter, error) {
	rc := ratelimit.Config{
		MaxWait: l.MaxWait,
		Buckets: buckets,
		Account: l.Account.RateLimit(),
	}
	if l.Backend != "redis" {
		var (
			m   *ratelimit.Memory
			err error
		)
		if old, ok := prev.(*ratelimit.Memory); ok {
			m, err = old.Reconfigured(sids, rc)
		} else {
			m, err = ratelimit.NewMemory(sids, rc)
		}
		if err != nil {
			return nil, fmt.Errorf("limits: %w", err)
		}
		return m, nil
	}
	redisCfg, err := redisSettings(l, getenv)
	if err != nil {
		return nil, err
	}
	redisCfg.Logger = log
	red, err := ratelimit.NewRedis(sids, rc, redisCfg)
	if err != nil {
		return nil, fmt.Errorf("limits: %w", err)
	}
	return red, nil
}

// redisSettings is the limits.redis section as ratelimit takes it, with
// the credentials read from the environment.
func redisSettings(l config.Limits, getenv func(string) string) (ratelimit.RedisConfig, error) {
	r := l.Redis
	var tlsConf *tls.Config
	if r.TLS {
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
		if r.CAFile != "" {
			pool, err := caPool(r.CAFile, true)
			if err != nil {
				return ratelimit.RedisConfig{}, fmt.Errorf("limits.redis.ca_file: %w", err)
			}
			tlsConf.RootCAs = pool
		}
	}
	var user, pass string
	if r.UsernameEnv != "" {
		user = getenv(r.UsernameEnv)
	}
	if r.PasswordEnv != "" {
		pass = getenv(r.PasswordEnv)
	}
	return ratelimit.RedisConfig{
		Addr:      r.Address,
		Username:  user,
		Password:  pass,
		DB:        r.DB,
		TLS:       tlsConf,
		KeyPrefix: r.KeyPrefix,
		Timeout:   r.Timeout,
		OnFailure: l.OnBackendFailure,
		Replicas:  l.Replicas,
	}, nil
}

// newTransport is the upstream transport, Go's http.Transport: HTTPS with
// the system roots plus upstream.ca_file, bounded dial, handshake and
// response-header times, a keep-alive pool sized for a busy gateway, and
// HTTPS_PROXY/HTTP_PROXY honoured. It speaks HTTP/1.1 only and never resends
// a request that could act twice.
//
// Without upstream.ca_file the system roots are left for crypto/x509 to load
// at the first TLS handshake (parsing them is most of a cold start); a
// gateway with https upstreams loads them in the background once serving
// (gateway.warmRoots).
func newTransport(u config.Upstream) (*http.Transport, error) {
	var roots *x509.CertPool
	if u.CAFile != "" {
		pool, err := caPool(u.CAFile, true)
		if err != nil {
			return nil, fmt.Errorf("upstream.ca_file: %w", err)
		}
		roots = pool
	}
	dialer := &net.Dialer{Timeout: u.DialTimeout, KeepAlive: 30 * time.Second}
	// HTTP/1.1 only: Go's HTTP/2 client may send a request again after a
	// stream reset or GOAWAY when it thinks no byte of it was processed,
	// bodiless POSTs included, and a call must never be placed twice.
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	return &http.Transport{
		Protocols:             &protocols,
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   u.TLSHandshakeTimeout,
		ResponseHeaderTimeout: u.Timeout,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          4 * u.MaxIdleConnsPerHost,
		MaxIdleConnsPerHost:   u.MaxIdleConnsPerHost,
		IdleConnTimeout:       u.IdleConnTimeout,
	}, nil
}

// newServerTLS is the listener's TLS: the certificate and key are re-read
// when their files change (checked every few seconds, so a renewed
// certificate needs no restart), and a client CA turns on mTLS: a verified
// client certificate identifies the caller; callers without one may still
// use HTTP Basic.
func newServerTLS(stop <-chan struct{}, c config.TLS, log zerolog.Logger) (*tls.Config, error) {
	load := func() (*tls.Certificate, error) {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		return &cert, nil
	}
	first, err := load()
	if err != nil {
		return nil, err
	}
	var cur atomic.Pointer[tls.Certificate]
	cur.Store(first)
	stamp := func() string {
		var b strings.Builder
		for _, f := range []string{c.CertFile, c.KeyFile} {
			if st, err := os.Stat(f); err == nil {
				fmt.Fprint(&b, st.ModTime().UnixNano(), st.Size(), ";")
			}
		}
		return b.String()
	}
	go func() {
		last := stamp()
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if now := stamp(); now != last {
				last = now
				if cert, err := load(); err != nil {
					log.Error().Str("error", err.Error()).Msg("tls: new certificate not loaded; keeping the current one")
				} else {
					cur.Store(cert)
					log.Info().Str("cert_file", c.CertFile).Msg("tls: certificate reloaded")
				}
			}
		}
	}()
	conf := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cur.Load(), nil },
	}
	if c.ClientCAFile != "" {
		// Only the named CA: the system's public roots must not vouch
		// for a caller.
		pool, err := caPool(c.ClientCAFile, false)
		if err != nil {
			return nil, fmt.Errorf("tls.client_ca_file: %w", err)
		}
		conf.ClientCAs, conf.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return conf, nil
}

// caPool is the certificates of the PEM file, added to the system roots
// when withSystem is set (a verifier of servers), alone otherwise (a
// verifier of callers). A file without a certificate is an error.
func caPool(file string, withSystem bool) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var pool *x509.CertPool
	if withSystem {
		pool, _ = x509.SystemCertPool()
	}
	if pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}
