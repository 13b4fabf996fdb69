package main

import (
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
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/exogate/exogate/credentials"
	"github.com/exogate/exogate/internal/config"
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
	gw, err := newGateway(cfg, getenv, log, m, nil)
	if err != nil {
		return err
	}
	if cmd == "check" {
		return check(ctx, cfg, gw, stdout)
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

	mu  sync.Mutex // serializes reloads
	ctx context.Context
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
// old configuration keeps serving.
func (s *server) reload() (err error) {
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
	if cfg.Admin.Listen != old.cfg.Admin.Listen {
		return fmt.Errorf("admin.listen: changing %q to %q needs a restart", old.cfg.Admin.Listen, cfg.Admin.Listen)
	}
	log, err := newLogger(cfg.Log, s.stderr)
	if err != nil {
		return err
	}
	gw, err := newGateway(cfg, s.getenv, log, s.metrics, old)
	if err != nil {
		return err
	}
	gw.start(s.ctx)
	s.live.Store(gw)
	sids := make([]string, 0, len(cfg.Accounts))
	for _, a := range cfg.Accounts {
		sids = append(sids, strings.ToLower(a.SID)+"@"+a.Region)
	}
	log.Info().Strs("accounts", sids).Msg("configuration reloaded")
	// The old gateway's requests may still be in flight: stop its background
	// work once they have had the time a shutdown would give them.
	go func() {
		t := time.NewTimer(old.cfg.ShutdownTimeout)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.ctx.Done():
		}
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = old.close(cctx)
	}()
	return nil
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
	log     zerolog.Logger
}

// start begins the background work: credentials loading and refresh, and
// the shared limiter's heartbeats and pause subscription.
func (g *gateway) start(ctx context.Context) {
	g.store.Start(ctx)
	if r, ok := g.limiter.(*ratelimit.Redis); ok {
		r.Start(ctx)
	}
}

// close stops the background work and revokes exogate's own Vault token.
func (g *gateway) close(ctx context.Context) error {
	var errs []error
	if r, ok := g.limiter.(*ratelimit.Redis); ok {
		errs = append(errs, r.Close())
	}
	errs = append(errs, g.store.Close(ctx))
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
			spec.Vault = credentials.VaultSecret(*cr.Vault)
		}
		specs = append(specs, spec)
	}
	v := cfg.Vault
	store, err := credentials.New(credentials.Config{
		Accounts: specs,
		Vault: credentials.VaultConfig{
			Address:   v.Address,
			CAFile:    v.CAFile,
			Namespace: v.Namespace,
			Timeout:   v.Timeout,
			Auth:      credentials.VaultAuth(v.Auth),
		},
		RefreshInterval:  v.RefreshInterval,
		FilePollInterval: cfg.Rotation.FilePollInterval,
		PreviousGrace:    cfg.Rotation.PreviousGrace,
		MinForcedRefresh: cfg.Rotation.MinForcedRefresh,
		Getenv:           getenv,
		Logger:           log,
		Previous:         prevStore(prev),
	})
	if err != nil {
		return nil, err
	}

	buckets := make(map[string]ratelimit.Rule, len(cfg.Limits.Buckets))
	for name, r := range cfg.Limits.Buckets {
		buckets[name] = ratelimit.Rule(r)
	}
	limiter, err := newLimiter(cfg.Limits, sids, buckets, getenv, log, prev)
	if err != nil {
		return nil, err
	}

	transport, err := newTransport(cfg.Upstream)
	if err != nil {
		return nil, err
	}
	if cfg.Upstream.AllowInsecureHTTP {
		log.Warn().Msg("upstream.allow_insecure_http is on: plain-http upstreams are accepted; never use this in production")
	}

	accounts := make([]proxy.Account, 0, len(cfg.Accounts))
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
		MaxBody:  int64(cfg.MaxBody),
		Logger:   log,
		Metrics:  m,
		Previous: prevHandler(prev),
	})
	if err != nil {
		return nil, err
	}
	return &gateway{Handler: h, cfg: cfg, store: store, limiter: limiter, log: log}, nil
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
}

// newLimiter builds the in-memory limiter, or the Redis one shared by every
// replica.
func newLimiter(l config.Limits, sids []string, buckets map[string]ratelimit.Rule, getenv func(string) string, log zerolog.Logger, prev *gateway) (limiter, error) {
	rc := ratelimit.Config{
		MaxWait: l.MaxWait,
		Buckets: buckets,
		Account: ratelimit.Rule(l.Account),
	}
	if l.Backend != "redis" {
		if prev != nil {
			if old, ok := prev.limiter.(*ratelimit.Memory); ok {
				m, err := old.Reconfigured(sids, rc)
				if err != nil {
					return nil, fmt.Errorf("limits: %w", err)
				}
				return m, nil
			}
		}
		m, err := ratelimit.NewMemory(sids, rc)
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
			pem, err := os.ReadFile(r.CAFile)
			if err != nil {
				return nil, fmt.Errorf("limits.redis.ca_file: %w", err)
			}
			pool, err := x509.SystemCertPool()
			if err != nil || pool == nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("limits.redis.ca_file: %s holds no PEM certificate", r.CAFile)
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
// keep-alive pool sized for a busy gateway. It never retries a request that
// is not replayable, and the handler makes sure no POST is.
func newTransport(u config.Upstream) (*http.Transport, error) {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if u.CAFile != "" {
		pem, err := os.ReadFile(u.CAFile)
		if err != nil {
			return nil, fmt.Errorf("upstream.ca_file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("upstream.ca_file: %s holds no PEM certificate", u.CAFile)
		}
	}
	dialer := &net.Dialer{Timeout: u.DialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   u.TLSHandshakeTimeout,
		ResponseHeaderTimeout: u.Timeout,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          4 * u.MaxIdleConnsPerHost,
		MaxIdleConnsPerHost:   u.MaxIdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}, nil
}

// serve runs the listeners until ctx ends or SIGINT/SIGTERM arrives, then
// drains. SIGHUP and POST /-/reload reload the configuration file.
func (s *server) serve(ctx context.Context) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	s.ctx = context.WithoutCancel(ctx)
	gw := s.live.Load()
	cfg, log := gw.cfg, s.log

	// Credentials from files and Vault load in the background: until every
	// account has some, /readyz answers 503 and that account's requests 503
	// credentials_unavailable, and exogate keeps trying.
	gw.start(s.ctx)
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.live.Load().close(cctx); err != nil {
			log.Warn().Str("error", err.Error()).Msg("shutting down")
		}
	}()

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		MaxHeaderBytes:    int(cfg.MaxHeaderBytes),
		ReadTimeout:       cfg.Server.ReadTimeout,
		ErrorLog:          logx.StdLogger(log, "http"),
	}
	// "OPTIONS *" would get a bare 200 from net/http; it is not an Exotel call.
	srv.DisableGeneralOptionsHandler = true
	sids := make([]string, 0, len(cfg.Accounts))
	for _, a := range cfg.Accounts {
		sids = append(sids, strings.ToLower(a.SID)+"@"+a.Region)
	}
	log.Info().Str("addr", ln.Addr().String()).Strs("accounts", sids).Str("version", buildVersion()).Msg("listening")

	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()

	s.metrics.Register(newStateCollector(s.live.Load))
	if cfg.Admin.Listen != "" {
		aln, err := net.Listen("tcp", cfg.Admin.Listen)
		if err != nil {
			_ = srv.Close()
			return fmt.Errorf("admin listen: %w", err)
		}
		var reload func() error
		if s.load != nil {
			reload = s.reload
		}
		admin := &http.Server{
			Handler:           adminHandler(s.live.Load, s.metrics, reload),
			ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
			ReadTimeout:       cfg.Server.ReadTimeout,
			IdleTimeout:       cfg.Server.IdleTimeout,
			ErrorLog:          logx.StdLogger(log, "admin"),
		}
		go func() { errc <- admin.Serve(aln) }()
		defer admin.Close()
		log.Info().Str("admin_addr", aln.Addr().String()).Msg("admin listening")
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for running := true; running; {
		select {
		case err := <-errc:
			return fmt.Errorf("serve: %w", err)
		case <-hup:
			_ = s.reload()
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
