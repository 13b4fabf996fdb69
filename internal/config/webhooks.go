package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"time"

	"github.com/exogate/exogate/webhooks"
)

// Webhooks is the callback listener: Exotel calls it, exogate checks, keeps
// and delivers each callback to an internal service. Off unless Listen is
// set. The listener is separate from the proxy listener, which is never
// exposed to Exotel.
type Webhooks struct {
	Listen    string `yaml:"listen"`     // "" = off
	PublicURL string `yaml:"public_url"` // how Exotel reaches the listener, e.g. https://hooks.example.com
	TLS       TLS    `yaml:"tls"`        // cert_file and key_file (reloaded on change); no client CA
	// AllowInsecureHTTP serves plain HTTP (behind a balancer that terminates
	// TLS); warned at start-up.
	AllowInsecureHTTP bool `yaml:"allow_insecure_http"`
	// URLSecretEnv names the variable holding the secret that derives each
	// route's URL token; URLSecretPreviousEnv, the previous one, still
	// accepted while Exotel's configuration moves to the new URLs.
	URLSecretEnv         string         `yaml:"url_secret_env"`
	URLSecretPreviousEnv string         `yaml:"url_secret_previous_env"`
	SourceCIDRs          []string       `yaml:"source_cidrs"`    // Exotel's egress ranges; empty = any (warned)
	TrustedProxies       []string       `yaml:"trusted_proxies"` // may set X-Forwarded-For
	MaxBody              ByteSize       `yaml:"max_body"`
	Retention            time.Duration  `yaml:"retention"`
	Store                WebhookStore   `yaml:"store"`
	Routes               []WebhookRoute `yaml:"routes"`
}

// WebhookStore is where acknowledged callbacks are kept until delivered.
type WebhookStore struct {
	// Path of the embedded database. Default: webhooks.db beside the
	// configuration file (Load), or in the working directory.
	Path string `yaml:"path"`
}

// WebhookRoute is one destination for one account's callbacks of one kind.
type WebhookRoute struct {
	Name             string        `yaml:"name"`
	Account          string        `yaml:"account"` // an account SID from accounts
	Kind             string        `yaml:"kind"`    // call | sms
	Target           string        `yaml:"target"`  // the internal service's URL
	SigningSecretEnv string        `yaml:"signing_secret_env"`
	Verify           string        `yaml:"verify"`          // none | exotel
	ReconcileAfter   time.Duration `yaml:"reconcile_after"` // 0 = off; call routes only
	Retry            WebhookRetry  `yaml:"retry"`
	Concurrency      int           `yaml:"concurrency"` // deliveries in flight to the target
}

// WebhookRetry bounds a route's delivery retries.
type WebhookRetry struct {
	MaxAge      time.Duration `yaml:"max_age"`
	MaxInterval time.Duration `yaml:"max_interval"`
}

// Environment variables named by default in the webhooks section.
const (
	EnvWebhookURLSecret         = "EXOGATE_WEBHOOK_URL_SECRET"
	EnvWebhookURLSecretPrevious = "EXOGATE_WEBHOOK_URL_SECRET_PREVIOUS"
	// DefaultWebhookStoreFile is the store's file name when no path is set.
	DefaultWebhookStoreFile = "webhooks.db"
	// MinWebhookURLSecret is the shortest URL secret accepted, in bytes.
	MinWebhookURLSecret = 32
)

// webhookDefaults are the webhooks section's defaults: webhooks' own,
// written out so that the file can refuse an explicit 0.
func webhookDefaults() Webhooks {
	return Webhooks{
		URLSecretEnv:         EnvWebhookURLSecret,
		URLSecretPreviousEnv: EnvWebhookURLSecretPrevious,
		MaxBody:              webhooks.DefaultMaxBody,
		Retention:            webhooks.DefaultRetention,
	}
}

// SetDefaults fills a route's unset fields with webhooks' defaults (Load
// does it for the file's routes).
func (r *WebhookRoute) SetDefaults() {
	if r.Verify == "" {
		r.Verify = string(webhooks.VerifyNone)
	}
	if r.Retry.MaxAge == 0 {
		r.Retry.MaxAge = webhooks.DefaultMaxAge
	}
	if r.Retry.MaxInterval == 0 {
		r.Retry.MaxInterval = webhooks.DefaultMaxInterval
	}
	if r.Concurrency == 0 {
		r.Concurrency = webhooks.DefaultConcurrency
	}
}

// Enabled reports whether the callback listener runs.
func (w Webhooks) Enabled() bool { return w.Listen != "" }

// StorePath is the store's path: the configured one, else
// DefaultWebhookStoreFile in dir (the configuration file's directory, or
// "" for the working directory).
func (w Webhooks) StorePath(dir string) string {
	if w.Store.Path != "" {
		return w.Store.Path
	}
	return filepath.Join(dir, DefaultWebhookStoreFile)
}

var routeName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// validate checks the webhooks section; sids are the configured accounts.
func (w Webhooks) validate(p *problems, sids map[string]int) {
	if !w.Enabled() {
		if len(w.Routes) > 0 {
			p.add("webhooks.listen", "is required when webhooks.routes are set")
		}
		return
	}
	w.validateListener(p)
	if w.URLSecretEnv == "" {
		p.add("webhooks.url_secret_env", "is required")
	}
	parsePrefixes(p, "webhooks.source_cidrs", w.SourceCIDRs)
	parsePrefixes(p, "webhooks.trusted_proxies", w.TrustedProxies)
	if w.MaxBody <= 0 {
		p.add("webhooks.max_body", "must be positive, got %d", w.MaxBody)
	}
	p.positive("webhooks.retention", w.Retention)
	if len(w.Routes) == 0 {
		p.add("webhooks.routes", "at least one route is required when webhooks.listen is set")
	}
	seen := map[string]bool{}
	for i, r := range w.Routes {
		f := fmt.Sprintf("webhooks.routes[%d]", i)
		if seen[r.Name] {
			p.add(f+".name", "%q is used by an earlier route", r.Name)
		}
		seen[r.Name] = true
		r.validate(p, f, sids)
		if r.Retry.MaxAge > w.Retention {
			p.add(f+".retry.max_age", "%s is longer than webhooks.retention (%s): a message would outlive its dedupe key", r.Retry.MaxAge, w.Retention)
		}
	}
}

// validateListener checks listen, public_url and TLS.
func (w Webhooks) validateListener(p *problems) {
	if _, _, err := net.SplitHostPort(w.Listen); err != nil {
		p.add("webhooks.listen", "%q is not host:port", w.Listen)
	}
	u, err := url.Parse(w.PublicURL)
	switch {
	case w.PublicURL == "":
		p.add("webhooks.public_url", "is required: the URL Exotel calls, e.g. https://hooks.example.com")
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		p.add("webhooks.public_url", "%q is not an absolute http(s) URL", w.PublicURL)
	case u.Scheme == "http" && !w.AllowInsecureHTTP:
		p.add("webhooks.public_url", "must be https (Exotel's advice); plain http needs webhooks.allow_insecure_http")
	case u.RawQuery != "" || u.Fragment != "":
		p.add("webhooks.public_url", "must not have a query or fragment")
	}
	hasCert := w.TLS.CertFile != "" || w.TLS.KeyFile != ""
	switch {
	case w.TLS.ClientCAFile != "":
		p.add("webhooks.tls.client_ca_file", "is not supported: Exotel presents no client certificate")
	case hasCert && (w.TLS.CertFile == "" || w.TLS.KeyFile == ""):
		p.add("webhooks.tls", "cert_file and key_file go together")
	case !hasCert && !w.AllowInsecureHTTP:
		p.add("webhooks.tls", "cert_file and key_file are required (or allow_insecure_http: true behind a balancer that terminates TLS)")
	}
	p.exists("webhooks.tls.cert_file", w.TLS.CertFile)
	p.exists("webhooks.tls.key_file", w.TLS.KeyFile)
}

// validate checks one route.
func (r WebhookRoute) validate(p *problems, f string, sids map[string]int) {
	if !routeName.MatchString(r.Name) {
		p.add(f+".name", "%q must be 1-64 of A-Z a-z 0-9 _ -", r.Name)
	}
	if _, ok := sids[r.Account]; !ok {
		p.add(f+".account", "%q is not an account in accounts", r.Account)
	}
	switch webhooks.Kind(r.Kind) {
	case webhooks.KindCall:
	case webhooks.KindSMS:
		if r.ReconcileAfter != 0 {
			p.add(f+".reconcile_after", "is for call routes only")
		}
	default:
		p.add(f+".kind", "%q must be call or sms", r.Kind)
	}
	if u, err := url.Parse(r.Target); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		p.add(f+".target", "%q is not an absolute http(s) URL", r.Target)
	}
	if r.SigningSecretEnv == "" {
		p.add(f+".signing_secret_env", "is required: deliveries are signed (Standard Webhooks)")
	}
	if v := webhooks.Verify(r.Verify); v != webhooks.VerifyNone && v != webhooks.VerifyExotel {
		p.add(f+".verify", "%q must be none or exotel", r.Verify)
	}
	if r.ReconcileAfter < 0 {
		p.add(f+".reconcile_after", "must not be negative, got %s", r.ReconcileAfter)
	}
	p.positive(f+".retry.max_age", r.Retry.MaxAge)
	p.positive(f+".retry.max_interval", r.Retry.MaxInterval)
	if r.Concurrency <= 0 {
		p.add(f+".concurrency", "must be positive, got %d", r.Concurrency)
	}
}

// parsePrefixes checks a list of CIDRs (a bare address is one host).
func parsePrefixes(p *problems, f string, list []string) []netip.Prefix {
	var out []netip.Prefix
	for i, s := range list {
		pf, err := parsePrefix(s)
		if err != nil {
			p.add(fmt.Sprintf("%s[%d]", f, i), "%q is not a CIDR or an IP address", s)
			continue
		}
		out = append(out, pf)
	}
	return out
}

func parsePrefix(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
	}
	pf, err := netip.ParsePrefix(s)
	return pf.Masked(), err
}

// Settings maps the section to the webhooks package's configuration,
// reading the secrets from the environment. A secret that is missing or
// too short is an error naming its variable (never its value).
func (w Webhooks) Settings(getenv func(string) string, b Breaker) (webhooks.Config, error) {
	var p problems
	cfg := webhooks.Config{
		PublicURL:      w.PublicURL,
		SourceCIDRs:    parsePrefixes(&p, "webhooks.source_cidrs", w.SourceCIDRs),
		TrustedProxies: parsePrefixes(&p, "webhooks.trusted_proxies", w.TrustedProxies),
		MaxBody:        int64(w.MaxBody),
		Retention:      w.Retention,
		Breaker:        b.Proxy().Gobreaker(""),
	}
	cfg.URLSecret = []byte(getenv(w.URLSecretEnv))
	if len(cfg.URLSecret) < MinWebhookURLSecret {
		p.add("webhooks.url_secret_env", "%s must hold a secret of at least %d bytes (openssl rand -base64 32)", w.URLSecretEnv, MinWebhookURLSecret)
	}
	if w.URLSecretPreviousEnv != "" {
		if prev := getenv(w.URLSecretPreviousEnv); prev != "" {
			cfg.PreviousURLSecret = []byte(prev)
		}
	}
	for i, r := range w.Routes {
		secret := getenv(r.SigningSecretEnv)
		if secret == "" {
			p.add(fmt.Sprintf("webhooks.routes[%d].signing_secret_env", i), "%s is not set", r.SigningSecretEnv)
		}
		cfg.Routes = append(cfg.Routes, r.Route(secret))
	}
	if len(p) > 0 {
		return webhooks.Config{}, errors.Join(p...)
	}
	return cfg, nil
}

// Route maps one route to the webhooks package's, with its signing secret.
func (r WebhookRoute) Route(signingSecret string) webhooks.Route {
	return webhooks.Route{
		Name:           r.Name,
		Account:        r.Account,
		Kind:           webhooks.Kind(r.Kind),
		Target:         r.Target,
		SigningSecret:  signingSecret,
		Verify:         webhooks.Verify(r.Verify),
		ReconcileAfter: r.ReconcileAfter,
		Retry:          webhooks.Retry{MaxAge: r.Retry.MaxAge, MaxInterval: r.Retry.MaxInterval},
		Concurrency:    r.Concurrency,
	}
}
