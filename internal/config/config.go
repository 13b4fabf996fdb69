// Package config holds exogate's configuration: the file format, its defaults,
// the zero-setup environment mode, and validation whose every message names the
// field at fault.
//
// Order of precedence: built-in defaults, then the YAML file (decoded strictly:
// an unknown key is an error), then environment variables, then flags (applied
// by the caller), then Validate. No secret is ever read from the file: the file
// names where credentials come from, never what they are.
//
// The file format's types are kept apart from the runtime packages'
// settings: runtime.go maps one to the other field by field, validate.go
// holds Validate (one function per section), and yamlerror.go puts the
// YAML library's errors in the file's terms.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/exogate/exogate/credentials"
	"github.com/exogate/exogate/internal/exotel"
	"github.com/exogate/exogate/proxy"
	"github.com/exogate/exogate/ratelimit"
)

// Config is the whole gateway configuration. The zero value is not useful:
// start from Default.
type Config struct {
	Listen          string        `yaml:"listen"`
	Admin           Admin         `yaml:"admin"`
	Log             Log           `yaml:"log"`
	Upstream        Upstream      `yaml:"upstream"`
	Accounts        []Account     `yaml:"accounts"`
	Limits          Limits        `yaml:"limits"`
	Breaker         Breaker       `yaml:"breaker"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	ShutdownDelay   time.Duration `yaml:"shutdown_delay"`
	MaxBody         ByteSize      `yaml:"max_body"`
	MaxInFlight     int           `yaml:"max_in_flight"`
	MaxHeaderBytes  ByteSize      `yaml:"max_header_bytes"`
	Server          Server        `yaml:"server"`
	Vault           Vault         `yaml:"vault"`
	Rotation        Rotation      `yaml:"rotation"`
	TLS             TLS           `yaml:"tls"`
	Auth            Auth          `yaml:"auth"`
	Clients         []Client      `yaml:"clients"`
	Webhooks        Webhooks      `yaml:"webhooks"`
	Idempotency     Idempotency   `yaml:"idempotency"`
}

// TLS is the Exotel-facing listener's TLS. A client CA turns on mTLS.
type TLS struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
}

// Auth says whether callers must prove who they are.
//
// Without clients, every caller is anonymous: auth.required (default false
// on a loopback listener, true elsewhere) must then be false, which off
// loopback needs auth.allow_unauthenticated. With clients, a caller must
// prove one of their identities (an identity that names no client is always
// 401), unless auth.allow_anonymous lets callers without identity through
// with only the rights of auth.anonymous (default: none).
type Auth struct {
	// Required: nil means the default: without clients, false on a
	// loopback listener and true elsewhere; with clients, true unless
	// AllowAnonymous (and false is then an error: see Validate).
	Required             *bool `yaml:"required"`
	AllowUnauthenticated bool  `yaml:"allow_unauthenticated"`
	// AllowAnonymous, with clients configured, lets a caller with no
	// identity proceed with the rights of Anonymous instead of getting 401.
	AllowAnonymous bool `yaml:"allow_anonymous"`
	// Anonymous are the rights of a caller with no identity. Nil means
	// none with clients, and all without (the sidecar on loopback).
	Anonymous *Rights `yaml:"anonymous"`
}

// Rights are what a caller may do; a request must be allowed by each list.
type Rights struct {
	Accounts   []string `yaml:"accounts"`   // SIDs; "*" = all
	Buckets    []string `yaml:"buckets"`    // empty = all
	Methods    []string `yaml:"methods"`    // empty = all
	Operations []string `yaml:"operations"` // calls.connect, sms.*, *.read...; empty = all
}

// Client is one caller of the gateway and its rights.
type Client struct {
	ID           string   `yaml:"id"`
	SecretSHA256 string   `yaml:"secret_sha256"`
	CertIdentity string   `yaml:"cert_identity"` // uri:…, dns:… or cn:…
	Accounts     []string `yaml:"accounts"`
	Buckets      []string `yaml:"buckets"`
	Methods      []string `yaml:"methods"`
	Operations   []string `yaml:"operations"`
	Share        int      `yaml:"share"`
	MaxPerPeriod int      `yaml:"max_per_period"`
}

// Rights returns the client's rights.
func (cl Client) Rights() Rights {
	return Rights{Accounts: cl.Accounts, Buckets: cl.Buckets, Methods: cl.Methods, Operations: cl.Operations}
}

// AuthRequired resolves whether a caller without identity is refused (401).
// With clients configured: yes, unless auth.allow_anonymous is set. Without:
// auth.required as set, else true unless the listener is loopback-only or
// auth.allow_unauthenticated is set.
func (c *Config) AuthRequired() bool {
	if len(c.Clients) > 0 {
		return !c.Auth.AllowAnonymous
	}
	if c.Auth.Required != nil {
		return *c.Auth.Required
	}
	return !IsLoopback(c.Listen) && !c.Auth.AllowUnauthenticated
}

// ErrPlaceholder is the error Validate reports for a client secret_sha256
// that is a placeholder (as in the shipped manifests), so that a manifest
// applied verbatim authorises no one. Test with errors.Is.
var ErrPlaceholder = errors.New("is a placeholder: make a secret of at least 32 characters (openssl rand -base64 32), put its hash from `exogate hash-secret` here and give the secret to the client; until then exogate refuses to start")

// IsPlaceholder reports whether a configured secret_sha256 is a placeholder:
// it starts with "REPLACE" (any case) or "<".
func IsPlaceholder(s string) bool {
	return strings.HasPrefix(strings.ToUpper(s), "REPLACE") || strings.HasPrefix(s, "<")
}

// IsLoopback reports whether a host:port listens on loopback only.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Vault says how to reach and log in to HashiCorp Vault. Empty address, CA
// file and namespace fall back to VAULT_ADDR, VAULT_CACERT, VAULT_NAMESPACE.
type Vault struct {
	Address         string        `yaml:"address"`
	CAFile          string        `yaml:"ca_file"`
	Namespace       string        `yaml:"namespace"`
	Timeout         time.Duration `yaml:"timeout"`
	Auth            VaultAuth     `yaml:"auth"`
	RefreshInterval time.Duration `yaml:"refresh_interval"`
	// AllowInsecure accepts a plain-http address that is not loopback and
	// VAULT_SKIP_VERIFY=true (both warned about at start-up); for tests.
	AllowInsecure bool `yaml:"allow_insecure"`
}

// VaultAuth is the Vault login method and what it needs.
type VaultAuth struct {
	Method                  string `yaml:"method"` // token | approle | kubernetes
	Mount                   string `yaml:"mount"`
	TokenFile               string `yaml:"token_file"`
	RoleIDFile              string `yaml:"role_id_file"`
	RoleIDEnv               string `yaml:"role_id_env"`
	SecretIDFile            string `yaml:"secret_id_file"`
	SecretIDEnv             string `yaml:"secret_id_env"`
	SecretIDWrapped         bool   `yaml:"secret_id_wrapped"`
	Role                    string `yaml:"role"`
	ServiceAccountTokenFile string `yaml:"service_account_token_file"`
}

// Rotation tunes how rotated credentials are picked up.
type Rotation struct {
	FilePollInterval time.Duration `yaml:"file_poll_interval"`
	PreviousGrace    time.Duration `yaml:"previous_grace"`
	MinForcedRefresh time.Duration `yaml:"min_forced_refresh"`
	// ReauthorizeWait bounds how long a request Exotel answered 401 waits
	// for the re-read it forced before the 401 is passed on.
	ReauthorizeWait time.Duration `yaml:"reauthorize_wait"`
	// MaxAge is how old (since its source made it) a credential may grow
	// before `exogate check` warns, /status flags it and the shipped alert
	// fires. Default 2160h (90 days).
	MaxAge time.Duration `yaml:"max_age"`
}

// Admin is the operator's listener: /metrics, /status, /healthz, /readyz,
// POST /-/reload. Never on the Exotel-facing listener.
type Admin struct {
	Listen string `yaml:"listen"` // "" disables it
	// TokenFile names a file holding the bearer token that every admin
	// request other than GET and HEAD (POST /-/reload) must carry. Required
	// when Listen is not loopback; when set, required on loopback too.
	TokenFile string `yaml:"token_file"`
	// MinReloadInterval: POST /-/reload is answered 429 when the previous
	// one was less than this ago. 0 means no limit. Default 5s.
	MinReloadInterval time.Duration `yaml:"min_reload_interval"`
	// AdvertiseURL is where other tools reach this replica's admin
	// listener (http or https, host and port only), published with the
	// replica's heartbeats when limits.backend is redis. "" means
	// http://<the bound host:port>, with the machine's host name for an
	// unspecified host (0.0.0.0, ::).
	AdvertiseURL string `yaml:"advertise_url"`
}

// Log configures the logger.
type Log struct {
	Level  string `yaml:"level"`  // trace | debug | info | warn | error
	Format string `yaml:"format"` // json | console
}

// Server holds the listener's protective timeouts.
type Server struct {
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	// WriteTimeout bounds writing the answer, counted from when it starts:
	// time in the limiter's line and waiting for Exotel is never cut.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// MaxConnections bounds the proxy listener's open connections; one past
	// it gets a single 503 overloaded and is closed.
	MaxConnections int `yaml:"max_connections"`
}

// Upstream configures how exogate reaches Exotel.
type Upstream struct {
	CAFile              string        `yaml:"ca_file"`
	Timeout             time.Duration `yaml:"timeout"`
	DialTimeout         time.Duration `yaml:"dial_timeout"`
	TLSHandshakeTimeout time.Duration `yaml:"tls_handshake_timeout"`
	MaxIdleConnsPerHost int           `yaml:"max_idle_conns_per_host"`
	IdleConnTimeout     time.Duration `yaml:"idle_conn_timeout"`
	// Client has no effect: Go's http.Transport (HTTP/1.1) is the only
	// upstream client. It is still read, http1 or net/http, so that a file
	// that sets it keeps loading; exogate logs a warning when it is http1.
	Client            string                 `yaml:"client"`
	AllowInsecureHTTP bool                   `yaml:"allow_insecure_http"`
	Regions           map[string]RegionHosts `yaml:"regions"`
}

// RegionHosts are the two Exotel base URLs of one region.
type RegionHosts struct {
	API string `yaml:"api"`
	CCM string `yaml:"ccm"`
}

// Account is one Exotel account served by the gateway.
type Account struct {
	SID         string      `yaml:"sid"`
	Region      string      `yaml:"region"`
	Credentials Credentials `yaml:"credentials"`
}

// Credentials says where an account's API key and token come from.
type Credentials struct {
	Source       string       `yaml:"source"` // env | file | vault
	APIKeyEnv    string       `yaml:"api_key_env"`
	APITokenEnv  string       `yaml:"api_token_env"`
	APIKeyFile   string       `yaml:"api_key_file"`
	APITokenFile string       `yaml:"api_token_file"`
	Vault        *VaultSecret `yaml:"vault"`
}

// VaultSecret is where an account's pair lives in Vault's KV engine.
type VaultSecret struct {
	Mount         string `yaml:"mount"`
	Path          string `yaml:"path"`
	KVVersion     int    `yaml:"kv_version"`
	APIKeyField   string `yaml:"api_key_field"`
	APITokenField string `yaml:"api_token_field"`
}

// Limits configures the per-account rate limits.
type Limits struct {
	MaxWait          time.Duration   `yaml:"max_wait"`
	Buckets          map[string]Rule `yaml:"buckets"`
	Account          Rule            `yaml:"account"`
	Backend          string          `yaml:"backend"` // memory | redis
	Redis            Redis           `yaml:"redis"`
	OnBackendFailure string          `yaml:"on_backend_failure"` // local | allow | deny
	Replicas         int             `yaml:"replicas"`
}

// Redis says how to reach the Redis that holds the fleet's shared budget
// (ratelimit.RedisConfig, which documents each field and its default).
// The username and password come from environment variables, never the file.
type Redis struct {
	Address     string        `yaml:"address"`      // default 127.0.0.1:6379
	UsernameEnv string        `yaml:"username_env"` // default none
	PasswordEnv string        `yaml:"password_env"` // default REDIS_PASSWORD
	DB          int           `yaml:"db"`
	TLS         bool          `yaml:"tls"`
	CAFile      string        `yaml:"ca_file"`
	KeyPrefix   string        `yaml:"key_prefix"` // default "exogate:", as ratelimit's
	Timeout     time.Duration `yaml:"timeout"`    // default 100ms, as ratelimit's
}

// Rule is one budget: at most Limit requests in any window of Period.
type Rule struct {
	Limit  int           `yaml:"limit"`
	Period time.Duration `yaml:"period"`
	Burst  int           `yaml:"burst"`
}

// Breaker configures the circuit breaker kept per account and upstream host
// (proxy.BreakerSettings, which documents each field). The file format's
// defaults are proxy.BreakerSettings' except that the failure ratio is on
// (0.5 of at least 20 requests), where the proxy's zero value leaves it off;
// see Default.
type Breaker struct {
	ConsecutiveFailures uint32        `yaml:"consecutive_failures"` // default 5
	FailureRatio        float64       `yaml:"failure_ratio"`        // default 0.5; 0 = off
	MinRequests         uint32        `yaml:"min_requests"`         // default 20
	Interval            time.Duration `yaml:"interval"`             // default 1m
	OpenFor             time.Duration `yaml:"open_for"`             // default 30s
	HalfOpenRequests    uint32        `yaml:"half_open_requests"`   // default 1
}

// Region names and their default hosts, from Exotel's documentation.
const (
	RegionSingapore = "singapore"
	RegionMumbai    = "mumbai"
)

// DefaultRegions returns Exotel's public hosts per region.
func DefaultRegions() map[string]RegionHosts {
	return map[string]RegionHosts{
		RegionSingapore: {API: "https://api.exotel.com", CCM: "https://ccm-api.exotel.com"},
		RegionMumbai:    {API: "https://api.in.exotel.com", CCM: "https://ccm-api.in.exotel.com"},
	}
}

// Default returns the built-in configuration, with no accounts.
//
// Each runtime package documents what its zero values mean (proxy.Config,
// proxy.BreakerSettings, ratelimit.RedisConfig, credentials.Config and
// credentials.VaultConfig). Default holds two kinds of value:
//
//   - choices of the gateway's own, where the runtime's zero value would be
//     wrong for it or there is no runtime default (no timeout at all in
//     net/http, a breaker that never looks at the failure ratio); each says
//     why;
//   - the runtime's own default, read from its package (in
//     runtimeDefaults) so that the file format can refuse an explicit 0
//     that would silently mean that default, and so that
//     config.example.yaml can show it; it has the same effect whether set
//     here or left to the runtime.
func Default() Config {
	buckets := make(map[string]Rule, exotel.NumBuckets)
	for _, b := range exotel.Buckets() {
		// The limiter has no default budget: Exotel's documented 200 calls
		// a minute per account and API, one at a time.
		buckets[b.String()] = Rule{Limit: 200, Period: time.Minute, Burst: 1}
	}
	c := Config{
		// Loopback: a gateway that adds credentials is never open by default.
		Listen: "127.0.0.1:8080",
		// MinReloadInterval: a reload re-reads every secret, so it is paced.
		Admin: Admin{Listen: "127.0.0.1:9901", MinReloadInterval: 5 * time.Second},
		Log:   Log{Level: "info", Format: "json"},
		Upstream: Upstream{
			// net/http's zero values mean no timeout at all; these bound a
			// stuck Exotel (30s is longer than any of its documented calls).
			Timeout:             30 * time.Second,
			DialTimeout:         5 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
			IdleConnTimeout:     90 * time.Second,
			// net/http keeps 2 idle connections per host: too few for a
			// gateway that sends every caller's requests to one host.
			MaxIdleConnsPerHost: 64,
			Client:              "net/http",
			Regions:             DefaultRegions(),
		},
		Limits: Limits{
			// Zero would refuse at once what must wait a moment for a token.
			MaxWait: 2 * time.Second,
			Buckets: buckets,
			// No account-wide cap (limit 0); a cap given without a period
			// counts per minute, like the buckets.
			Account: Rule{Limit: 0, Period: time.Minute},
			Backend: "memory",
			Redis: Redis{
				// Not go-redis's "localhost:6379": no name to resolve.
				Address:     "127.0.0.1:6379",
				PasswordEnv: "REDIS_PASSWORD",
				// Written out, not left to ratelimit.RedisConfig's zero
				// value: the clients' limiters put their keys under it,
				// extended with "client:<id>:".
				KeyPrefix: ratelimit.DefaultKeyPrefix,
			},
		},
		Breaker: Breaker{
			// proxy.BreakerSettings leaves the failure ratio off (0): the
			// gateway also opens on half of at least 20 requests failing,
			// which catches an Exotel that fails often but not 5 times in
			// a row.
			FailureRatio: 0.5,
			// proxy.BreakerSettings defaults this to 5 only when the ratio
			// is off too, so with the ratio on it is set here.
			ConsecutiveFailures: 5,
		},
		// Kubernetes' default grace period is 30s: finish within it.
		ShutdownTimeout: 25 * time.Second,
		// net/http accepts 1 MiB of headers; a request to Exotel needs few.
		MaxHeaderBytes: 64 << 10,
		Server: Server{
			// net/http's zero values mean no timeout: a slow or idle caller
			// would hold a connection for ever.
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			IdleTimeout:       120 * time.Second,
			WriteTimeout:      60 * time.Second,
			// The listener has no bound of its own.
			MaxConnections: 4096,
		},
	}
	runtimeDefaults(&c)
	c.Webhooks = webhookDefaults()
	c.Idempotency = idempotencyDefaults()
	return c
}

// runtimeDefaults writes into c the runtime packages' own defaults, read
// from those packages (their one source), for the fields the file format
// refuses at 0 (see Default).
func runtimeDefaults(c *Config) {
	c.Limits.Redis.Timeout = ratelimit.DefaultRedisTimeout
	c.Limits.OnBackendFailure = ratelimit.OnFailureLocal
	b := proxy.DefaultBreakerSettings()
	c.Breaker.MinRequests = b.MinRequests
	c.Breaker.Interval = b.Interval
	c.Breaker.OpenFor = b.OpenFor
	c.Breaker.HalfOpenRequests = b.HalfOpenRequests
	c.MaxBody = proxy.DefaultMaxBody
	// Sized from the measured memory of a request (docs/operations.md).
	c.MaxInFlight = proxy.DefaultMaxInFlight
	c.Vault.Timeout = credentials.DefaultVaultTimeout
	c.Vault.Auth.Method = "token"
	c.Vault.Auth.ServiceAccountTokenFile = credentials.DefaultServiceAccountTokenFile
	cr := credentials.DefaultConfig()
	c.Vault.RefreshInterval = cr.RefreshInterval
	c.Rotation = Rotation{
		FilePollInterval: cr.FilePollInterval,
		PreviousGrace:    cr.PreviousGrace,
		MinForcedRefresh: cr.MinForcedRefresh,
		ReauthorizeWait:  cr.ReauthorizeWait,
		// Not a credentials.Config setting: the operator's rotation period.
		MaxAge: 90 * 24 * time.Hour,
	}
}

// Load reads the YAML file at path over the defaults. It does not validate.
// The webhook store's path defaults to a file beside the configuration.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return Config{}, err
	}
	cfg.Webhooks.Store.Path = cfg.Webhooks.StorePath(filepath.Dir(path))
	return cfg, nil
}

// Parse decodes YAML over the defaults, strictly: a key the format does not
// know is an error naming it. Maps given in the file (regions, buckets) are
// merged over the defaults key by key. It does not validate.
func Parse(data []byte) (Config, error) {
	cfg := Default()
	defRegions, defBuckets := cfg.Upstream.Regions, cfg.Limits.Buckets
	cfg.Upstream.Regions, cfg.Limits.Buckets = nil, nil

	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("config: %s", describeYAMLError(err, data))
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Config{}, errors.New("config: more than one YAML document in the file")
	}

	for name, h := range cfg.Upstream.Regions {
		if d, ok := defRegions[name]; ok {
			if h.API == "" {
				h.API = d.API
			}
			if h.CCM == "" {
				h.CCM = d.CCM
			}
		}
		defRegions[name] = h
	}
	cfg.Upstream.Regions = defRegions
	for name, r := range cfg.Limits.Buckets {
		defBuckets[name] = r
	}
	cfg.Limits.Buckets = defBuckets
	for i := range cfg.Accounts {
		if cfg.Accounts[i].Region == "" {
			cfg.Accounts[i].Region = RegionSingapore
		}
		if cfg.Accounts[i].Credentials.Source == "" {
			cfg.Accounts[i].Credentials.Source = "env"
		}
	}
	for i := range cfg.Webhooks.Routes {
		cfg.Webhooks.Routes[i].SetDefaults()
	}
	return cfg, nil
}

// Environment variable names of the zero-setup mode, as in Exotel's own samples.
const (
	EnvAPIKey      = "EXOTEL_API_KEY"
	EnvAPIToken    = "EXOTEL_API_TOKEN"
	EnvAccountSID  = "EXOTEL_ACCOUNT_SID"
	EnvRegion      = "EXOTEL_REGION"
	EnvListen      = "EXOGATE_LISTEN"
	EnvAdminListen = "EXOGATE_ADMIN_LISTEN"
	// EnvAdminTokenFile is admin.token_file.
	EnvAdminTokenFile = "EXOGATE_ADMIN_TOKEN_FILE"
	// EnvAdminURL is admin.advertise_url (a pod sets it from its IP).
	EnvAdminURL = "EXOGATE_ADMIN_URL"
	// EnvAllowUnauthenticated set to "true" is auth.allow_unauthenticated,
	// for the zero-setup mode in a container.
	EnvAllowUnauthenticated = "EXOGATE_ALLOW_UNAUTHENTICATED"
)

// FromEnv builds the zero-setup configuration: one account from
// EXOTEL_ACCOUNT_SID whose key and token come from EXOTEL_API_KEY and
// EXOTEL_API_TOKEN, in EXOTEL_REGION (default singapore). A missing variable
// is an error naming it. The key and token are not read here: the
// credentials package reads them.
func FromEnv(getenv func(string) string) (Config, error) {
	var missing []string
	for _, name := range []string{EnvAPIKey, EnvAPIToken, EnvAccountSID} {
		if getenv(name) == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return Config{}, fmt.Errorf("missing required environment variable %s (or pass -config FILE)", strings.Join(missing, ", "))
	}
	cfg := Default()
	if sid := getenv(EnvAccountSID); !ValidSID(sid) {
		return Config{}, fmt.Errorf("%s: %q is not an account SID (1-64 of A-Z a-z 0-9 _ -)", EnvAccountSID, sid)
	}
	region := strings.ToLower(strings.TrimSpace(getenv(EnvRegion)))
	if region == "" {
		region = RegionSingapore
	}
	if _, ok := cfg.Upstream.Regions[region]; !ok {
		return Config{}, fmt.Errorf("%s: %q is not a region (singapore or mumbai)", EnvRegion, getenv(EnvRegion))
	}
	cfg.Accounts = []Account{{
		SID:    getenv(EnvAccountSID),
		Region: region,
		Credentials: Credentials{
			Source:      "env",
			APIKeyEnv:   EnvAPIKey,
			APITokenEnv: EnvAPIToken,
		},
	}}
	return cfg, nil
}

// ApplyEnv applies the environment overrides that hold in both modes.
func (c *Config) ApplyEnv(getenv func(string) string) {
	if v := getenv(EnvListen); v != "" {
		c.Listen = v
	}
	if v, ok := lookup(getenv, EnvAdminListen); ok {
		c.Admin.Listen = v
	}
	if v := getenv(EnvAdminTokenFile); v != "" {
		c.Admin.TokenFile = v
	}
	if v := getenv(EnvAdminURL); v != "" {
		c.Admin.AdvertiseURL = v
	}
	if getenv(EnvAllowUnauthenticated) == "true" {
		c.Auth.AllowUnauthenticated = true
	}
}

// lookup reports a variable's value and whether it is set to anything,
// "-" meaning the empty value (to switch a listener off).
func lookup(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	if v == "-" {
		return "", true
	}
	return v, v != ""
}

func validClientID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// ValidSID reports whether s can be an Exotel account SID: 1-64 of A-Z
// a-z 0-9 _ -.
func ValidSID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ByteSize is a size in bytes that reads from YAML as a number or as a string
// with a unit: 512, 64KiB, 1MiB, 10MB.
type ByteSize int64

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

// ParseByteSize parses "1MiB", "64KiB", "10MB", "1024".
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size (examples: 1048576, 64KiB, 1MiB)", s)
	}
	return ByteSize(n * mult), nil
}
