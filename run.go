package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/exogate/exogate/credentials"
	"github.com/exogate/exogate/internal/callers"
	"github.com/exogate/exogate/internal/config"
	"github.com/exogate/exogate/internal/h1"
	"github.com/exogate/exogate/internal/logx"
	"github.com/exogate/exogate/internal/metrics"
	"github.com/exogate/exogate/proxy"
	"github.com/exogate/exogate/ratelimit"
)

// version is set at link time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

const usage = `exogate: an authenticating gateway for the Exotel API

Usage:
  exogate [serve] [-config FILE] [-listen ADDR]   run the gateway
  exogate check   [-config FILE]                  test every account's credentials against Exotel
  exogate health  [-config FILE] [-url URL]       exit 0 when the running gateway is ready (for HEALTHCHECK)
  exogate hash-secret < secret                    print the secret_sha256 of a client secret read from stdin
  exogate version                                 print the version

Without -config, one account is served from the environment:
  EXOTEL_API_KEY, EXOTEL_API_TOKEN, EXOTEL_ACCOUNT_SID (required), EXOTEL_REGION (singapore | mumbai).
EXOGATE_LISTEN overrides the listen address in both modes.
`

// run is the whole program: it reads flags, the environment and the config
// file, wires the gateway and serves until ctx ends or SIGINT/SIGTERM.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd, rest := "serve", args[1:]
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		cmd, rest = rest[0], rest[1:]
	}
	switch cmd {
	case "version":
		_, err := fmt.Fprintf(stdout, "exogate %s\n", buildVersion())
		return err
	case "help":
		_, err := io.WriteString(stdout, usage)
		return err
	case "health":
		return health(ctx, rest, getenv, stdout, stderr)
	case "hash-secret":
		return hashSecret(os.Stdin, stdout)
	case "serve", "check":
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}

	fs := flag.NewFlagSet("exogate "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file (YAML); without it, one account from EXOTEL_* variables")
	listen := fs.String("listen", "", "listen address, overriding the file and EXOGATE_LISTEN")
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	load := func() (config.Config, error) {
		cfg, err := loadConfig(*configPath, getenv)
		if err != nil {
			return config.Config{}, err
		}
		if *listen != "" {
			cfg.Listen = *listen
		}
		if err := cfg.Validate(); err != nil {
			return config.Config{}, fmt.Errorf("invalid configuration:\n%w", err)
		}
		return cfg, nil
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	m := metrics.New(buildVersion())
	if cmd == "check" {
		// The credential test is the operator's, not a caller's: it goes
		// through the limiter, breaker and transport of live traffic, but
		// no caller's identity or rights apply to it.
		ccfg := cfg
		ccfg.Clients, ccfg.Auth.Anonymous = nil, nil
		gw, err := newGateway(ccfg, getenv, log, m, nil)
		if err != nil {
			return err
		}
		return check(ctx, cfg, gw, stdout)
	}
	gw, err := newGateway(cfg, getenv, log, m, nil)
	if err != nil {
		return err
	}
	s := &server{getenv: getenv, stderr: stderr, metrics: m, log: log}
	s.live.Store(gw)
	if *configPath != "" {
		s.load = load
	}
	return s.serve(ctx)
}

// server is the running gateway and what a reload needs to replace it.
type server struct {
	live    atomic.Pointer[gateway]
	load    func() (config.Config, error) // nil: no file to reload
	getenv  func(string) string
	stderr  io.Writer
	metrics *metrics.Metrics
	log     zerolog.Logger // the first gateway's logger, for the server's own lines

	mu sync.Mutex // serializes reloads and the shutdown
	// closing counts the replaced gateways whose background work is still
	// to be stopped; serve waits for them before it returns.
	closing sync.WaitGroup
}

// ServeHTTP hands each request to the gateway live when it arrives; a
// request keeps the gateway it started on until it ends.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.live.Load().ServeHTTP(w, r)
}

// reload re-reads the configuration file and swaps a new gateway in
// atomically. Accounts, limits, breaker settings, log level and credential
// sources change; limiter and breaker state and loaded credentials of
// unchanged accounts carry over; requests in flight finish on the old
// gateway. Listen addresses need a restart and are refused. On any error the
// old configuration keeps serving. bg is the background work's context:
// it ends when serve returns, and the replaced gateway is closed then at
// the latest.
func (s *server) reload(bg context.Context) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.live.Load()
	defer func() {
		s.metrics.Reload(err == nil)
		if err != nil {
			old.log.Error().Str("error", err.Error()).Msg("reload refused; the running configuration keeps serving")
		}
	}()
	if s.load == nil {
		return errors.New("no configuration file to reload (started from environment variables)")
	}
	if old.Draining() {
		return errors.New("shutting down")
	}
	cfg, err := s.load()
	if err != nil {
		return err
	}
	if cfg.Listen != old.cfg.Listen {
		return fmt.Errorf("listen: changing %s to %s needs a restart", old.cfg.Listen, cfg.Listen)
	}
	if cfg.Server != old.cfg.Server {
		return errors.New("server: changing the listener's timeouts or max_connections needs a restart")
	}
	if cfg.Admin.Listen != old.cfg.Admin.Listen {
		return fmt.Errorf("admin.listen: changing %q to %q needs a restart", old.cfg.Admin.Listen, cfg.Admin.Listen)
	}
	if cfg.Admin.Listen != "" && cfg.Admin.TokenFile != "" {
		// A token file the new configuration names must be usable before
		// it guards the admin listener.
		if _, err := readAdminToken(cfg.Admin.TokenFile); err != nil {
			return err
		}
	}
	log, err := newLogger(cfg.Log, s.stderr)
	if err != nil {
		return err
	}
	gw, err := newGateway(cfg, s.getenv, log, s.metrics, old)
	if err != nil {
		return err
	}
	gw.start(bg)
	s.live.Store(gw)
	sids := make([]string, 0, len(cfg.Accounts))
	for _, a := range cfg.Accounts {
		sids = append(sids, strings.ToLower(a.SID)+"@"+a.Region)
	}
	log.Info().Strs("accounts", sids).Msg("configuration reloaded")
	// The old gateway's requests may still be in flight: stop its background
	// work once they have had the time a shutdown would give them.
	s.closing.Add(1)
	go func() {
		defer s.closing.Done()
		t := time.NewTimer(old.cfg.ShutdownTimeout)
		defer t.Stop()
		select {
		case <-t.C:
		case <-bg.Done():
		}
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = old.close(cctx)
	}()
	return nil
}

// minSecretLen is the shortest client secret hash-secret accepts: 32
// random characters of hex carry 128 bits, of base64 192.
const minSecretLen = 32

// hashSecret reads a client secret (one line, from stdin so that it stays
// out of the shell history and the process list) and prints the hex
// SHA-256 that goes into clients[].secret_sha256.
func hashSecret(in io.Reader, stdout io.Writer) error {
	line, err := bufio.NewReader(io.LimitReader(in, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("hash-secret: %w", err)
	}
	secret := strings.TrimRight(line, "\r\n")
	if len(secret) < minSecretLen {
		return fmt.Errorf("hash-secret: the secret is %d characters, at least %d are needed: generate one with `openssl rand -base64 32` or `head -c 32 /dev/urandom | base64`", len(secret), minSecretLen)
	}
	_, err = fmt.Fprintln(stdout, callers.HashSecret(secret))
	return err
}

// health asks a running gateway's /readyz (on the admin listener, else the
// main one) and succeeds only on 200: the container HEALTHCHECK, which needs
// no shell or curl in the image.
func health(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("exogate health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file, to find the admin address")
	url := fs.String("url", "", "readiness URL (default: /readyz on the configured admin or main listener)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *url == "" {
		cfg := config.Default()
		if *configPath != "" {
			if c, err := config.Load(*configPath); err == nil {
				cfg = c
			}
		}
		cfg.ApplyEnv(getenv)
		addr := cfg.Admin.Listen
		if addr == "" {
			addr = cfg.Listen
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return fmt.Errorf("health: %q is not host:port", addr)
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		*url = "http://" + net.JoinHostPort(host, port) + "/readyz"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: not ready: %d %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	_, err = fmt.Fprintf(stdout, "ready\n")
	return err
}

func loadConfig(path string, getenv func(string) string) (config.Config, error) {
	var (
		cfg config.Config
		err error
	)
	if path != "" {
		cfg, err = config.Load(path)
	} else {
		cfg, err = config.FromEnv(getenv)
	}
	if err != nil {
		return config.Config{}, err
	}
	cfg.ApplyEnv(getenv)
	return cfg, nil
}

func newLogger(c config.Log, w io.Writer) (zerolog.Logger, error) {
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
	transport roundTripper
	// warmRoots: an upstream is https and no ca_file loaded the system roots
	// up front.
	warmRoots bool
	log       zerolog.Logger
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
// backend as the accounts' (its keys under key_prefix + "client:<id>:").
// A client's cap in a bucket is max_per_period, and with share set its
// fraction share/Σshares of the bucket's limit, whichever is lower.
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
			if r.Limit == 0 {
				continue
			}
			capN := c.MaxPerPeriod
			if c.Share > 0 {
				byShare := max(1, r.Limit*c.Share/totalShare)
				if capN == 0 || byShare < capN {
					capN = byShare
				}
			}
			if capN >= r.Limit {
				continue // the account's own limit binds first
			}
			rules[name] = ratelimit.CapRule(capN, r.Period)
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
// the shared limiter's heartbeats and pause subscription.
func (g *gateway) start(ctx context.Context) {
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
	g.transport.CloseIdleConnections()
	return errors.Join(errs...)
}

// newGateway builds the credentials store, the limiter, the upstream
// transport and the handler from a validated configuration.
func newGateway(cfg config.Config, getenv func(string) string, log zerolog.Logger, m *metrics.Metrics, prev *gateway) (*gateway, error) {
	specs := make([]credentials.Spec, 0, len(cfg.Accounts))
	sids := make([]string, 0, len(cfg.Accounts))
	for _, a := range cfg.Accounts {
		sid := strings.ToLower(a.SID)
		sids = append(sids, sid)
		cr := a.Credentials
		spec := credentials.Spec{
			Account:      sid,
			Source:       cr.Source,
			APIKeyEnv:    cr.APIKeyEnv,
			APITokenEnv:  cr.APITokenEnv,
			APIKeyFile:   cr.APIKeyFile,
			APITokenFile: cr.APITokenFile,
		}
		if cr.Vault != nil {
			spec.Vault = cr.Vault.Credentials()
		}
		specs = append(specs, spec)
	}
	v := cfg.Vault
	store, err := credentials.New(credentials.Config{
		Accounts: specs,
		Vault: credentials.VaultConfig{
			Address:       v.Address,
			CAFile:        v.CAFile,
			Namespace:     v.Namespace,
			Timeout:       v.Timeout,
			Auth:          v.Auth.Credentials(),
			AllowInsecure: v.AllowInsecure,
		},
		RefreshInterval:  v.RefreshInterval,
		FilePollInterval: cfg.Rotation.FilePollInterval,
		PreviousGrace:    cfg.Rotation.PreviousGrace,
		MinForcedRefresh: cfg.Rotation.MinForcedRefresh,
		ReauthorizeWait:  cfg.Rotation.ReauthorizeWait,
		Getenv:           getenv,
		Logger:           log,
		Previous:         prevStore(prev),
	})
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
	limiter, err := newLimiter(cfg.Limits, sids, buckets, getenv, log, prevLimiter)
	if err != nil {
		return nil, err
	}

	clientLims, err := newClientLimiters(cfg, sids, getenv, log, prev)
	if err != nil {
		return nil, err
	}
	var ident proxy.Identifier
	if len(cfg.Clients) > 0 || cfg.Auth.Anonymous != nil {
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
		ident = cs
	}

	if cfg.Upstream.AllowInsecureHTTP {
		log.Warn().Msg("upstream.allow_insecure_http is on: plain-http upstreams are accepted; never use this in production")
	}

	accounts := make([]proxy.Account, 0, len(cfg.Accounts))
	var upstreams []*url.URL
	for _, a := range cfg.Accounts {
		hosts := cfg.Upstream.Regions[a.Region]
		api, err := url.Parse(hosts.API)
		if err != nil {
			return nil, fmt.Errorf("upstream.regions.%s.api: %w", a.Region, err)
		}
		ccm, err := url.Parse(hosts.CCM)
		if err != nil {
			return nil, fmt.Errorf("upstream.regions.%s.ccm: %w", a.Region, err)
		}
		accounts = append(accounts, proxy.Account{SID: a.SID, API: api, CCM: ccm})
		upstreams = append(upstreams, api, ccm)
	}
	transport, err := newTransport(cfg.Upstream, upstreams, log)
	if err != nil {
		return nil, err
	}
	b := cfg.Breaker
	h, err := proxy.New(proxy.Config{
		Accounts:   accounts,
		Authorizer: store,
		Limiter:    limiter,
		RetryWait:  retryWait(cfg.Limits.MaxWait),
		Transport:  transport,
		Breaker: proxy.BreakerSettings{
			ConsecutiveFailures: b.ConsecutiveFailures,
			FailureRatio:        b.FailureRatio,
			MinRequests:         b.MinRequests,
			Interval:            b.Interval,
			OpenFor:             b.OpenFor,
			HalfOpenRequests:    b.HalfOpenRequests,
		},
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
	gw := &gateway{Handler: h, cfg: cfg, store: store, limiter: limiter, clients: clientLims, transport: transport, log: log}
	for _, u := range upstreams {
		gw.warmRoots = gw.warmRoots || (u.Scheme == "https" && cfg.Upstream.CAFile == "")
	}
	return gw, nil
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
	r := l.Redis
	var tlsConf *tls.Config
	if r.TLS {
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
		if r.CAFile != "" {
			pool, err := caPool(r.CAFile, true)
			if err != nil {
				return nil, fmt.Errorf("limits.redis.ca_file: %w", err)
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
	ratelimit.RouteRedisLogs(log)
	red, err := ratelimit.NewRedis(sids, rc, ratelimit.RedisConfig{
		Addr:      r.Address,
		Username:  user,
		Password:  pass,
		DB:        r.DB,
		TLS:       tlsConf,
		KeyPrefix: r.KeyPrefix,
		Timeout:   r.Timeout,
		OnFailure: l.OnBackendFailure,
		Replicas:  l.Replicas,
		Logger:    log,
	})
	if err != nil {
		return nil, fmt.Errorf("limits: %w", err)
	}
	return red, nil
}

// newTransport is the upstream transport: HTTPS with the system roots plus
// upstream.ca_file, bounded dial, handshake and response-header times, and a
// keep-alive pool sized for a busy gateway. It never resends a request that
// could act twice. upstream.client picks exogate's HTTP/1.1 client (h1) or
// Go's http.Transport; h1 does not speak to proxies, so when HTTPS_PROXY or
// HTTP_PROXY applies to one of the upstreams, http.Transport is used.
//
// Without upstream.ca_file the system roots are left for crypto/x509 to load
// at the first TLS handshake (parsing them is most of a cold start); a
// gateway with https upstreams loads them in the background once serving
// (gateway.warmRoots).
func newTransport(u config.Upstream, upstreams []*url.URL, log zerolog.Logger) (roundTripper, error) {
	var roots *x509.CertPool
	if u.CAFile != "" {
		pool, err := caPool(u.CAFile, true)
		if err != nil {
			return nil, fmt.Errorf("upstream.ca_file: %w", err)
		}
		roots = pool
	}
	tlsConf := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	dialer := &net.Dialer{Timeout: u.DialTimeout, KeepAlive: 30 * time.Second}
	if upstreamClient(u.Client, upstreams, http.ProxyFromEnvironment, log) == "http1" {
		return &h1.Transport{
			DialContext:           dialer.DialContext,
			TLSClientConfig:       tlsConf,
			TLSHandshakeTimeout:   u.TLSHandshakeTimeout,
			ResponseHeaderTimeout: u.Timeout,
			IdleConnTimeout:       u.IdleConnTimeout,
			MaxIdleConnsPerHost:   u.MaxIdleConnsPerHost,
		}, nil
	}
	// HTTP/1.1 only: Go's HTTP/2 client may send a request again after a
	// stream reset or GOAWAY when it thinks no byte of it was processed,
	// bodiless POSTs included, and a call must never be placed twice.
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	return &http.Transport{
		Protocols:             &protocols,
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   u.TLSHandshakeTimeout,
		ResponseHeaderTimeout: u.Timeout,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          4 * u.MaxIdleConnsPerHost,
		MaxIdleConnsPerHost:   u.MaxIdleConnsPerHost,
		IdleConnTimeout:       u.IdleConnTimeout,
	}, nil
}

// upstreamClient is the client to use: the configured one, except that h1
// does not speak to proxies, so when proxy names one for an upstream,
// net/http's transport is used.
func upstreamClient(client string, upstreams []*url.URL, proxy func(*http.Request) (*url.URL, error), log zerolog.Logger) string {
	if client != "http1" {
		return client
	}
	for _, up := range upstreams {
		if p, err := proxy(&http.Request{URL: up}); err == nil && p != nil {
			log.Info().Str("upstream", up.Host).Str("proxy", p.Redacted()).
				Msg("an HTTP(S)_PROXY applies to an upstream: using net/http's transport, which speaks to proxies")
			return "net/http"
		}
	}
	return client
}

// roundTripper is an upstream transport whose idle connections can be
// closed when its gateway is replaced or shut down.
type roundTripper interface {
	http.RoundTripper
	CloseIdleConnections()
}

// serve runs the listeners until ctx ends or SIGINT/SIGTERM arrives, then
// drains. SIGHUP and POST /-/reload reload the configuration file.
func (s *server) serve(ctx context.Context) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The background work (credentials refresh, limiter heartbeats, the
	// certificate watcher, replaced gateways waiting to close) outlives the
	// signal, through the drain, and ends when serve returns.
	bg, cancelBg := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBg() // also on the early returns; the close below cancels it first
	gw := s.live.Load()
	cfg, log := gw.cfg, s.log
	if cfg.Admin.Listen != "" && cfg.Admin.TokenFile != "" {
		if _, err := readAdminToken(cfg.Admin.TokenFile); err != nil {
			return err
		}
	}

	// Credentials from files and Vault load in the background: until every
	// account has some, /readyz answers 503 and that account's requests 503
	// credentials_unavailable, and exogate keeps trying.
	gw.start(bg)
	defer func() {
		s.mu.Lock()
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.live.Load().close(cctx); err != nil {
			log.Warn().Str("error", err.Error()).Msg("shutting down")
		}
		cancel()
		cancelBg()
		s.mu.Unlock()
		s.closing.Wait()
	}()

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	scheme := "http"
	if cfg.TLS.CertFile != "" {
		tlsConf, err := newServerTLS(bg, cfg.TLS, log)
		if err != nil {
			ln.Close()
			return err
		}
		ln, scheme = tls.NewListener(ln, tlsConf), "https"
	}
	switch {
	case len(cfg.Clients) == 0 && !cfg.AuthRequired() && !config.IsLoopback(cfg.Listen):
		log.Warn().Str("listen", cfg.Listen).Msg("auth.allow_unauthenticated: anyone who can reach this listener can use every account's credentials")
	case len(cfg.Clients) > 0 && cfg.Auth.AllowAnonymous:
		log.Warn().Str("listen", cfg.Listen).Msg("auth.allow_anonymous: callers without identity may do what auth.anonymous grants")
	}
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		MaxHeaderBytes:    int(cfg.MaxHeaderBytes),
		ReadTimeout:       cfg.Server.ReadTimeout,
		ErrorLog:          logx.StdLogger(log, "http"),
	}
	// server.max_connections: one connection past it gets a single
	// Exotel-shaped 503 and is closed (listen changes need a restart, so
	// this one does too).
	conns := &proxy.ConnLimit{Max: int64(cfg.Server.MaxConnections)}
	srv.ConnContext, srv.ConnState = conns.ConnContext, conns.ConnState
	// "OPTIONS *" would get a bare 200 from net/http; it is not an Exotel call.
	srv.DisableGeneralOptionsHandler = true
	sids := make([]string, 0, len(cfg.Accounts))
	for _, a := range cfg.Accounts {
		sids = append(sids, strings.ToLower(a.SID)+"@"+a.Region)
	}
	log.Info().Str("addr", ln.Addr().String()).Str("scheme", scheme).Bool("auth_required", cfg.AuthRequired()).
		Strs("accounts", sids).Str("version", buildVersion()).Msg("listening")

	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	if gw.warmRoots {
		// Loaded now, in the background, the first request to an https
		// upstream does not wait for the system's CA roots.
		go func() { _, _ = x509.SystemCertPool() }()
	}

	s.metrics.Register(newStateCollector(s.live.Load))
	if cfg.Admin.Listen != "" {
		aln, err := net.Listen("tcp", cfg.Admin.Listen)
		if err != nil {
			_ = srv.Close()
			return fmt.Errorf("admin listen: %w", err)
		}
		var reload func() error
		if s.load != nil {
			reload = func() error { return s.reload(bg) }
		}
		admin := &http.Server{
			Handler:           adminHandler(s.live.Load, s.metrics, reload, log),
			ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
			ReadTimeout:       cfg.Server.ReadTimeout,
			IdleTimeout:       cfg.Server.IdleTimeout,
			ErrorLog:          logx.StdLogger(log, "admin"),
		}
		go func() { errc <- admin.Serve(aln) }()
		defer admin.Close()
		log.Info().Str("admin_addr", aln.Addr().String()).Bool("admin_token_required", cfg.Admin.TokenFile != "").
			Dur("min_reload_interval", cfg.Admin.MinReloadInterval).Msg("admin listening")
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for running := true; running; {
		select {
		case err := <-errc:
			return fmt.Errorf("serve: %w", err)
		case <-hup:
			_ = s.reload(bg)
		case <-ctx.Done():
			running = false
		}
	}
	stop() // a second signal kills the process the default way
	gw = s.live.Load()
	cfg = gw.cfg
	gw.SetDraining()
	log.Info().Dur("delay", cfg.ShutdownDelay).Dur("timeout", cfg.ShutdownTimeout).Msg("draining: /readyz answers 503")
	if cfg.ShutdownDelay > 0 {
		t := time.NewTimer(cfg.ShutdownDelay)
		select {
		case <-t.C:
		case err := <-errc:
			t.Stop()
			return fmt.Errorf("serve: %w", err)
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown: in-flight requests did not finish within %s", cfg.ShutdownTimeout)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info().Msg("stopped")
	return nil
}

// newServerTLS is the listener's TLS: the certificate and key are re-read
// when their files change (checked every few seconds, so a renewed
// certificate needs no restart), and a client CA turns on mTLS: a verified
// client certificate identifies the caller; callers without one may still
// use HTTP Basic.
func newServerTLS(ctx context.Context, c config.TLS, log zerolog.Logger) (*tls.Config, error) {
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
			case <-ctx.Done():
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

func buildVersion() string {
	v := version
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
	}
	return v
}
