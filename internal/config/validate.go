package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/exogate/exogate/internal/callers"
	"github.com/exogate/exogate/internal/exotel"
	"github.com/exogate/exogate/ratelimit"
)

// problems collects what Validate finds, each message naming its field.
type problems []error

// add records that field is wrong. The message is made with Errorf, so that
// a sentinel given with %w (ErrPlaceholder) can be told apart with errors.Is.
func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %w", field, fmt.Errorf(format, args...)))
}

// positive records field unless d is a positive duration.
func (p *problems) positive(field string, d time.Duration) {
	if d <= 0 {
		p.add(field, "must be a positive duration, got %s", d)
	}
}

// exists records field when it names a file that cannot be stat'ed; an
// empty name is not checked.
func (p *problems) exists(field, file string) {
	if file == "" {
		return
	}
	if _, err := os.Stat(file); err != nil {
		p.add(field, "%v", err)
	}
}

// Validate checks the whole configuration and reports every problem found,
// each naming its field. Each section has its own function below, in the
// order of the checks.
func (c *Config) Validate() error {
	var p problems
	c.validateListeners(&p)
	c.Log.validate(&p)
	c.Upstream.validate(&p)
	sids := c.validateAccounts(&p)
	c.validateVault(&p)
	// Who may call. A gateway that adds credentials to every request it
	// receives must not be open to the network by accident.
	c.validateCallers(&p, sids)
	c.TLS.validate(&p)
	c.Rotation.validate(&p)
	c.Limits.validate(&p)
	c.Breaker.validate(&p)
	c.validateServer(&p)
	c.Webhooks.validate(&p, sids)
	c.Idempotency.validate(&p)
	if c.Webhooks.Enabled() && (c.Webhooks.Listen == c.Listen || c.Webhooks.Listen == c.Admin.Listen) && !strings.HasSuffix(c.Webhooks.Listen, ":0") {
		p.add("webhooks.listen", "must differ from listen and admin.listen: the callback listener is the one Exotel reaches")
	}
	return errors.Join(p...)
}

// validateListeners checks listen and the admin section.
func (c *Config) validateListeners(p *problems) {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		p.add("listen", "%q is not host:port", c.Listen)
	}
	if c.Admin.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Admin.Listen); err != nil {
			p.add("admin.listen", "%q is not host:port", c.Admin.Listen)
		} else if c.Admin.Listen == c.Listen && !strings.HasSuffix(c.Listen, ":0") {
			p.add("admin.listen", "must differ from listen: the admin endpoints never share Exotel's path space")
		} else if !IsLoopback(c.Admin.Listen) && c.Admin.TokenFile == "" {
			p.add("admin.token_file", "required when admin.listen (%s) is not loopback: whoever reaches it could reload the configuration; "+
				"put a random token (openssl rand -hex 32) in a file readable by exogate only and name the file here or in %s", c.Admin.Listen, EnvAdminTokenFile)
		}
	}
	if c.Admin.MinReloadInterval < 0 {
		p.add("admin.min_reload_interval", "must not be negative (0 means no limit), got %s", c.Admin.MinReloadInterval)
	}
	if u := c.Admin.AdvertiseURL; u != "" {
		if err := checkAdvertiseURL(u); err != nil {
			p.add("admin.advertise_url", "%q (%s): %v", u, EnvAdminURL, err)
		}
	}
}

// checkAdvertiseURL reports why u is not http(s)://host:port.
func checkAdvertiseURL(u string) error {
	pu, err := url.Parse(u)
	switch {
	case err != nil:
		return errors.New("not a URL")
	case pu.Scheme != "http" && pu.Scheme != "https":
		return errors.New("must be http:// or https://")
	case pu.Hostname() == "" || pu.Port() == "":
		return errors.New("must name a host and a port")
	case net.ParseIP(pu.Hostname()) == nil && strings.Trim(pu.Hostname(), "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") != "":
		return errors.New("the host is neither an IP address nor a host name")
	case pu.User != nil || pu.Path != "" || pu.RawQuery != "" || pu.Fragment != "" || pu.Opaque != "":
		return errors.New("must have no user, path, query or fragment")
	}
	return nil
}

// validate checks the log section.
func (l Log) validate(p *problems) {
	switch l.Level {
	case "trace", "debug", "info", "warn", "error":
	default:
		p.add("log.level", "%q is not one of trace, debug, info, warn, error", l.Level)
	}
	switch l.Format {
	case "json", "console":
	default:
		p.add("log.format", "%q is not json or console", l.Format)
	}
}

// validate checks the upstream section and each region's hosts.
func (u Upstream) validate(p *problems) {
	p.positive("upstream.timeout", u.Timeout)
	p.positive("upstream.dial_timeout", u.DialTimeout)
	p.positive("upstream.tls_handshake_timeout", u.TLSHandshakeTimeout)
	if u.MaxIdleConnsPerHost < 0 {
		p.add("upstream.max_idle_conns_per_host", "must not be negative")
	}
	p.positive("upstream.idle_conn_timeout", u.IdleConnTimeout)
	if u.Client != "http1" && u.Client != "net/http" {
		p.add("upstream.client", "must be http1 or net/http, got %q", u.Client)
	}
	p.exists("upstream.ca_file", u.CAFile)
	for _, name := range sortedKeys(u.Regions) {
		h := u.Regions[name]
		u.validateHost(p, "upstream.regions."+name+".api", h.API)
		u.validateHost(p, "upstream.regions."+name+".ccm", h.CCM)
	}
}

// validateHost checks one region's base URL: a bare https://host[:port],
// or http:// with upstream.allow_insecure_http.
func (u Upstream) validateHost(p *problems, field, raw string) {
	parsed, err := url.Parse(raw)
	switch {
	case raw == "":
		p.add(field, "is empty")
	case err != nil:
		p.add(field, "%v", err)
	case parsed.Host == "" || parsed.User != nil || (parsed.Path != "" && parsed.Path != "/") || parsed.RawQuery != "" || parsed.Fragment != "":
		p.add(field, "%q must be a bare scheme://host[:port]", raw)
	case parsed.Scheme == "https":
	case parsed.Scheme == "http" && u.AllowInsecureHTTP:
	case parsed.Scheme == "http":
		p.add(field, "%q is plain http: Exotel requires HTTPS (set upstream.allow_insecure_http: true only for tests)", raw)
	default:
		p.add(field, "%q: scheme must be https", raw)
	}
}

// validateAccounts checks the accounts and where their credentials come
// from (the vault blocks are checked with the vault section, by
// validateVault). It returns the configured SIDs, lower-cased, each with
// its index.
func (c *Config) validateAccounts(p *problems) map[string]int {
	if len(c.Accounts) == 0 {
		p.add("accounts", "at least one account is required")
	}
	seen := map[string]int{}
	for i, a := range c.Accounts {
		field := fmt.Sprintf("accounts[%d]", i)
		if !ValidSID(a.SID) {
			p.add(field+".sid", "%q is not an account SID (1-64 of A-Z a-z 0-9 _ -)", a.SID)
		}
		sid := strings.ToLower(a.SID)
		if j, dup := seen[sid]; dup {
			p.add(field+".sid", "%q is also accounts[%d] (SIDs are matched case-insensitively)", a.SID, j)
		}
		seen[sid] = i
		if _, ok := c.Upstream.Regions[a.Region]; !ok {
			p.add(field+".region", "%q is not a configured region (have %s)", a.Region, strings.Join(sortedKeys(c.Upstream.Regions), ", "))
		}
		a.Credentials.validate(p, field+".credentials")
	}
	return seen
}

// validate checks that an account's credentials name a source and what it
// needs, and nothing another source needs.
func (cr Credentials) validate(p *problems, field string) {
	only := func(source string, set bool, key string) {
		if set && cr.Source != source {
			p.add(field+"."+key, "only applies to source %s", source)
		}
	}
	only("env", cr.APIKeyEnv != "", "api_key_env")
	only("env", cr.APITokenEnv != "", "api_token_env")
	only("file", cr.APIKeyFile != "", "api_key_file")
	only("file", cr.APITokenFile != "", "api_token_file")
	only("vault", cr.Vault != nil, "vault")
	required := func(key, value string) {
		if value == "" {
			p.add(field+"."+key, "is required for source %s", cr.Source)
		}
	}
	switch cr.Source {
	case "env":
		required("api_key_env", cr.APIKeyEnv)
		required("api_token_env", cr.APITokenEnv)
	case "file":
		required("api_key_file", cr.APIKeyFile)
		required("api_token_file", cr.APITokenFile)
	case "vault":
		// validateVault checks the block.
	default:
		p.add(field+".source", "%q is not env, file or vault", cr.Source)
	}
}

// validateVault checks every Vault setting: each account's vault block,
// and, when some account's source is vault, the vault section.
func (c *Config) validateVault(p *problems) {
	usesVault := false
	for i, a := range c.Accounts {
		if a.Credentials.Source != "vault" {
			continue
		}
		usesVault = true
		field, s := fmt.Sprintf("accounts[%d].credentials.vault", i), a.Credentials.Vault
		switch {
		case s == nil || strings.Trim(s.Path, "/") == "":
			p.add(field+".path", "is required for source vault")
		case s.KVVersion != 0 && s.KVVersion != 1 && s.KVVersion != 2:
			p.add(field+".kv_version", "%d is not 1 or 2", s.KVVersion)
		}
	}
	if !usesVault {
		return
	}
	v := c.Vault
	p.positive("vault.refresh_interval", v.RefreshInterval)
	p.positive("vault.timeout", v.Timeout)
	if v.Address != "" {
		u, err := url.Parse(v.Address)
		switch {
		case err != nil || (u.Scheme != "unix" && u.Host == ""):
			p.add("vault.address", "%q is not an https:// URL", v.Address)
		case u.Scheme == "http" && !v.AllowInsecure && !IsLoopback(net.JoinHostPort(u.Hostname(), "0")):
			p.add("vault.address", "%q is plain http to a host that is not loopback: use https, or set vault.allow_insecure: true (tests only)", v.Address)
		case u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "unix":
			p.add("vault.address", "%q: scheme %q is not https, http or unix", v.Address, u.Scheme)
		}
	}
	switch v.Auth.Method {
	case "token":
	case "approle":
		if v.Auth.RoleIDFile == "" && v.Auth.RoleIDEnv == "" {
			p.add("vault.auth.role_id_file", "approle needs role_id_file or role_id_env")
		}
		if v.Auth.SecretIDFile == "" && v.Auth.SecretIDEnv == "" {
			p.add("vault.auth.secret_id_file", "approle needs secret_id_file or secret_id_env")
		}
	case "kubernetes":
		if v.Auth.Role == "" {
			p.add("vault.auth.role", "is required for kubernetes auth")
		}
	default:
		p.add("vault.auth.method", "%q is not token, approle or kubernetes", v.Auth.Method)
	}
}

// validateCallers checks auth and clients. sids are the configured
// accounts, lower-cased.
func (c *Config) validateCallers(p *problems, sids map[string]int) {
	a := c.Auth
	if len(c.Clients) == 0 {
		required := c.AuthRequired()
		if !required && !IsLoopback(c.Listen) && !a.AllowUnauthenticated {
			p.add("auth", "listen %s is not loopback and callers are not authenticated: add clients, or set auth.allow_unauthenticated: true to accept anyone who can reach it", c.Listen)
		}
		if required {
			if a.Required == nil {
				p.add("auth", "listen %s is not loopback, so callers must authenticate: add clients, or set auth.allow_unauthenticated: true (EXOGATE_ALLOW_UNAUTHENTICATED=true) to accept anyone who can reach it", c.Listen)
			} else {
				p.add("clients", "auth.required is on but no clients are configured")
			}
		}
		if a.AllowAnonymous {
			p.add("auth.allow_anonymous", "applies only with clients: without clients every caller is anonymous (auth.anonymous, when given, limits what they may do)")
		}
	} else {
		if a.Required != nil && !*a.Required && !a.AllowAnonymous {
			p.add("auth.required", "false with clients configured would let callers without identity past every client's rights: remove it (callers without identity then get 401), or set auth.allow_anonymous: true and grant them rights in auth.anonymous")
		}
		if a.Required != nil && *a.Required && a.AllowAnonymous {
			p.add("auth.allow_anonymous", "contradicts auth.required: true")
		}
		if a.AllowUnauthenticated {
			p.add("auth.allow_unauthenticated", "applies only without clients, where it lets anyone who can reach the listener use every account; with clients configured a caller without identity gets 401: remove it (or EXOGATE_ALLOW_UNAUTHENTICATED), or set auth.allow_anonymous: true and grant such callers rights in auth.anonymous")
		}
		if a.Anonymous != nil && !a.AllowAnonymous {
			p.add("auth.anonymous", "has no effect without auth.allow_anonymous: true: with clients configured, a caller without identity gets 401")
		}
	}
	if a.Anonymous != nil {
		validateRights(p, "auth.anonymous", *a.Anonymous, sids)
	}
	c.validateClients(p, sids)
}

// validateClients checks each client: its id, its proof of identity and
// its rights.
func (c *Config) validateClients(p *problems, sids map[string]int) {
	ids := map[string]bool{}
	certs := map[string]int{}
	for i, cl := range c.Clients {
		f := fmt.Sprintf("clients[%d]", i)
		if !validClientID(cl.ID) {
			p.add(f+".id", "%q is not a client id (1-64 of a-z 0-9 _)", cl.ID)
		}
		if ids[cl.ID] {
			p.add(f+".id", "%q is configured twice", cl.ID)
		}
		ids[cl.ID] = true
		if cl.SecretSHA256 == "" && cl.CertIdentity == "" {
			p.add(f, "needs secret_sha256 (from `exogate hash-secret`) or cert_identity")
		}
		switch {
		case cl.SecretSHA256 == "":
		case IsPlaceholder(cl.SecretSHA256):
			p.add(f+".secret_sha256", "%w", ErrPlaceholder)
		case !isHex64(cl.SecretSHA256):
			p.add(f+".secret_sha256", "must be 64 hex digits: the SHA-256 from `exogate hash-secret`, never the secret itself")
		}
		if cl.CertIdentity != "" {
			if c.TLS.ClientCAFile == "" {
				p.add(f+".cert_identity", "needs tls.client_ca_file (mTLS)")
			}
			if kind, value, err := callers.ParseCertIdentity(cl.CertIdentity); err != nil {
				p.add(f+".cert_identity", "%v", err)
			} else {
				key := kind + ":" + value
				if kind == "dns" {
					key = strings.ToLower(key)
				}
				if j, dup := certs[key]; dup {
					p.add(f+".cert_identity", "%q is clients[%d]'s too", cl.CertIdentity, j)
				}
				certs[key] = i
			}
		}
		validateRights(p, f, cl.Rights(), sids)
		if cl.Share < 0 {
			p.add(f+".share", "must not be negative")
		}
		if cl.MaxPerPeriod < 0 {
			p.add(f+".max_per_period", "must not be negative")
		}
	}
}

// validateRights checks a client's or the anonymous caller's rights.
func validateRights(p *problems, f string, r Rights, sids map[string]int) {
	if len(r.Accounts) == 0 {
		p.add(f+".accounts", "list the account SIDs it may use, or \"*\"")
	}
	for j, a := range r.Accounts {
		if _, ok := sids[strings.ToLower(a)]; !ok && a != "*" {
			p.add(fmt.Sprintf("%s.accounts[%d]", f, j), "%q is not a configured account", a)
		}
	}
	for j, b := range r.Buckets {
		if _, ok := exotel.ParseBucket(b); !ok {
			p.add(fmt.Sprintf("%s.buckets[%d]", f, j), "%q is not a bucket (voice_v1, voice_v2, sms, whatsapp, other)", b)
		}
	}
	for j, m := range r.Methods {
		switch strings.ToUpper(m) {
		case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE":
		default:
			p.add(fmt.Sprintf("%s.methods[%d]", f, j), "%q is not GET, HEAD, POST, PUT, PATCH or DELETE", m)
		}
	}
	for j, o := range r.Operations {
		if _, err := callers.ExpandOperation(o); err != nil {
			p.add(fmt.Sprintf("%s.operations[%d]", f, j), "%v", err)
		}
	}
}

// validate checks the tls section.
func (t TLS) validate(p *problems) {
	if (t.CertFile == "") != (t.KeyFile == "") {
		p.add("tls", "cert_file and key_file go together")
	}
	if t.ClientCAFile != "" && t.CertFile == "" {
		p.add("tls.client_ca_file", "needs cert_file and key_file (mTLS is on a TLS listener)")
	}
	p.exists("tls.cert_file", t.CertFile)
	p.exists("tls.key_file", t.KeyFile)
	p.exists("tls.client_ca_file", t.ClientCAFile)
}

// validate checks the rotation section.
func (r Rotation) validate(p *problems) {
	p.positive("rotation.file_poll_interval", r.FilePollInterval)
	p.positive("rotation.previous_grace", r.PreviousGrace)
	p.positive("rotation.min_forced_refresh", r.MinForcedRefresh)
	p.positive("rotation.reauthorize_wait", r.ReauthorizeWait)
	p.positive("rotation.max_age", r.MaxAge)
}

// validate checks the limits section: the rules the way the limiter will,
// and the backend.
func (l Limits) validate(p *problems) {
	if l.MaxWait < 0 {
		p.add("limits.max_wait", "must not be negative")
	}
	for _, name := range sortedKeys(l.Buckets) {
		if _, ok := exotel.ParseBucket(name); !ok {
			p.add("limits.buckets."+name, "unknown bucket (have voice_v1, voice_v2, sms, whatsapp, other)")
			continue
		}
		if err := l.Buckets[name].RateLimit().Validate(); err != nil {
			p.add("limits.buckets."+name, "%v", err)
		}
	}
	if err := l.Account.RateLimit().Validate(); err != nil {
		p.add("limits.account", "%v", err)
	}
	switch l.Backend {
	case "memory":
	case "redis":
		l.Redis.validate(p)
	default:
		p.add("limits.backend", "%q is not memory or redis", l.Backend)
	}
	switch l.OnBackendFailure {
	case ratelimit.OnFailureLocal, ratelimit.OnFailureAllow, ratelimit.OnFailureDeny:
	default:
		p.add("limits.on_backend_failure", "%q is not local, allow or deny", l.OnBackendFailure)
	}
	if l.Replicas < 0 {
		p.add("limits.replicas", "must not be negative")
	}
}

// validate checks limits.redis, which applies with backend redis.
func (r Redis) validate(p *problems) {
	if _, _, err := net.SplitHostPort(r.Address); err != nil {
		p.add("limits.redis.address", "%q is not host:port", r.Address)
	}
	if r.DB < 0 {
		p.add("limits.redis.db", "must not be negative")
	}
	p.positive("limits.redis.timeout", r.Timeout)
	if r.CAFile != "" && !r.TLS {
		p.add("limits.redis.ca_file", "set tls: true to use a CA file")
	}
}

// validate checks the breaker section.
func (b Breaker) validate(p *problems) {
	if b.FailureRatio < 0 || b.FailureRatio > 1 {
		p.add("breaker.failure_ratio", "must be between 0 and 1, got %v", b.FailureRatio)
	}
	if b.ConsecutiveFailures == 0 && (b.FailureRatio == 0 || b.MinRequests == 0) {
		p.add("breaker", "set consecutive_failures, or failure_ratio with min_requests, or the breaker never opens")
	}
	p.positive("breaker.open_for", b.OpenFor)
	p.positive("breaker.interval", b.Interval)
	if b.HalfOpenRequests == 0 {
		p.add("breaker.half_open_requests", "must be at least 1")
	}
}

// validateServer checks the listener's protective limits and the shutdown
// timings.
func (c *Config) validateServer(p *problems) {
	p.positive("shutdown_timeout", c.ShutdownTimeout)
	if c.ShutdownDelay < 0 {
		p.add("shutdown_delay", "must not be negative")
	}
	if c.MaxBody <= 0 {
		p.add("max_body", "must be positive")
	}
	if c.MaxHeaderBytes < 4096 {
		p.add("max_header_bytes", "must be at least 4KiB")
	}
	p.positive("server.read_header_timeout", c.Server.ReadHeaderTimeout)
	p.positive("server.read_timeout", c.Server.ReadTimeout)
	p.positive("server.idle_timeout", c.Server.IdleTimeout)
	p.positive("server.write_timeout", c.Server.WriteTimeout)
	if c.Server.MaxConnections <= 0 {
		p.add("server.max_connections", "must be positive")
	}
	if c.MaxInFlight <= 0 {
		p.add("max_in_flight", "must be positive")
	}
}
