// Package gateway is the running exogate: the wired handler (credentials,
// limiters, upstream transport, proxy), its listeners, the admin endpoints,
// reloads and the drain. main reads flags and the environment, handles
// signals and calls New, Start, Reload and Close.
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
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/exogate/exogate/internal/config"
	"github.com/exogate/exogate/internal/logx"
	"github.com/exogate/exogate/internal/metrics"
	"github.com/exogate/exogate/proxy"
)

// Deps is what the gateway takes from its process.
type Deps struct {
	Getenv  func(string) string
	Stderr  io.Writer // the log output; each reload's logger writes here
	Logger  zerolog.Logger
	Metrics *metrics.Metrics
	Version string
	// Load re-reads and validates the configuration for a reload; nil when
	// there is no file to reload (configured from the environment).
	Load func() (config.Config, error)
	// AdminRoutes are more handlers on the admin listener, by mux pattern
	// (exogate sandbox's /sandbox/), behind the admin token like the rest.
	AdminRoutes map[string]http.Handler
}

// Server is the running gateway and what a reload needs to replace it.
type Server struct {
	live atomic.Pointer[gateway]
	deps Deps
	log  zerolog.Logger // the first gateway's logger, for the server's own lines

	mu sync.Mutex // serializes reloads and the shutdown
	// closing counts the replaced gateways whose background work is still
	// to be stopped; Close waits for them.
	closing sync.WaitGroup
	// stopped is closed by Close: the end of the background work of every
	// gateway, the certificate watcher, and replaced gateways' waits.
	stopped  chan struct{}
	stopOnce sync.Once

	srv, admin *http.Server
	// others are the servers NewHTTPServer made; Close drains them with
	// srv, before the background work stops.
	others  []*http.Server
	ln, aln net.Listener
	// adminURL is where tools reach the admin listener, published with
	// the Redis limiter's heartbeats; set by Start.
	adminURL string
	errc     chan error
	// hooks is the callback path, kept across reloads; nil when
	// webhooks.listen is empty.
	hooks *hooks
	// keys are the idempotency keys, kept across reloads.
	keys *keys
}

// New wires a gateway from a validated configuration. Nothing listens and
// no background work runs until Start.
func New(cfg config.Config, deps Deps) (*Server, error) {
	s := &Server{deps: deps, log: deps.Logger, stopped: make(chan struct{}), errc: make(chan error, 3)}
	var err error
	if s.keys, err = newKeys(cfg, deps.Getenv); err != nil {
		return nil, err
	}
	var callbacks proxy.CallbackResolver
	if cfg.Webhooks.Enabled() {
		h, err := newHooks(cfg, deps.Getenv, deps.Logger, lookup(s))
		if err != nil {
			_ = s.keys.close()
			return nil, err
		}
		s.hooks, callbacks = h, h
	}
	gw, err := newGateway(cfg, deps.Getenv, deps.Logger, deps.Metrics, deps.Version, nil, shared{callbacks, s.keys.proxy(cfg.Idempotency)})
	if err != nil {
		if s.hooks != nil {
			_ = s.hooks.close(context.Background())
		}
		_ = s.keys.close()
		return nil, err
	}
	s.live.Store(gw)
	return s, nil
}

// callbacks is the live resolver of exogate:// URLs, nil without webhooks.
func (s *Server) callbacks() proxy.CallbackResolver {
	if s.hooks == nil {
		return nil
	}
	return s.hooks
}

// ServeHTTP hands each request to the gateway live when it arrives; a
// request keeps the gateway it started on until it ends.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.live.Load().ServeHTTP(w, r)
}

// Addr is the main listener's address, once Start has returned.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// AdminAddr is the admin listener's address, or nil without one.
func (s *Server) AdminAddr() net.Addr {
	if s.aln == nil {
		return nil
	}
	return s.aln.Addr()
}

// Err delivers the error of a listener that stopped serving on its own.
func (s *Server) Err() <-chan error { return s.errc }

// Reload re-reads the configuration file and swaps a new gateway in
// atomically. Accounts, limits, breaker settings, log level and credential
// sources change; limiter and breaker state and loaded credentials of
// unchanged accounts carry over; requests in flight finish on the old
// gateway. Listen addresses need a restart and are refused. On any error the
// old configuration keeps serving.
func (s *Server) Reload() (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.live.Load()
	defer func() {
		s.deps.Metrics.Reload(err == nil)
		if err != nil {
			old.log.Error().Str("error", err.Error()).Msg("reload refused; the running configuration keeps serving")
		}
	}()
	if s.deps.Load == nil {
		return errors.New("no configuration file to reload (started from environment variables)")
	}
	if old.Draining() {
		return errors.New("shutting down")
	}
	cfg, err := s.deps.Load()
	if err != nil {
		return err
	}
	if err := needsRestart(old.cfg, cfg); err != nil {
		return err
	}
	if cfg.Admin.Listen != "" && cfg.Admin.TokenFile != "" {
		// A token file the new configuration names must be usable before
		// it guards the admin listener.
		if _, err := readAdminToken(cfg.Admin.TokenFile); err != nil {
			return err
		}
	}
	if cfg.Webhooks.Enabled() != (s.hooks != nil) {
		return errors.New("webhooks.listen: turning the callback listener on or off needs a restart")
	}
	log, err := NewLogger(cfg.Log, s.deps.Stderr)
	if err != nil {
		return err
	}
	if !s.keys.sameBackend(cfg.Idempotency) {
		return errors.New("idempotency: changing backend, ttl or max_bytes needs a restart")
	}
	gw, err := newGateway(cfg, s.deps.Getenv, log, s.deps.Metrics, s.deps.Version, old, shared{s.callbacks(), s.keys.proxy(cfg.Idempotency)})
	if err != nil {
		return err
	}
	if s.hooks != nil {
		if err := s.hooks.reconfigure(old.cfg, cfg, s.deps.Getenv); err != nil {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = gw.close(cctx)
			return err
		}
	}
	gw.start(s.adminURL)
	s.live.Store(gw)
	log.Info().Strs("accounts", accountList(cfg)).Msg("configuration reloaded")
	// The old gateway's requests may still be in flight: stop its background
	// work once they have had the time a shutdown would give them, or when
	// the server closes.
	s.closing.Add(1)
	go func() {
		defer s.closing.Done()
		t := time.NewTimer(old.cfg.ShutdownTimeout)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.stopped:
		}
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = old.close(cctx)
	}()
	return nil
}

// needsRestart reports the change from old to cfg that a reload cannot
// make: the listeners' addresses and settings.
func needsRestart(old, cfg config.Config) error {
	if cfg.Listen != old.Listen {
		return fmt.Errorf("listen: changing %s to %s needs a restart", old.Listen, cfg.Listen)
	}
	if cfg.Server != old.Server {
		return errors.New("server: changing the listener's timeouts or max_connections needs a restart")
	}
	if cfg.Admin.AdvertiseURL != old.Admin.AdvertiseURL {
		return fmt.Errorf("admin.advertise_url: changing %q to %q needs a restart", old.Admin.AdvertiseURL, cfg.Admin.AdvertiseURL)
	}
	if cfg.Admin.Listen != old.Admin.Listen {
		return fmt.Errorf("admin.listen: changing %q to %q needs a restart", old.Admin.Listen, cfg.Admin.Listen)
	}
	return nil
}

func accountList(cfg config.Config) []string {
	sids := make([]string, 0, len(cfg.Accounts))
	for _, a := range cfg.Accounts {
		sids = append(sids, strings.ToLower(a.SID)+"@"+a.Region)
	}
	return sids
}

// Start begins the background work (credentials from files and Vault load
// in the background: until every account has some, /readyz answers 503 and
// that account's requests 503 credentials_unavailable, and exogate keeps
// trying), opens the listeners and serves. ctx bounds the start only. On an
// error nothing is left running.
func (s *Server) Start(ctx context.Context) (err error) {
	gw := s.live.Load()
	cfg, log := gw.cfg, s.log
	var aln net.Listener
	defer func() {
		if err != nil {
			if aln != nil && s.aln == nil {
				aln.Close()
			}
			s.stop(log)
		}
	}()
	// The admin listener is bound first: the limiter's heartbeats, from
	// gw.start on, publish its address.
	if aln, err = s.bindAdmin(ctx, cfg); err != nil {
		return err
	}
	gw.start(s.adminURL)
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen (listen, -listen or EXOGATE_LISTEN): %w", err)
	}
	scheme := "http"
	if cfg.TLS.CertFile != "" {
		tlsConf, err := newServerTLS(s.stopped, cfg.TLS, log)
		if err != nil {
			ln.Close()
			return err
		}
		ln, scheme = tls.NewListener(ln, tlsConf), "https"
	}
	warnOpen(cfg, log)
	srv := s.httpServer(cfg, log)
	log.Info().Str("addr", ln.Addr().String()).Str("scheme", scheme).Bool("auth_required", cfg.AuthRequired()).
		Strs("accounts", accountList(cfg)).Str("version", s.deps.Version).Msg("listening")

	s.srv, s.ln = srv, ln
	go func() { s.errc <- srv.Serve(ln) }()
	if gw.warmRoots {
		// Loaded now, in the background, the first request to an https
		// upstream does not wait for the system's CA roots.
		go func() { _, _ = x509.SystemCertPool() }()
	}

	s.deps.Metrics.Register(newStateCollector(s.live.Load))
	s.deps.Metrics.Register(newKeysCollector(s.keys))
	if s.hooks != nil {
		s.deps.Metrics.Register(newHooksCollector(s.hooks.svc))
		if err := s.hooks.start(ctx, cfg, s.stopped, s.errc); err != nil {
			_ = srv.Close()
			return err
		}
	}
	if aln != nil {
		if err := s.startAdmin(aln, cfg, log); err != nil {
			_ = srv.Close()
			return err
		}
	}
	return nil
}

// NewHTTPServer returns a server of the gateway with the API listener's
// settings, for another listener to serve it the same way (exogate
// sandbox's -tls-listen). Its connections count apart from the API
// listener's against server.max_connections. Close drains it with the API
// listener; Abort closes it.
func (s *Server) NewHTTPServer(log zerolog.Logger) *http.Server {
	srv := s.httpServer(s.live.Load().cfg, log)
	s.mu.Lock()
	s.others = append(s.others, srv)
	s.mu.Unlock()
	return srv
}

// otherServers returns the servers NewHTTPServer made.
func (s *Server) otherServers() []*http.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.others)
}

// httpServer is the API listener's server: its timeouts and header limit,
// server.max_connections, and no "OPTIONS *".
func (s *Server) httpServer(cfg config.Config, log zerolog.Logger) *http.Server {
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
	return srv
}

// warnOpen logs a warning when the listener admits callers without
// identity.
func warnOpen(cfg config.Config, log zerolog.Logger) {
	switch {
	case len(cfg.Clients) == 0 && !cfg.AuthRequired() && !config.IsLoopback(cfg.Listen):
		log.Warn().Str("listen", cfg.Listen).Msg("auth.allow_unauthenticated: anyone who can reach this listener can use every account's credentials")
	case len(cfg.Clients) > 0 && cfg.Auth.AllowAnonymous:
		log.Warn().Str("listen", cfg.Listen).Msg("auth.allow_anonymous: callers without identity may do what auth.anonymous grants")
	}
}

// bindAdmin checks the admin token file, opens the admin listener (nil
// without one) and sets adminURL.
func (s *Server) bindAdmin(ctx context.Context, cfg config.Config) (net.Listener, error) {
	if cfg.Admin.Listen == "" {
		s.adminURL = AdminURL(cfg.Admin.AdvertiseURL, nil, os.Hostname)
		return nil, nil
	}
	if cfg.Admin.TokenFile != "" {
		if _, err := readAdminToken(cfg.Admin.TokenFile); err != nil {
			return nil, err
		}
	}
	var lc net.ListenConfig
	aln, err := lc.Listen(ctx, "tcp", cfg.Admin.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin listen (admin.listen, EXOGATE_ADMIN_LISTEN, or -admin in the sandbox): %w", err)
	}
	s.adminURL = AdminURL(cfg.Admin.AdvertiseURL, aln.Addr(), os.Hostname)
	return aln, nil
}

// startAdmin serves the admin listener aln.
func (s *Server) startAdmin(aln net.Listener, cfg config.Config, log zerolog.Logger) error {
	var reload func() error
	if s.deps.Load != nil {
		reload = s.Reload
	}
	admin := &http.Server{
		Handler:           adminHandler(s.live.Load, s.deps.Metrics, reload, s.hooksAdmin(), log, s.deps.AdminRoutes),
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		ReadTimeout:       cfg.Server.ReadTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		ErrorLog:          logx.StdLogger(log, "admin"),
	}
	s.admin, s.aln = admin, aln
	go func() { s.errc <- admin.Serve(aln) }()
	log.Info().Str("admin_addr", aln.Addr().String()).Bool("admin_token_required", cfg.Admin.TokenFile != "").
		Dur("min_reload_interval", cfg.Admin.MinReloadInterval).Msg("admin listening")
	return nil
}

// Close drains: /readyz answers 503 for shutdown_delay, then in-flight
// requests get up to shutdown_timeout to finish. Then the background work
// of every gateway stops and exogate's own Vault token is revoked. A
// listener error during the delay ends the drain early and is returned.
func (s *Server) Close(ctx context.Context) error {
	log := s.log
	defer s.stop(log)
	if s.admin != nil {
		defer s.admin.Close()
	}
	gw := s.live.Load()
	cfg := gw.cfg
	gw.SetDraining()
	log.Info().Dur("delay", cfg.ShutdownDelay).Dur("timeout", cfg.ShutdownTimeout).Msg("draining: /readyz answers 503")
	if cfg.ShutdownDelay > 0 {
		t := time.NewTimer(cfg.ShutdownDelay)
		select {
		case <-t.C:
		case err := <-s.errc:
			t.Stop()
			return fmt.Errorf("serve: %w", err)
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	// Every listener of the gateway drains at once: a request in flight on
	// any of them is answered before the background work stops.
	servers := append([]*http.Server{s.srv}, s.otherServers()...)
	errs := make(chan error, len(servers))
	for _, srv := range servers {
		go func() {
			err := srv.Shutdown(sctx)
			if err != nil {
				_ = srv.Close()
			}
			errs <- err
		}()
	}
	var late bool
	for range servers {
		late = <-errs != nil || late
	}
	if late {
		return fmt.Errorf("shutdown: in-flight requests did not finish within %s", cfg.ShutdownTimeout)
	}
	if err := <-s.errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info().Msg("stopped")
	return nil
}

// Abort stops the listeners at once (a listener failed) and the background
// work.
func (s *Server) Abort() {
	if s.admin != nil {
		_ = s.admin.Close()
	}
	if s.srv != nil {
		_ = s.srv.Close()
	}
	for _, srv := range s.otherServers() {
		_ = srv.Close()
	}
	s.stop(s.log)
}

// stop ends the background work: the live gateway's (closing it, which
// revokes exogate's Vault token), the certificate watcher's and the
// replaced gateways', and waits for the latter to close.
func (s *Server) stop(log zerolog.Logger) {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		// The callback path first: its checks against Exotel go through
		// the live gateway.
		if s.hooks != nil {
			if err := s.hooks.close(cctx); err != nil {
				log.Warn().Str("error", err.Error()).Msg("shutting down the callback path")
			}
		}
		if err := s.live.Load().close(cctx); err != nil {
			log.Warn().Str("error", err.Error()).Msg("shutting down")
		}
		_ = s.keys.close()
		cancel()
		close(s.stopped)
		s.mu.Unlock()
	})
	s.closing.Wait()
}
