package credentials

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/hashicorp/vault/api/auth/kubernetes"
	"github.com/rs/zerolog"
)

// VaultConfig says how to reach and log in to Vault. Empty Address, CAFile
// and Namespace fall back to VAULT_ADDR, VAULT_CACERT and VAULT_NAMESPACE
// (read through Config.Getenv); no other Vault environment variable is
// read, except VAULT_SKIP_VERIFY, which is refused unless AllowInsecure.
type VaultConfig struct {
	Address   string // default VAULT_ADDR
	CAFile    string // default VAULT_CACERT
	Namespace string // default VAULT_NAMESPACE
	Auth      VaultAuth
	// Timeout bounds one Vault request (default 10s).
	Timeout time.Duration
	// AllowInsecure accepts a plain-http Address to a host that is not
	// loopback and VAULT_SKIP_VERIFY=true; either is logged as a warning.
	// Without it (the default) both are refused.
	AllowInsecure bool
}

// VaultAuth says how exogate logs in to Vault.
type VaultAuth struct {
	// Method is "token" (default), "approle" or "kubernetes".
	Method string
	// Mount is the auth method's mount path (default "approle" or
	// "kubernetes").
	Mount string

	// TokenFile (token): a file holding the token, such as a Vault Agent
	// sink, re-read when it changes. Empty: VAULT_TOKEN.
	TokenFile string

	// RoleIDFile / RoleIDEnv and SecretIDFile / SecretIDEnv (approle): where
	// the role id and secret id are read from, at each login.
	RoleIDFile, RoleIDEnv     string
	SecretIDFile, SecretIDEnv string
	// SecretIDWrapped (approle): the secret id is a response-wrapping token,
	// usable once; exogate never logs in twice with the same one.
	SecretIDWrapped bool

	// Role and ServiceAccountTokenFile (kubernetes): the Vault role, and the
	// projected service-account token, re-read at each login because the
	// kubelet rotates it.
	Role                    string
	ServiceAccountTokenFile string
}

// VaultSecret is where one account's key and token live in Vault: one
// secret holding both fields, so a read always gives a matching pair.
type VaultSecret struct {
	Mount         string // KV mount (default "secret")
	Path          string // path under the mount, e.g. "exotel/acme"
	KVVersion     int    // 2 (default) or 1
	APIKeyField   string // default "api_key"
	APITokenField string // default "api_token"
}

// DefaultVaultTimeout is VaultConfig.Timeout's default.
const DefaultVaultTimeout = 10 * time.Second

// DefaultServiceAccountTokenFile is where Kubernetes mounts a pod's token.
const DefaultServiceAccountTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// vaultClient is the gateway's one Vault client and its one login loop,
// shared by every account whose credentials live in Vault. On a
// configuration reload that leaves the Vault settings unchanged, the new
// Store shares it with the old one: the session (its token, its renewal, the
// memory of a spent wrapped secret id) carries on, and exogate does not log
// in again. The login loop runs while at least one started Store uses it.
type vaultClient struct {
	client *api.Client
	cfg    VaultConfig
	getenv func(string) string
	logp   atomic.Pointer[zerolog.Logger]
	now    func() time.Time

	loggedIn  chan struct{} // closed once a token is set
	loginOnce sync.Once
	relogin   chan struct{} // a Vault call was refused: log in again
	ownToken  atomic.Bool   // the token came from our own login: revoke it on Close
	expiresAt atomic.Int64  // unix nanoseconds the token expires; 0 = unknown or never

	wrappedMu   sync.Mutex
	lastWrapped [sha256.Size]byte // digest of the last wrapped secret id used

	mu    sync.Mutex // guards users, stop, done
	users int        // started Stores using this client
	stop  context.CancelFunc
	done  chan struct{} // closed when the login loop has returned
}

// vaultSettings fills cfg's defaults (the environment's VAULT_ADDR,
// VAULT_CACERT and VAULT_NAMESPACE among them) and checks the login method.
func vaultSettings(cfg VaultConfig, getenv func(string) string) (VaultConfig, error) {
	or := func(v, env string) string {
		if v != "" {
			return v
		}
		return getenv(env)
	}
	cfg.Address = or(cfg.Address, api.EnvVaultAddress)
	cfg.CAFile = or(cfg.CAFile, api.EnvVaultCACert)
	cfg.Namespace = or(cfg.Namespace, api.EnvVaultNamespace)
	if cfg.Address == "" {
		return cfg, errors.New("vault.address (or VAULT_ADDR) is required when an account's source is vault")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultVaultTimeout
	}
	switch cfg.Auth.Method {
	case "", "token":
		cfg.Auth.Method = "token"
	case "approle":
		if cfg.Auth.Mount == "" {
			cfg.Auth.Mount = "approle"
		}
		if cfg.Auth.RoleIDFile == "" && cfg.Auth.RoleIDEnv == "" {
			return cfg, errors.New("vault.auth: approle needs role_id_file or role_id_env")
		}
		if cfg.Auth.SecretIDFile == "" && cfg.Auth.SecretIDEnv == "" {
			return cfg, errors.New("vault.auth: approle needs secret_id_file or secret_id_env")
		}
	case "kubernetes":
		if cfg.Auth.Mount == "" {
			cfg.Auth.Mount = "kubernetes"
		}
		if cfg.Auth.Role == "" {
			return cfg, errors.New("vault.auth.role is required for kubernetes auth")
		}
		if cfg.Auth.ServiceAccountTokenFile == "" {
			cfg.Auth.ServiceAccountTokenFile = DefaultServiceAccountTokenFile
		}
	default:
		return cfg, fmt.Errorf("vault.auth.method %q is not token, approle or kubernetes", cfg.Auth.Method)
	}
	return cfg, nil
}

// newVaultClient makes the Vault client for cfg as vaultSettings filled it.
// It warns about whatever is insecure in it.
func newVaultClient(cfg VaultConfig, getenv func(string) string, log zerolog.Logger, now func() time.Time) (*vaultClient, error) {
	conf, insecure, err := apiConfig(cfg, getenv)
	if err != nil {
		return nil, err
	}
	client, err := api.NewClient(conf)
	if err != nil {
		return nil, fmt.Errorf("vault client: %w", err)
	}
	// api.NewClient also reads VAULT_TOKEN, VAULT_NAMESPACE and
	// VAULT_HEADERS from the process environment: undo all three. Only the
	// configured method sets the token.
	client.ClearToken()
	client.SetHeaders(http.Header{api.RequestHeaderName: []string{"true"}})
	if cfg.Namespace != "" {
		client.SetNamespace(cfg.Namespace)
	}
	// The default wrapping lookup honours VAULT_WRAP_TTL, which would wrap
	// every answer, KV reads included.
	client.SetWrappingLookupFunc(func(string, string) string { return "" })

	for _, why := range insecure {
		log.Warn().Str("vault_address", cfg.Address).Str("reason", why).
			Msg("vault: insecure connection allowed by vault.allow_insecure; never use this in production")
	}
	for _, f := range []struct{ field, path string }{
		{"vault.auth.token_file", cfg.Auth.TokenFile},
		{"vault.auth.secret_id_file", cfg.Auth.SecretIDFile},
	} {
		warnIfShared(log, f.field, f.path)
	}

	v := &vaultClient{
		client: client, cfg: cfg, getenv: getenv, now: now,
		loggedIn: make(chan struct{}), relogin: make(chan struct{}, 1),
	}
	v.setLogger(log)
	return v, nil
}

// apiConfig builds the Vault client's configuration from cfg alone, and
// lists what in it is insecure. api.DefaultConfig is not used: it reads the
// process environment, where VAULT_AGENT_ADDR replaces the address,
// VAULT_SKIP_VERIFY turns TLS verification off, and VAULT_CLIENT_CERT,
// VAULT_TLS_SERVER_NAME, VAULT_HTTP_PROXY and others change the connection,
// all over the configuration file's head.
func apiConfig(cfg VaultConfig, getenv func(string) string) (*api.Config, []string, error) {
	u, err := url.Parse(cfg.Address)
	if err != nil || (u.Scheme != "unix" && u.Host == "") {
		return nil, nil, fmt.Errorf("vault.address %q is not an https:// URL", cfg.Address)
	}
	var insecure []string
	switch u.Scheme {
	case "https", "unix":
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			if !cfg.AllowInsecure {
				return nil, nil, fmt.Errorf("vault.address %q is plain http to a host that is not loopback: the Vault token and the Exotel credentials would cross the network in clear; use https, or set vault.allow_insecure: true (tests only)", cfg.Address)
			}
			insecure = append(insecure, "plain http to a host that is not loopback")
		}
	default:
		return nil, nil, fmt.Errorf("vault.address %q: scheme %q is not https, http or unix", cfg.Address, u.Scheme)
	}
	skip := false
	if raw := getenv(api.EnvVaultSkipVerify); raw != "" {
		if skip, err = strconv.ParseBool(raw); err != nil {
			return nil, nil, fmt.Errorf("%s=%q is not true or false", api.EnvVaultSkipVerify, raw)
		}
	}
	if skip {
		if !cfg.AllowInsecure {
			return nil, nil, fmt.Errorf("%s=true would turn off verification of Vault's TLS certificate: refused; unset it and set vault.ca_file, or set vault.allow_insecure: true (tests only)", api.EnvVaultSkipVerify)
		}
		insecure = append(insecure, api.EnvVaultSkipVerify+"=true: Vault's TLS certificate is not verified")
	}

	tr := http.DefaultTransport.(*http.Transport).Clone()
	// vault.timeout bounds each request, its dial and handshake included.
	tr.TLSHandshakeTimeout = cfg.Timeout
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: skip}
	conf := &api.Config{
		Address: cfg.Address,
		HttpClient: &http.Client{
			Transport: tr,
			// The api client follows Vault's redirects itself.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		Timeout: cfg.Timeout,
		// The loops here retry with their own backoff; a request waiting on
		// a forced refresh must not sit in the client's retries.
		MaxRetries: 0,
	}
	if cfg.CAFile != "" {
		if err := conf.ConfigureTLS(&api.TLSConfig{CACert: cfg.CAFile, Insecure: skip}); err != nil {
			return nil, nil, fmt.Errorf("vault.ca_file: %w", err)
		}
	}
	return conf, insecure, nil
}

// isLoopbackHost reports whether host (no port) is localhost or a loopback
// address.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// warnIfShared logs a warning when a credential file is readable by its
// group or by others. It names the file and its mode, never its content; a
// missing file is not reported here (the login says so).
func warnIfShared(log zerolog.Logger, field, path string) {
	if path == "" {
		return
	}
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return
	}
	if perm := fi.Mode().Perm(); perm&0o044 != 0 {
		log.Warn().Str("field", field).Str("file", path).Str("mode", fmt.Sprintf("%#o", perm)).
			Msg("vault: a credential file is readable by group or others; make it 0600 or 0400 (Kubernetes: defaultMode 0400)")
	}
}

func (v *vaultClient) log() *zerolog.Logger { return v.logp.Load() }

// setLogger makes log the logger of the login loop (a reload may change the
// level or format).
func (v *vaultClient) setLogger(log zerolog.Logger) { v.logp.Store(&log) }

// acquire counts a started Store as a user, and starts the login loop for
// the first one.
func (v *vaultClient) acquire() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.users++
	if v.users == 1 {
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		v.stop, v.done = stop, done
		go func() {
			defer close(done)
			v.run(ctx)
		}()
	}
}

// release is acquire's counterpart: when the last user goes, it stops the
// login loop and revokes the token exogate logged in for.
func (v *vaultClient) release(ctx context.Context) error {
	v.mu.Lock()
	v.users--
	if v.users > 0 {
		v.mu.Unlock()
		return nil
	}
	stop, done := v.stop, v.done
	v.stop, v.done = nil, nil
	v.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	return v.revoke(ctx)
}

// sameSession reports whether a client built from cfg would be this one:
// same Vault, same identity, same settings.
func (v *vaultClient) sameSession(cfg VaultConfig) bool {
	return v.cfg == cfg
}

// spentWrapped returns the digest of the last wrapped secret id used.
func (v *vaultClient) spentWrapped() [sha256.Size]byte {
	v.wrappedMu.Lock()
	defer v.wrappedMu.Unlock()
	return v.lastWrapped
}

func (v *vaultClient) setSpentWrapped(sum [sha256.Size]byte) {
	v.wrappedMu.Lock()
	v.lastWrapped = sum
	v.wrappedMu.Unlock()
}

// TokenExpiresAt returns when the Vault token expires (zero if unknown or
// never).
func (v *vaultClient) TokenExpiresAt() time.Time {
	if n := v.expiresAt.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// run logs in and keeps the token alive until ctx ends: it renews the token
// with a LifetimeWatcher and logs in again when renewal ends (max TTL) or a
// Vault call is refused, backing off from 1s to 5min while Vault fails.
func (v *vaultClient) run(ctx context.Context) {
	bo := retryBackoff(v.now)
	for ctx.Err() == nil {
		secret, err := v.login(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			wait := bo.NextBackOff()
			v.log().Error().Str("method", v.cfg.Auth.Method).Str("error", err.Error()).Dur("retry_in", wait).Msg("vault: login failed")
			if !sleep(ctx, wait) {
				return
			}
			continue
		}
		bo.Reset()
		// A refusal seen before this login was about the old token.
		select {
		case <-v.relogin:
		default:
		}
		v.loginOnce.Do(func() { close(v.loggedIn) })
		v.watch(ctx, secret)
	}
}

// login gets a token by the configured method and sets it on the client.
func (v *vaultClient) login(ctx context.Context) (*api.Secret, error) {
	a := v.cfg.Auth
	if a.Method == "token" {
		return v.useToken(ctx)
	}
	// A login must not carry the old, maybe expired, token: Vault would
	// judge the unwrap or the login by it.
	v.client.ClearToken()
	auth, answered, err := v.loginMethod()
	if err != nil {
		return nil, err
	}
	secret, err := v.client.Auth().Login(ctx, auth)
	if answered != nil {
		answered(err)
	}
	if err != nil {
		return nil, fmt.Errorf("%s login: %s", a.Method, describeVaultError(err))
	}
	if secret == nil || secret.Auth == nil {
		return nil, fmt.Errorf("%s login: Vault returned no token", a.Method)
	}
	v.ownToken.Store(true)
	ttl := time.Duration(secret.Auth.LeaseDuration) * time.Second
	v.setExpiry(ttl)
	v.log().Info().Str("method", a.Method).Dur("ttl", ttl).Bool("renewable", secret.Auth.Renewable).Msg("vault: logged in")
	return secret, nil
}

// useToken sets the configured token (read again at each call) on the
// client and looks up its lifetime.
func (v *vaultClient) useToken(ctx context.Context) (*api.Secret, error) {
	tok, err := v.readToken()
	if err != nil {
		return nil, err
	}
	v.client.SetToken(tok)
	self, err := v.client.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("token lookup: %s", describeVaultError(err))
	}
	renewable, _ := self.TokenIsRenewable()
	ttl, _ := self.TokenTTL()
	v.setExpiry(ttl)
	v.log().Info().Str("method", "token").Dur("ttl", ttl).Bool("renewable", renewable).Msg("vault: token in use")
	return &api.Secret{Auth: &api.SecretAuth{ClientToken: tok, Renewable: renewable, LeaseDuration: int(ttl.Seconds())}}, nil
}

// loginMethod is the approle or kubernetes login, made anew for each login
// (the files it reads may have been replaced), and, when not nil, what to
// do with the login's error once it has been tried.
func (v *vaultClient) loginMethod() (api.AuthMethod, func(error), error) {
	a := v.cfg.Auth
	switch a.Method {
	case "approle":
		return v.approleLogin()
	case "kubernetes":
		// A new auth value for each login: the kubelet rotates the file.
		auth, err := kubernetes.NewKubernetesAuth(a.Role,
			kubernetes.WithServiceAccountTokenPath(a.ServiceAccountTokenFile),
			kubernetes.WithMountPath(a.Mount))
		if err != nil {
			return nil, nil, fmt.Errorf("kubernetes: %s", describeVaultError(err))
		}
		return auth, nil, nil
	}
	return nil, nil, fmt.Errorf("%s login: not a login method", a.Method)
}

// approleLogin is the AppRole login. A wrapped secret id is used once: the
// returned func remembers it as spent when Vault answered the login.
func (v *vaultClient) approleLogin() (api.AuthMethod, func(error), error) {
	a := v.cfg.Auth
	roleID, err := v.secretFrom(a.RoleIDFile, a.RoleIDEnv)
	if err != nil {
		return nil, nil, fmt.Errorf("role id: %w", err)
	}
	// Read here, from the file or through getenv, at every login: the
	// file may have been replaced, and the library would read the
	// process environment rather than ours.
	raw, err := v.secretFrom(a.SecretIDFile, a.SecretIDEnv)
	if err != nil {
		return nil, nil, fmt.Errorf("secret id: %w", err)
	}
	sid := approle.SecretID{FromString: raw}
	opts := []approle.LoginOption{approle.WithMountPath(a.Mount)}
	sum := sha256.Sum256([]byte(raw))
	if a.SecretIDWrapped {
		if sum == v.spentWrapped() {
			return nil, nil, errors.New("the wrapped secret id was already used once; waiting for a new one")
		}
		opts = append(opts, approle.WithWrappingToken())
	}
	auth, err := approle.NewAppRoleAuth(roleID, &sid, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("approle: %w", err)
	}
	answered := func(err error) {
		var re *api.ResponseError
		if a.SecretIDWrapped && (err == nil || errors.As(err, &re)) {
			// Vault answered, so the wrapping token was spent (or
			// refused): never again. Had Vault been unreachable, it is
			// still good.
			v.setSpentWrapped(sum)
		}
	}
	return auth, answered, nil
}

// secretFrom reads a value from file when one is named, else from the
// environment variable env.
func (v *vaultClient) secretFrom(file, env string) (string, error) {
	if file != "" {
		return readSecret(file)
	}
	if s := v.getenv(env); s != "" {
		return s, nil
	}
	return "", fmt.Errorf("environment variable %s is not set", env)
}

func (v *vaultClient) setExpiry(ttl time.Duration) {
	if ttl <= 0 {
		v.expiresAt.Store(0)
		return
	}
	v.expiresAt.Store(v.now().Add(ttl).UnixNano())
}

// readToken returns the token of the token method: the token file's content,
// or VAULT_TOKEN.
func (v *vaultClient) readToken() (string, error) {
	if f := v.cfg.Auth.TokenFile; f != "" {
		return readSecret(f)
	}
	if tok := v.getenv(api.EnvVaultToken); tok != "" {
		return tok, nil
	}
	return "", errors.New("no token: set vault.auth.token_file or VAULT_TOKEN")
}

// watch keeps the token alive until it can no longer be renewed, a Vault
// call is refused, or (token method with a file) the file changes. It
// returns when a new login is due.
func (v *vaultClient) watch(ctx context.Context, secret *api.Secret) {
	var done <-chan error
	var renewed <-chan *api.RenewOutput
	if secret.Auth.Renewable && secret.Auth.LeaseDuration > 0 {
		w, err := v.client.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: secret})
		if err == nil {
			go w.Start()
			defer w.Stop()
			done, renewed = w.DoneCh(), w.RenewCh()
		}
	}
	var expiry <-chan time.Time
	if !secret.Auth.Renewable && secret.Auth.LeaseDuration > 0 {
		// Not renewable: log in again a little before it expires.
		lease := time.Duration(secret.Auth.LeaseDuration) * time.Second
		t := time.NewTimer(lease - lease/10)
		defer t.Stop()
		expiry = t.C
	}
	var fileTick <-chan time.Time
	if v.cfg.Auth.Method == "token" && v.cfg.Auth.TokenFile != "" {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		fileTick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-done:
			msg := "token can no longer be renewed (max TTL reached)"
			if err != nil {
				msg = "token renewal failed: " + describeVaultError(err)
			}
			v.log().Info().Str("reason", msg).Msg("vault: logging in again")
			return
		case r := <-renewed:
			if r != nil && r.Secret != nil && r.Secret.Auth != nil {
				v.setExpiry(time.Duration(r.Secret.Auth.LeaseDuration) * time.Second)
				v.log().Debug().Int("ttl_seconds", r.Secret.Auth.LeaseDuration).Msg("vault: token renewed")
			}
		case <-expiry:
			return
		case <-v.relogin:
			v.log().Warn().Msg("vault: a request was refused (403); logging in again")
			return
		case <-fileTick:
			if tok, err := v.readToken(); err == nil && tok != v.client.Token() {
				v.log().Info().Str("file", v.cfg.Auth.TokenFile).Msg("vault: token file changed")
				return
			}
		}
	}
}

// refused asks the login loop to log in again (after a 403).
func (v *vaultClient) refused() {
	select {
	case v.relogin <- struct{}{}:
	default:
	}
}

// revoke revokes the token exogate obtained by its own login. A token handed
// to it (VAULT_TOKEN, a Vault Agent sink) belongs to someone else and stays.
func (v *vaultClient) revoke(ctx context.Context) error {
	if !v.ownToken.Load() || v.client.Token() == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := v.client.Auth().Token().RevokeSelfWithContext(ctx, ""); err != nil {
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
			// Already expired or revoked: nothing left to revoke.
			v.client.ClearToken()
			return nil
		}
		return fmt.Errorf("vault: revoking our token: %s", describeVaultError(err))
	}
	v.client.ClearToken()
	v.log().Info().Msg("vault: token revoked")
	return nil
}

// secretSource returns the source of one account's pair.
func (v *vaultClient) secretSource(s VaultSecret) (*vaultSource, error) {
	if s.Mount == "" {
		s.Mount = "secret"
	}
	if s.KVVersion == 0 {
		s.KVVersion = 2
	}
	if s.KVVersion != 1 && s.KVVersion != 2 {
		return nil, fmt.Errorf("vault.kv_version %d is not 1 or 2", s.KVVersion)
	}
	if s.APIKeyField == "" {
		s.APIKeyField = "api_key"
	}
	if s.APITokenField == "" {
		s.APITokenField = "api_token"
	}
	s.Path = strings.Trim(s.Path, "/")
	if s.Path == "" {
		return nil, errors.New("vault.path is required")
	}
	return &vaultSource{v: v, s: s}, nil
}

// vaultSource reads one account's pair from a KV secret.
type vaultSource struct {
	v *vaultClient
	s VaultSecret
}

func (vs *vaultSource) kind() string { return "vault" }

func (vs *vaultSource) where() string {
	if vs.s.KVVersion == 2 {
		return fmt.Sprintf("%s/data/%s (fields %s, %s)", vs.s.Mount, vs.s.Path, vs.s.APIKeyField, vs.s.APITokenField)
	}
	return fmt.Sprintf("%s/%s (fields %s, %s)", vs.s.Mount, vs.s.Path, vs.s.APIKeyField, vs.s.APITokenField)
}

func (vs *vaultSource) load(ctx context.Context) (pair, error) {
	select {
	case <-vs.v.loggedIn:
	case <-ctx.Done():
		return pair{}, fmt.Errorf("not logged in to Vault yet")
	}
	ctx, cancel := context.WithTimeout(ctx, vs.v.cfg.Timeout)
	defer cancel()

	var p pair
	var data map[string]any
	if vs.s.KVVersion == 2 {
		sec, err := vs.v.client.KVv2(vs.s.Mount).Get(ctx, vs.s.Path)
		if err != nil {
			return pair{}, vs.readError(err)
		}
		if sec.Data == nil {
			// A deleted or destroyed latest version reads as no data.
			v := 0
			if sec.VersionMetadata != nil {
				v = sec.VersionMetadata.Version
			}
			return pair{}, fmt.Errorf("latest version %d of the secret is deleted or destroyed", v)
		}
		data = sec.Data
		if m := sec.VersionMetadata; m != nil {
			p.version, p.created = fmt.Sprintf("v%d", m.Version), m.CreatedTime
		}
	} else {
		sec, err := vs.v.client.KVv1(vs.s.Mount).Get(ctx, vs.s.Path)
		if err != nil {
			return pair{}, vs.readError(err)
		}
		data = sec.Data
	}
	var err error
	if p.key, err = field(data, vs.s.APIKeyField); err != nil {
		return pair{}, err
	}
	if p.token, err = field(data, vs.s.APITokenField); err != nil {
		return pair{}, err
	}
	if p.version == "" {
		// KV v1 keeps no versions: the pair's fingerprint stands for one.
		p.version = "kv1-" + Fingerprint(p.key, p.token)
	}
	return p, nil
}

// readSecret returns the trimmed content of a small file holding a secret.
func readSecret(path string) (string, error) {
	v, _, err := readSecretFile(path)
	return v, err
}

// readError describes a failed read without quoting anything Vault sent,
// and asks for a new login when Vault refused the token.
func (vs *vaultSource) readError(err error) error {
	var re *api.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
		vs.v.refused()
		return errors.New("permission denied (403): check the token's policy for this path")
	}
	if errors.Is(err, api.ErrSecretNotFound) {
		return errors.New("no secret at this path")
	}
	return errors.New(describeVaultError(err))
}

// field returns a non-empty string field of a secret's data.
func field(data map[string]any, name string) (string, error) {
	raw, ok := data[name]
	if !ok {
		return "", fmt.Errorf("field %q is missing from the secret", name)
	}
	var s string
	switch v := raw.(type) {
	case string:
		s = v
	case json.Number:
		s = v.String()
	default:
		return "", fmt.Errorf("field %q is not a string", name)
	}
	if strings.TrimSpace(s) == "" {
		return "", fmt.Errorf("field %q is empty", name)
	}
	return strings.TrimSpace(s), nil
}

// describeVaultError reduces a Vault client error to its status and Vault's
// own error strings (which name paths and reasons, never secret data), or to
// the transport failure.
func describeVaultError(err error) string {
	var re *api.ResponseError
	if errors.As(err, &re) {
		msg := fmt.Sprintf("Vault answered %d", re.StatusCode)
		if len(re.Errors) > 0 {
			msg += ": " + strings.Join(re.Errors, "; ")
		}
		return msg
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Op + " " + pe.Path + ": " + pe.Err.Error()
	}
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	return msg
}
