package credentials

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Spec says where one account's credentials come from.
type Spec struct {
	Account string // lower-case account SID
	Source  string // "env", "file" or "vault"

	APIKeyEnv   string // env: variable holding the API key
	APITokenEnv string // env: variable holding the API token

	APIKeyFile   string // file: file holding the API key (surrounding white space ignored)
	APITokenFile string // file: file holding the API token

	Vault VaultSecret // vault: where the pair lives
}

// Config configures a Store. A zero field takes the default given beside it.
type Config struct {
	Accounts []Spec
	// Vault is needed when any account's source is "vault".
	Vault VaultConfig
	// RefreshInterval is how often Vault secrets are re-read, ±20 % jitter
	// (default 30s).
	RefreshInterval time.Duration
	// FilePollInterval is how often credential files are checked for change
	// (default 5s).
	FilePollInterval time.Duration
	// PreviousGrace is how long after a rotation the previous credential may
	// still be tried once when Exotel rejects the new one (default 10m).
	PreviousGrace time.Duration
	// MinForcedRefresh is the least time between two re-reads forced by
	// Exotel's 401s for one account (default 2s).
	MinForcedRefresh time.Duration
	// ReauthorizeWait is how long a request that Exotel answered 401 waits
	// for the re-read it forced (default 1s). Past it, Exotel's 401 is
	// passed on while the read goes on in the background; what it finds
	// serves later requests. A hanging Vault holds no caller longer.
	ReauthorizeWait time.Duration
	// Getenv reads the environment (default: every variable unset).
	Getenv func(string) string
	// Logger receives rotations and source errors, never a value.
	Logger zerolog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Previous, on a configuration reload, is the store being replaced:
	// accounts whose Spec is unchanged start with its credentials (current
	// and previous), so they are ready at once and no request waits for a
	// new read. When the Vault settings are unchanged too, the new store
	// shares the old one's Vault session (its token and its renewal; no new
	// login, so a wrapped secret id already spent is never needed again);
	// when they changed, the new session still knows which wrapped secret
	// id was spent.
	Previous *Store
}

// Store holds the live credential of every configured account. Its set of
// accounts is fixed when it is made; each account's credential can be
// swapped atomically while requests are in flight. Safe for concurrent use.
type Store struct {
	cfg      Config
	accounts map[string]*slot
	log      zerolog.Logger
	now      func() time.Time
	vault    *vaultClient // nil when no account uses Vault

	// life ends on Close: the context of re-reads that outlive the request
	// that forced them.
	life    context.Context
	endLife context.CancelFunc

	started atomic.Bool
	closed  atomic.Bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// slot is one account's credentials.
type slot struct {
	spec Spec
	src  source

	cur       atomic.Pointer[Credential]
	prev      atomic.Pointer[Credential]
	rotatedAt atomic.Int64 // unix nanoseconds of the last swap
	// prevAccepted is when (unix nanoseconds) Exotel last accepted the
	// previous credential after refusing the current one; 0 once Exotel
	// accepts the current one, or after a swap.
	prevAccepted atomic.Int64
	// curAccepted is when (unix nanoseconds) Exotel first accepted the
	// current credential; 0 until it has, since the last swap.
	curAccepted atomic.Int64

	refreshErrors atomic.Uint64 // failed reads of the source, for metrics

	mu         sync.Mutex // guards the fields below
	refreshing chan struct{}
	slowLogged chan struct{} // the forced read whose slowness was logged
	lastForced time.Time
	lastErr    string // the last source error logged, to log each only once
}

// pair is what a source read: a key and token, a label for its version
// (the same on every replica that reads the same pair), and when the pair
// was made, if the source knows (zero: it does not).
type pair struct {
	key, token, version string
	created             time.Time
}

// source loads one account's key and token. Implementations never put a
// value in an error.
type source interface {
	// load returns the current pair.
	load(ctx context.Context) (pair, error)
	// kind is "env", "file" or "vault".
	kind() string
	// where says where the pair is read from (a path, never a value).
	where() string
}

// NewStore is New for sources that need nothing but the environment.
func NewStore(specs []Spec, getenv func(string) string) (*Store, error) {
	return New(Config{Accounts: specs, Getenv: getenv})
}

// New makes a Store. Environment-variable credentials are read here, and a
// variable that is not set is an error naming it. File and Vault credentials
// are loaded by Start, in the background: until then the account is not
// ready.
func New(cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	s := &Store{cfg: cfg, accounts: make(map[string]*slot, len(cfg.Accounts)), log: cfg.Logger, now: cfg.Now}
	s.life, s.endLife = context.WithCancel(context.Background())
	var errs []error
	for _, sp := range cfg.Accounts {
		sl := &slot{spec: sp}
		s.accounts[sp.Account] = sl
		if err := s.setSource(sl); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		s.endLife()
		return nil, err
	}
	if p := cfg.Previous; p != nil {
		s.carryOver(p)
	}
	return s, nil
}

// DefaultConfig is the zero Config with its documented defaults filled in:
// the one place those defaults are written.
func DefaultConfig() Config { return Config{}.withDefaults() }

// withDefaults fills in the documented defaults of cfg's zero fields.
func (cfg Config) withDefaults() Config {
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = 30 * time.Second
	}
	if cfg.FilePollInterval <= 0 {
		cfg.FilePollInterval = 5 * time.Second
	}
	if cfg.PreviousGrace <= 0 {
		cfg.PreviousGrace = 10 * time.Minute
	}
	if cfg.MinForcedRefresh <= 0 {
		cfg.MinForcedRefresh = 2 * time.Second
	}
	if cfg.ReauthorizeWait <= 0 {
		cfg.ReauthorizeWait = time.Second
	}
	if cfg.Getenv == nil {
		cfg.Getenv = func(string) string { return "" }
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg
}

// setSource gives an account's slot its source: the environment's pair is
// read at once; files and Vault are read by Start. Vault's client is made
// with the first account that needs it.
func (s *Store) setSource(sl *slot) error {
	sp := sl.spec
	switch sp.Source {
	case "env":
		sl.src = envSource{spec: sp, getenv: s.cfg.Getenv}
		p, err := sl.src.load(context.Background())
		if err != nil {
			return fmt.Errorf("account %s: %w", sp.Account, err)
		}
		c, err := NewCredential(p.key, p.token, "env", p.version, s.now())
		if err != nil {
			return fmt.Errorf("account %s: %s/%s: %w", sp.Account, sp.APIKeyEnv, sp.APITokenEnv, err)
		}
		sl.cur.Store(c)
	case "file":
		if sp.APIKeyFile == "" || sp.APITokenFile == "" {
			return fmt.Errorf("account %s: source file needs api_key_file and api_token_file", sp.Account)
		}
		sl.src = &fileSource{keyPath: sp.APIKeyFile, tokenPath: sp.APITokenFile}
	case "vault":
		if s.vault == nil {
			vc, err := vaultFor(s.cfg, s.log, s.now)
			if err != nil {
				return fmt.Errorf("vault: %w", err)
			}
			s.vault = vc
		}
		vs, err := s.vault.secretSource(sp.Vault)
		if err != nil {
			return fmt.Errorf("account %s: %w", sp.Account, err)
		}
		sl.src = vs
	default:
		return fmt.Errorf("account %s: unsupported credentials source %q", sp.Account, sp.Source)
	}
	return nil
}

// carryOver takes on, from the store p replaces, the credentials of each
// account whose file or Vault source is unchanged (the environment's are
// read again).
func (s *Store) carryOver(p *Store) {
	for sid, sl := range s.accounts {
		old, ok := p.accounts[sid]
		if !ok || old.spec != sl.spec || sl.spec.Source == "env" {
			continue
		}
		if c := old.cur.Load(); c != nil {
			sl.cur.Store(c)
		}
		if c := old.prev.Load(); c != nil {
			sl.prev.Store(c)
		}
		sl.rotatedAt.Store(old.rotatedAt.Load())
	}
}

// vaultFor returns the Vault client for cfg: the previous store's when its
// session has the same settings, else a new one that remembers the previous
// one's spent wrapped secret id.
func vaultFor(cfg Config, log zerolog.Logger, now func() time.Time) (*vaultClient, error) {
	vcfg, err := vaultSettings(cfg.Vault, cfg.Getenv)
	if err != nil {
		return nil, err
	}
	var prev *vaultClient
	if cfg.Previous != nil {
		prev = cfg.Previous.vault
	}
	if prev != nil && prev.sameSession(vcfg) {
		return prev, nil
	}
	vc, err := newVaultClient(vcfg, cfg.Getenv, log, now)
	if err != nil {
		return nil, err
	}
	if prev != nil {
		vc.setSpentWrapped(prev.spentWrapped())
	}
	return vc, nil
}

// Start logs in to Vault if needed and starts loading and refreshing every
// file and Vault credential in the background. It returns at once; Ready
// tells when every account has credentials. Start may be called once.
func (s *Store) Start(ctx context.Context) {
	if !s.started.CompareAndSwap(false, true) {
		return
	}
	ctx, s.cancel = context.WithCancel(ctx)
	if s.vault != nil {
		s.vault.setLogger(s.log)
		s.vault.acquire()
	}
	for _, sl := range s.accounts {
		if sl.src.kind() == "env" {
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.poll(ctx, sl)
		}()
	}
}

// Close stops the background work and, when exogate logged in to Vault
// itself and no newer store shares the session, revokes its Vault token.
// The credentials in memory stay usable. Calls after the first do nothing.
func (s *Store) Close(ctx context.Context) error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.endLife()
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	if s.vault != nil && s.started.Load() {
		return s.vault.release(ctx)
	}
	return nil
}

// Authorize sets the request's Authorization header to the account's HTTP
// Basic credentials, replacing whatever was there, and returns the version
// it used. It returns ErrUnknownAccount or ErrUnavailable, with the header
// removed, when it cannot.
func (s *Store) Authorize(h http.Header, account string) (version string, err error) {
	sl, ok := s.accounts[account]
	if !ok {
		delete(h, "Authorization")
		return "", ErrUnknownAccount
	}
	c := sl.cur.Load()
	if c == nil {
		delete(h, "Authorization")
		return "", ErrUnavailable
	}
	h["Authorization"] = c.header
	return c.version, nil
}

// Reauthorize is called when Exotel answered 401 to a request authorized
// with version rejected. It re-reads the account's source (once for all
// concurrent callers, and at most once per MinForcedRefresh), waiting for
// the read at most ReauthorizeWait, and if another
// credential is worth one more try — a newer version, or the previous one
// within PreviousGrace of a rotation — sets it on h and returns true.
// Otherwise Exotel's 401 stands.
func (s *Store) Reauthorize(ctx context.Context, h http.Header, account, rejected string) bool {
	sl, ok := s.accounts[account]
	if !ok || sl.src.kind() == "env" {
		return false
	}
	if c := sl.cur.Load(); c != nil && c.version != rejected {
		h["Authorization"] = c.header
		return true
	}
	s.forceRefresh(ctx, sl)
	cur := sl.cur.Load()
	if cur != nil && cur.version != rejected {
		s.log.Info().Str("account", account).Str("rejected_version", rejected).Str("version", cur.version).Msg("credentials: Exotel rejected a token; retrying with the newer version")
		h["Authorization"] = cur.header
		return true
	}
	prev := sl.prev.Load()
	if cur != nil && prev != nil && !prev.same(cur) &&
		s.now().Sub(time.Unix(0, sl.rotatedAt.Load())) < s.cfg.PreviousGrace {
		s.log.Warn().Str("account", account).Str("rejected_version", rejected).Str("previous_version", prev.version).Msg("credentials: Exotel rejected the current token; retrying with the previous one")
		h["Authorization"] = prev.header
		return true
	}
	return false
}

// Current returns the account's live credential (nil if none). Its methods
// give metadata only.
func (s *Store) Current(account string) *Credential {
	if sl, ok := s.accounts[account]; ok {
		return sl.cur.Load()
	}
	return nil
}

// Swap replaces the account's live credential atomically; the one it
// replaces becomes the previous one. Requests already authorized keep the
// value they were given.
func (s *Store) Swap(account string, c *Credential) error {
	sl, ok := s.accounts[account]
	if !ok {
		return ErrUnknownAccount
	}
	if c == nil || len(c.header) == 0 {
		return ErrUnavailable
	}
	s.swap(sl, c)
	return nil
}

func (s *Store) swap(sl *slot, c *Credential) {
	if old := sl.cur.Swap(c); old != nil {
		sl.prev.Store(old)
	}
	sl.rotatedAt.Store(s.now().UnixNano())
	sl.prevAccepted.Store(0)
	sl.curAccepted.Store(0)
}

// Previous returns the credential the account's live one replaced (nil if
// none). Its methods give metadata only.
func (s *Store) Previous(account string) *Credential {
	if sl, ok := s.accounts[account]; ok {
		return sl.prev.Load()
	}
	return nil
}

// Accepted tells the store that Exotel accepted a request for account sent
// with the Authorization header in h. When that was the previous
// credential (Reauthorize offered it after Exotel refused the current one:
// Exotel has not taken the new token yet), PreviousAcceptedAt says so until
// Exotel accepts the current one. Cheap enough to call for every answer.
func (s *Store) Accepted(account string, h http.Header) {
	sl, ok := s.accounts[account]
	if !ok {
		return
	}
	sent := h["Authorization"]
	if len(sent) != 1 {
		return
	}
	if cur := sl.cur.Load(); cur != nil && sent[0] == cur.header[0] {
		if sl.curAccepted.Load() == 0 {
			sl.curAccepted.CompareAndSwap(0, s.now().UnixNano())
		}
		if sl.prevAccepted.Load() != 0 {
			sl.prevAccepted.Store(0)
			s.log.Info().Str("account", account).Str("version", cur.version).Msg("credentials: Exotel accepts the current token")
		}
		return
	}
	if prev := sl.prev.Load(); prev != nil && sent[0] == prev.header[0] {
		if sl.prevAccepted.Swap(s.now().UnixNano()) == 0 {
			s.log.Warn().Str("account", account).Str("previous_version", prev.version).
				Msg("credentials: Exotel refused the current token and accepted the previous one: it has not taken the new token yet")
		}
	}
}

// PreviousAcceptedAt returns when Exotel last accepted the account's
// previous credential after refusing the current one, or zero when Exotel
// has accepted the current one since (or never refused it).
func (s *Store) PreviousAcceptedAt(account string) time.Time {
	if sl, ok := s.accounts[account]; ok {
		if n := sl.prevAccepted.Load(); n != 0 {
			return time.Unix(0, n)
		}
	}
	return time.Time{}
}

// CurrentAcceptedAt returns when Exotel first accepted the account's
// current credential, or zero while it has not (since it went in use).
func (s *Store) CurrentAcceptedAt(account string) time.Time {
	if sl, ok := s.accounts[account]; ok {
		if n := sl.curAccepted.Load(); n != 0 {
			return time.Unix(0, n)
		}
	}
	return time.Time{}
}

// Refresh re-reads the account's source now, swaps in what it finds, and
// returns the live credential: what an operator asks for after publishing
// a new token (POST /-/refresh) rather than waiting for the next poll. A
// failed read keeps the current credential and is returned. Environment
// variables are read once, at start: Refresh returns the live one as is.
func (s *Store) Refresh(ctx context.Context, account string) (*Credential, error) {
	sl, ok := s.accounts[account]
	if !ok {
		return nil, ErrUnknownAccount
	}
	if sl.src.kind() != "env" {
		if err := s.refresh(ctx, sl); err != nil {
			return sl.cur.Load(), err
		}
	}
	return sl.cur.Load(), nil
}

// RefreshErrors returns how many reads of the account's source failed.
func (s *Store) RefreshErrors(account string) uint64 {
	if sl, ok := s.accounts[account]; ok {
		return sl.refreshErrors.Load()
	}
	return 0
}

// VaultTokenExpiresAt returns when exogate's Vault token expires: zero when
// no account uses Vault, or the expiry is unknown or never.
func (s *Store) VaultTokenExpiresAt() time.Time {
	if s.vault == nil {
		return time.Time{}
	}
	return s.vault.TokenExpiresAt()
}

// Ready reports whether every account has credentials.
func (s *Store) Ready() bool {
	for _, sl := range s.accounts {
		if sl.cur.Load() == nil {
			return false
		}
	}
	return true
}

// poll loads the account's credentials until it has them (backing off from
// 1s to 5min while the source fails), then re-reads them every interval
// with ±20 % jitter, starting at a random point of the first interval so
// that many gateways do not read Vault in step.
func (s *Store) poll(ctx context.Context, sl *slot) {
	interval := s.cfg.RefreshInterval
	if sl.src.kind() == "file" {
		interval = s.cfg.FilePollInterval
	}
	bo := retryBackoff(s.now)
	for sl.cur.Load() == nil {
		if s.refresh(ctx, sl) == nil && sl.cur.Load() != nil {
			break
		}
		if !sleep(ctx, bo.NextBackOff()) {
			return
		}
	}
	every := intervalJitter(interval, s.now)
	next := time.Duration(rand.Int64N(int64(interval)))
	for {
		if !sleep(ctx, next) {
			return
		}
		next = every.NextBackOff()
		if err := s.refresh(ctx, sl); err != nil {
			// Keep serving the last good credentials; retry sooner than a
			// full interval while the source is failing.
			next = min(next, bo.NextBackOff())
		} else {
			bo.Reset()
		}
	}
}

// forceRefresh re-reads the account's source now, unless it was re-read
// for the same reason within MinForcedRefresh. Concurrent callers share one
// read. It waits for the read at most ReauthorizeWait (or until ctx ends):
// the read itself runs in the background, bounded by the source's own
// timeout, and swaps in what it finds whenever it ends.
func (s *Store) forceRefresh(ctx context.Context, sl *slot) {
	sl.mu.Lock()
	ch := sl.refreshing
	if ch == nil {
		if s.now().Sub(sl.lastForced) < s.cfg.MinForcedRefresh {
			sl.mu.Unlock()
			return
		}
		ch = make(chan struct{})
		sl.refreshing, sl.lastForced = ch, s.now()
		go func() {
			_ = s.refresh(s.life, sl)
			sl.mu.Lock()
			sl.refreshing = nil
			sl.mu.Unlock()
			close(ch)
		}()
	}
	sl.mu.Unlock()

	t := time.NewTimer(s.cfg.ReauthorizeWait)
	defer t.Stop()
	select {
	case <-ch:
	case <-ctx.Done():
	case <-t.C:
		sl.mu.Lock()
		first := sl.slowLogged != ch
		sl.slowLogged = ch
		sl.mu.Unlock()
		if first {
			s.log.Warn().Str("account", sl.spec.Account).Str("source", sl.src.kind()).Str("where", sl.src.where()).
				Dur("waited", s.cfg.ReauthorizeWait).
				Msg("credentials: the re-read forced by Exotel's 401 is slow; passing the 401 on and reading on in the background")
		}
	}
}

// refresh reads the source once and swaps in the pair if it changed and is
// complete. A failure keeps the current credential and is logged once per
// distinct error, naming the account and where it read, never a value.
func (s *Store) refresh(ctx context.Context, sl *slot) error {
	p, err := sl.src.load(ctx)
	if err == nil {
		var c *Credential
		c, err = NewCredential(p.key, p.token, sl.src.kind(), p.version, s.now())
		if err == nil {
			c.withCreated(p.created)
			if cur := sl.cur.Load(); cur == nil || !cur.same(c) || cur.version != c.version {
				s.swap(sl, c)
				ev := s.log.Info().Str("account", sl.spec.Account).Str("source", sl.src.kind()).Str("where", sl.src.where()).Str("version", p.version)
				if cur != nil {
					ev.Str("previous_version", cur.version)
				}
				ev.Msg("credentials: loaded")
			}
			s.noteError(sl, nil)
			return nil
		}
	}
	s.noteError(sl, err)
	return err
}

func (s *Store) noteError(sl *slot, err error) {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if err == nil {
		if sl.lastErr != "" {
			s.log.Info().Str("account", sl.spec.Account).Str("where", sl.src.where()).Msg("credentials: source recovered")
		}
		sl.lastErr = ""
		return
	}
	sl.refreshErrors.Add(1)
	msg := err.Error()
	if msg == sl.lastErr {
		return
	}
	sl.lastErr = msg
	ev := s.log.Error()
	if cur := sl.cur.Load(); cur != nil {
		ev = s.log.Warn().Str("serving_version", cur.version).Dur("serving_age", s.now().Sub(cur.loadedAt))
	}
	ev.Str("account", sl.spec.Account).Str("source", sl.src.kind()).Str("where", sl.src.where()).Str("error", msg).
		Msg("credentials: cannot read the source; keeping the last good credentials")
}

// envSource reads the pair from two environment variables, once.
type envSource struct {
	spec   Spec
	getenv func(string) string
}

func (e envSource) load(context.Context) (pair, error) {
	key, token := e.getenv(e.spec.APIKeyEnv), e.getenv(e.spec.APITokenEnv)
	var missing []string
	if key == "" {
		missing = append(missing, e.spec.APIKeyEnv)
	}
	if token == "" {
		missing = append(missing, e.spec.APITokenEnv)
	}
	if len(missing) > 0 {
		return pair{}, fmt.Errorf("missing required environment variable %s", strings.Join(missing, ", "))
	}
	return pair{key: key, token: token, version: "env"}, nil
}

func (envSource) kind() string    { return "env" }
func (e envSource) where() string { return e.spec.APIKeyEnv + ", " + e.spec.APITokenEnv }

// sleep waits d or until ctx ends, and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
