package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/exogate/exogate/webhooks"
)

const hooksYAML = `
accounts:
  - sid: acme
    credentials: {api_key_env: K, api_token_env: T}
webhooks:
  listen: 127.0.0.1:8443
  public_url: https://hooks.example.com
  allow_insecure_http: true
  source_cidrs: [203.0.113.0/24, 198.51.100.7]
  routes:
    - name: calls
      account: acme
      kind: call
      target: http://127.0.0.1:9000/exotel/calls
      signing_secret_env: CALLS_WEBHOOK_SECRET
      reconcile_after: 10m
    - name: sms
      account: acme
      kind: sms
      target: http://127.0.0.1:9000/exotel/sms
      signing_secret_env: SMS_WEBHOOK_SECRET
      verify: exotel
      retry: {max_age: 1h}
`

func TestExampleWebhooksDocumentDefaults(t *testing.T) {
	cfg, err := Load("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	w, def := cfg.Webhooks, Default().Webhooks
	if w.Enabled() || w.MaxBody != def.MaxBody || w.Retention != def.Retention ||
		w.URLSecretEnv != def.URLSecretEnv || w.URLSecretPreviousEnv != def.URLSecretPreviousEnv {
		t.Errorf("config.example.yaml's webhooks %+v disagree with the defaults %+v", w, def)
	}
	if want := filepath.Join("../..", DefaultWebhookStoreFile); w.Store.Path != want {
		t.Errorf("store path %q, want %q beside the file", w.Store.Path, want)
	}
}

func TestWebhooksParseAndDefaults(t *testing.T) {
	cfg, err := Parse([]byte(hooksYAML))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	r := cfg.Webhooks.Routes[0]
	if r.Verify != "none" || r.Retry.MaxAge != webhooks.DefaultMaxAge || r.Retry.MaxInterval != webhooks.DefaultMaxInterval ||
		r.Concurrency != webhooks.DefaultConcurrency || r.ReconcileAfter != 10*time.Minute {
		t.Errorf("route defaults: %+v", r)
	}
	if got := cfg.Webhooks.Routes[1].Retry; got.MaxAge != time.Hour || got.MaxInterval != webhooks.DefaultMaxInterval {
		t.Errorf("a partly given retry keeps the other default: %+v", got)
	}
	if cfg.Webhooks.MaxBody != 64<<10 || cfg.Webhooks.Retention != 72*time.Hour {
		t.Errorf("section defaults: %+v", cfg.Webhooks)
	}
	if p := cfg.Webhooks.StorePath(""); p != DefaultWebhookStoreFile {
		t.Errorf("store path in the working directory: %q", p)
	}
}

func TestWebhooksLoadPutsTheStoreBesideTheFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "exogate.yaml")
	if err := os.WriteFile(file, []byte(hooksYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, DefaultWebhookStoreFile); cfg.Webhooks.Store.Path != want {
		t.Errorf("store path %q, want %q", cfg.Webhooks.Store.Path, want)
	}
	if err := os.WriteFile(file, []byte(hooksYAML+"  store: {path: /var/lib/exogate/w.db}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err = Load(file); err != nil || cfg.Webhooks.Store.Path != "/var/lib/exogate/w.db" {
		t.Errorf("a given path is kept: %q, %v", cfg.Webhooks.Store.Path, err)
	}
}

func TestWebhooksValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct{ name, edit, field string }{
		{"routes without listener", "  listen: \"\"\n", "webhooks.listen"},
		{"listener same as proxy", "  listen: 127.0.0.1:8080\n", "webhooks.listen: must differ"},
		{"bad listen", "  listen: nowhere\n", "webhooks.listen"},
		{"no public url", "  public_url: \"\"\n", "webhooks.public_url"},
		{"relative public url", "  public_url: /hooks\n", "webhooks.public_url"},
		{"http public url without allow", "  public_url: http://hooks.example.com\n  allow_insecure_http: false\n  tls: {cert_file: x.crt, key_file: x.key}\n", "webhooks.public_url: must be https"},
		{"no tls without allow", "  allow_insecure_http: false\n", "webhooks.tls"},
		{"cert without key", "  tls: {cert_file: x.crt}\n", "webhooks.tls"},
		{"client ca", "  tls: {client_ca_file: ca.pem}\n", "webhooks.tls.client_ca_file"},
		{"missing cert file", "  tls: {cert_file: /nonexistent/x.crt, key_file: /nonexistent/x.key}\n", "webhooks.tls.cert_file"},
		{"bad cidr", "  source_cidrs: [300.1.1.1/8]\n", "webhooks.source_cidrs[0]"},
		{"bad proxy", "  trusted_proxies: [lb]\n", "webhooks.trusted_proxies[0]"},
		{"zero max body", "  max_body: 0\n", "webhooks.max_body"},
		{"zero retention", "  retention: 0s\n", "webhooks.retention"},
		{"no url secret env", "  url_secret_env: \"\"\n", "webhooks.url_secret_env"},
		{"max age past retention", "  retention: 1h\n", "webhooks.routes[0].retry.max_age"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(editHooks(tc.edit)))
			if err != nil {
				t.Fatal(err)
			}
			err = cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("Validate() = %v, want an error naming %q", err, tc.field)
			}
		})
	}
}

func TestWebhookRoutesValidateNamesTheField(t *testing.T) {
	route := func(lines ...string) string {
		return hooksYAML + "    - " + strings.Join(lines, "\n      ") + "\n"
	}
	ok := []string{"name: third", "account: acme", "kind: call", "target: http://127.0.0.1:9000/c", "signing_secret_env: S"}
	with := func(i int, line string) []string {
		l := append([]string(nil), ok...)
		if i < len(l) {
			l[i] = line
		} else {
			l = append(l, line)
		}
		return l
	}
	for _, tc := range []struct {
		name  string
		lines []string
		field string
	}{
		{"duplicate name", with(0, "name: calls"), "webhooks.routes[2].name"},
		{"bad name", with(0, "name: a/b"), "webhooks.routes[2].name"},
		{"unknown account", with(1, "account: other"), "webhooks.routes[2].account"},
		{"bad kind", with(2, "kind: fax"), "webhooks.routes[2].kind"},
		{"relative target", with(3, "target: /c"), "webhooks.routes[2].target"},
		{"ftp target", with(3, "target: ftp://x/c"), "webhooks.routes[2].target"},
		{"no signing secret", with(4, "signing_secret_env: \"\""), "webhooks.routes[2].signing_secret_env"},
		{"bad verify", with(5, "verify: maybe"), "webhooks.routes[2].verify"},
		{"negative reconcile", with(5, "reconcile_after: -1s"), "webhooks.routes[2].reconcile_after"},
		{"sms reconcile", append(with(2, "kind: sms"), "reconcile_after: 1m"), "webhooks.routes[2].reconcile_after"},
		{"zero concurrency", with(5, "concurrency: -1"), "webhooks.routes[2].concurrency"},
		{"negative max interval", with(5, "retry: {max_interval: -1s}"), "webhooks.routes[2].retry.max_interval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(route(tc.lines...)))
			if err != nil {
				t.Fatal(err)
			}
			err = cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("Validate() = %v, want an error naming %q", err, tc.field)
			}
		})
	}
	cfg, err := Parse([]byte(route(ok...)))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("the base third route is valid: %v", err)
	}
}

func TestWebhookSettingsReadSecretsFromTheEnvironment(t *testing.T) {
	cfg, err := Parse([]byte(hooksYAML))
	if err != nil {
		t.Fatal(err)
	}
	const urlSecret = "u-0123456789abcdef0123456789abcdef"
	env := map[string]string{
		EnvWebhookURLSecret:         urlSecret,
		EnvWebhookURLSecretPrevious: "p-0123456789abcdef0123456789abcdef",
		"CALLS_WEBHOOK_SECRET":      "whsec_Y2FsbHM=",
		"SMS_WEBHOOK_SECRET":        "whsec_c21z",
	}
	s, err := cfg.Webhooks.Settings(func(k string) string { return env[k] }, cfg.Breaker)
	if err != nil {
		t.Fatal(err)
	}
	if string(s.URLSecret) != urlSecret || string(s.PreviousURLSecret) != env[EnvWebhookURLSecretPrevious] {
		t.Errorf("url secrets not read from the environment")
	}
	if len(s.Routes) != 2 || s.Routes[0].SigningSecret != "whsec_Y2FsbHM=" || s.Routes[1].Verify != webhooks.VerifyExotel ||
		s.Routes[0].Kind != webhooks.KindCall || s.Routes[0].ReconcileAfter != 10*time.Minute || s.Routes[1].Retry.MaxAge != time.Hour {
		t.Errorf("routes %+v", s.Routes)
	}
	if len(s.SourceCIDRs) != 2 || s.SourceCIDRs[1].String() != "198.51.100.7/32" {
		t.Errorf("source cidrs %v", s.SourceCIDRs)
	}
	if s.MaxBody != 64<<10 || s.Retention != 72*time.Hour || s.Breaker.ReadyToTrip == nil {
		t.Errorf("settings %+v", s)
	}

	// Missing or short secrets: errors name the variable, never a value.
	env[EnvWebhookURLSecret] = "short-secret-value"
	delete(env, "SMS_WEBHOOK_SECRET")
	_, err = cfg.Webhooks.Settings(func(k string) string { return env[k] }, cfg.Breaker)
	if err == nil {
		t.Fatal("short and missing secrets accepted")
	}
	for _, want := range []string{EnvWebhookURLSecret, "SMS_WEBHOOK_SECRET", "webhooks.routes[1].signing_secret_env"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "short-secret-value") || strings.Contains(err.Error(), "whsec_") {
		t.Errorf("error %q shows a secret", err)
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != 2 {
		t.Errorf("want two problems, got %v", err)
	}
}

// editHooks returns hooksYAML with each of edit's top-level webhooks keys
// ("  key: value" lines) in place of the base's line for that key.
func editHooks(edit string) string {
	lines := strings.Split(hooksYAML, "\n")
	for _, e := range strings.Split(strings.TrimSuffix(edit, "\n"), "\n") {
		key := strings.SplitN(e, ":", 2)[0] + ":"
		for i, l := range lines {
			if strings.HasPrefix(l, key) {
				lines = append(lines[:i], lines[i+1:]...)
				break
			}
		}
		for i, l := range lines {
			if l == "webhooks:" {
				lines = append(lines[:i+1], append([]string{e}, lines[i+1:]...)...)
				break
			}
		}
	}
	return strings.Join(lines, "\n")
}
