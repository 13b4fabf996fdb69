package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/sony/gobreaker/v2"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Service receives callbacks on Handler, keeps them in its store and
// delivers them to the routes' targets. Create it with Open, run its
// background work with Start and stop it with Close. Safe for concurrent
// use.
type Service struct {
	log     zerolog.Logger
	now     func() time.Time
	client  Doer
	lookup  Lookup
	claimer Claimer
	replica string
	q       queue
	cfg     atomic.Pointer[runConfig]
	stats   counters

	mu      sync.Mutex // guards what follows
	started bool
	closed  bool
	bg      context.Context // background work; cancelled by Close
	stop    context.CancelFunc
	// deliverCtx outlives bg: Close lets in-flight deliveries finish
	// until its own context ends.
	deliverCtx    context.Context
	cancelDeliver context.CancelFunc
	dispatchers   map[string]*dispatcher
	workers       sync.WaitGroup // dispatchers, sweeper, reconciler
	attempts      sync.WaitGroup // in-flight deliveries

	// flying holds the ids of messages in flight: a dispatcher started
	// again for a route (a reload) must not send one a second time.
	flyingMu sync.Mutex
	flying   map[string]bool
}

// runConfig is a validated Config with its routes ready to use.
type runConfig struct {
	Config
	routes map[string]*route
}

// route is a configured route with its signers and breaker.
type route struct {
	Route
	signers []*standardwebhooks.Webhook
	breaker *gobreaker.CircuitBreaker[*http.Response]
}

func (r *route) concurrency() int {
	if r.Concurrency > 0 {
		return r.Concurrency
	}
	return DefaultConcurrency
}

func (r *route) maxAge() time.Duration {
	if r.Retry.MaxAge > 0 {
		return r.Retry.MaxAge
	}
	return DefaultMaxAge
}

func (r *route) maxInterval() time.Duration {
	if r.Retry.MaxInterval > 0 {
		return r.Retry.MaxInterval
	}
	return DefaultMaxInterval
}

// Open validates cfg and opens the store at path. Background work starts
// with Start.
func Open(path string, cfg Config, deps Deps) (*Service, error) {
	rc, err := prepare(cfg, deps, nil)
	if err != nil {
		return nil, err
	}
	q, err := OpenStore(path, StoreOptions{Clock: deps.Clock, Retention: rc.retention()})
	if err != nil {
		return nil, err
	}
	deps.Replica = replicaName(deps.Replica, q.ID())
	return newService(rc, deps, q), nil
}

// replicaName is the name a replica claims under: its store's identity
// (label, when given, in front, for people reading Redis), so that two
// replicas never share a name, even on one host, and a restarted replica
// keeps its own claims.
func replicaName(label, storeID string) string {
	if label == "" {
		return storeID
	}
	return label + "/" + storeID
}

func newService(rc *runConfig, deps Deps, q queue) *Service {
	s := &Service{
		log: deps.Log, now: deps.Clock, client: deps.Client, lookup: deps.Lookup,
		claimer: deps.Claimer, replica: deps.Replica, q: q,
		dispatchers: make(map[string]*dispatcher), flying: make(map[string]bool),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: DefaultDeliverTimeout}
	}
	s.stats.init()
	s.cfg.Store(rc)
	return s
}

func (c *runConfig) retention() time.Duration {
	if c.Retention > 0 {
		return c.Retention
	}
	return DefaultRetention
}

func (c *runConfig) maxBody() int64 {
	if c.MaxBody > 0 {
		return c.MaxBody
	}
	return DefaultMaxBody
}

func (s *Service) config() *runConfig { return s.cfg.Load() }

// route returns the configured route named name, or nil.
func (s *Service) route(name string) *route { return s.config().routes[name] }

// prepare validates cfg and builds its routes. A route of old with the
// same name and target keeps its breaker, so that a reload does not close
// a breaker that is open.
func prepare(cfg Config, deps Deps, old *runConfig) (*runConfig, error) {
	if len(cfg.URLSecret) == 0 {
		return nil, errors.New("webhooks: url_secret_env: the URL secret is empty")
	}
	if u, err := url.Parse(cfg.PublicURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("webhooks: public_url %q: not an absolute http(s) URL", cfg.PublicURL)
	}
	if cfg.MaxBody < 0 || cfg.Retention < 0 {
		return nil, errors.New("webhooks: max_body and retention must not be negative")
	}
	rc := &runConfig{Config: cfg, routes: make(map[string]*route, len(cfg.Routes))}
	for i, r := range cfg.Routes {
		if err := validateRoute(r, deps); err != nil {
			return nil, fmt.Errorf("webhooks: routes[%d] %q: %w", i, r.Name, err)
		}
		if _, dup := rc.routes[r.Name]; dup {
			return nil, fmt.Errorf("webhooks: routes[%d] %q: name used twice", i, r.Name)
		}
		signers, err := parseSigningSecrets(r.SigningSecret)
		if err != nil {
			return nil, fmt.Errorf("webhooks: routes[%d] %q: signing_secret_env: %w", i, r.Name, err)
		}
		rt := &route{Route: r, signers: signers}
		if prev := old.routeNamed(r.Name); prev != nil && prev.Target == r.Target {
			rt.breaker = prev.breaker
		} else {
			st := cfg.Breaker
			st.Name = "webhooks:" + r.Name
			rt.breaker = gobreaker.NewCircuitBreaker[*http.Response](st)
		}
		rc.routes[r.Name] = rt
	}
	return rc, nil
}

func (c *runConfig) routeNamed(name string) *route {
	if c == nil {
		return nil
	}
	return c.routes[name]
}

// validateRoute checks one route; its errors name the field.
func validateRoute(r Route, deps Deps) error {
	if !validRouteName(r.Name) {
		return errors.New("name: letters, digits, '-' and '_' only, 1 to 64 of them")
	}
	if r.Account == "" {
		return errors.New("account: empty")
	}
	if r.Kind != KindCall && r.Kind != KindSMS {
		return fmt.Errorf("kind %q: want call or sms", r.Kind)
	}
	if u, err := url.Parse(r.Target); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("target: not an absolute http(s) URL")
	}
	switch r.Verify {
	case "", VerifyNone:
	case VerifyExotel:
		if deps.Lookup == nil {
			return errors.New("verify: exotel needs the gateway's Exotel client")
		}
	default:
		return fmt.Errorf("verify %q: want none or exotel", r.Verify)
	}
	if r.ReconcileAfter < 0 {
		return errors.New("reconcile_after: negative")
	}
	if r.ReconcileAfter > 0 && r.Kind != KindCall {
		return errors.New("reconcile_after: call routes only")
	}
	if r.ReconcileAfter > 0 && deps.Lookup == nil {
		return errors.New("reconcile_after: needs the gateway's Exotel client")
	}
	if r.Retry.MaxAge < 0 || r.Retry.MaxInterval < 0 {
		return errors.New("retry: negative duration")
	}
	if r.Concurrency < 0 {
		return errors.New("concurrency: negative")
	}
	return nil
}

func validRouteName(s string) bool {
	return len(s) <= 64 && validSid(s)
}

// parseSigningSecrets reads a route's space-separated signing secrets:
// "whsec_<base64>" as Standard Webhooks writes them, else the raw bytes.
func parseSigningSecrets(v string) ([]*standardwebhooks.Webhook, error) {
	var out []*standardwebhooks.Webhook
	for _, sec := range strings.Fields(v) {
		var w *standardwebhooks.Webhook
		var err error
		if strings.HasPrefix(sec, "whsec_") {
			w, err = standardwebhooks.NewWebhook(sec)
		} else {
			w, err = standardwebhooks.NewWebhookRaw([]byte(sec))
		}
		if err != nil {
			// The library's error may quote the secret: say only what is wrong.
			return nil, errors.New("a whsec_ secret is not valid base64")
		}
		out = append(out, w)
	}
	if len(out) == 0 {
		return nil, errors.New("empty")
	}
	return out, nil
}

// Start runs the delivery dispatchers (one per route), the sweeper and the
// reconciler until Close. Calling it again does nothing.
func (s *Service) Start(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		return
	}
	s.started = true
	s.bg, s.stop = context.WithCancel(ctx)
	s.deliverCtx, s.cancelDeliver = context.WithCancel(context.WithoutCancel(ctx))
	s.syncDispatchersLocked()
	s.workers.Add(2)
	go s.sweep()
	go s.reconcile()
}

// Close stops the background work, waits for in-flight deliveries until
// ctx ends (then cancels them: they stay pending) and closes the store.
func (s *Service) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	started := s.started
	if started {
		s.stop()
		for _, d := range s.dispatchers {
			close(d.stop)
		}
	}
	s.mu.Unlock()
	if started {
		s.workers.Wait()
		done := make(chan struct{})
		go func() { s.attempts.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			s.cancelDeliver()
			<-done
		}
		s.cancelDeliver()
	}
	return s.q.Close()
}

// Reconfigure applies a new configuration: routes, targets, secrets and
// checks. The queue and in-flight deliveries are kept; the messages of a
// removed route stay pending until a route of that name returns.
func (s *Service) Reconfigure(cfg Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	deps := Deps{Lookup: s.lookup}
	rc, err := prepare(cfg, deps, s.config())
	if err != nil {
		return err
	}
	s.cfg.Store(rc)
	if s.started && !s.closed {
		s.syncDispatchersLocked()
	}
	return nil
}

// syncDispatchersLocked runs one dispatcher per configured route and
// stops those of removed routes. s.mu is held.
func (s *Service) syncDispatchersLocked() {
	routes := s.config().routes
	for name, d := range s.dispatchers {
		if _, ok := routes[name]; !ok {
			close(d.stop)
			delete(s.dispatchers, name)
		}
	}
	for name := range routes {
		if _, ok := s.dispatchers[name]; ok {
			s.dispatchers[name].poke()
			continue
		}
		d := &dispatcher{name: name, wake: make(chan struct{}, 1), stop: make(chan struct{})}
		s.dispatchers[name] = d
		s.workers.Add(1)
		go s.dispatch(d)
	}
}

// wake tells route's dispatcher that messages may be due.
func (s *Service) wake(route string) {
	s.mu.Lock()
	d := s.dispatchers[route]
	s.mu.Unlock()
	if d != nil {
		d.poke()
	}
}

// wakeAll wakes every dispatcher.
func (s *Service) wakeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.dispatchers {
		d.poke()
	}
}

// Stats returns the store's per-route counts.
func (s *Service) Stats() (map[string]RouteStats, error) { return s.q.Stats() }

// sweep drops expired dedupe keys and finished messages every minute.
func (s *Service) sweep() {
	defer s.workers.Done()
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-s.bg.Done():
			return
		case <-t.C:
			if n, err := s.q.Sweep(s.now()); err != nil {
				s.log.Error().Err(err).Msg("webhooks: sweeping the store failed")
			} else if n > 0 {
				s.log.Debug().Int("removed", n).Msg("webhooks: swept the store")
			}
		}
	}
}
