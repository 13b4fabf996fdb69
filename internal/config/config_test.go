package config

import (
	"bytes"
	"errors"
	"github.com/exogate/exogate/internal/exotel"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestExampleFileIsValid(t *testing.T) {
	cfg, err := Load("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Accounts) != 2 || cfg.Accounts[1].Region != RegionMumbai {
		t.Errorf("accounts %+v", cfg.Accounts)
	}
	// The example documents the defaults: loading it must change none.
	def := Default()
	if cfg.Limits.Buckets["sms"] != def.Limits.Buckets["sms"] || cfg.Breaker != def.Breaker ||
		cfg.MaxBody != def.MaxBody || cfg.ShutdownTimeout != def.ShutdownTimeout || cfg.Server != def.Server ||
		cfg.Upstream.Timeout != def.Upstream.Timeout || cfg.Listen != def.Listen || cfg.Log != def.Log ||
		cfg.Vault != def.Vault || cfg.Rotation != def.Rotation || cfg.Limits.Redis != def.Limits.Redis ||
		cfg.Limits.Backend != def.Limits.Backend || cfg.Limits.OnBackendFailure != def.Limits.OnBackendFailure {
		t.Errorf("config.example.yaml disagrees with the built-in defaults")
	}
}

func TestBrokenFixtures(t *testing.T) {
	for file, want := range map[string]string{
		"unknown-key.yaml":    `unknown key "maxwait"`,
		"secret-in-file.yaml": `unknown key "api_key"`,
		"plain-http.yaml":     "upstream.regions.singapore.api",
	} {
		t.Run(file, func(t *testing.T) {
			cfg, err := Load("testdata/" + file)
			if err == nil {
				err = cfg.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("error %v, want it to mention %q", err, want)
			}
			for _, secret := range []string{"f81f2a5027e1463d812c4d2b36ea2d7a", "9c3e8a1b4f6d2e0a7c5b3d9f1e8a2c4d"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error repeats a secret from the file: %v", err)
				}
			}
		})
	}
}

const account = "accounts:\n  - sid: acme\n    credentials: {source: env, api_key_env: K, api_token_env: T}\n"

func TestValidationNamesTheField(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"listen", "listen: nowhere\n" + account, "listen:"},
		{"idempotency backend", "idempotency: {backend: etcd}\n" + account, "idempotency.backend"},
		{"idempotency ttl", "idempotency: {ttl: 0s}\n" + account, "idempotency.ttl"},
		{"idempotency cap", "idempotency: {max_bytes: 10}\n" + account, "idempotency.max_bytes"},
		{"idempotency failure", "idempotency: {on_backend_failure: maybe}\n" + account, "idempotency.on_backend_failure"},
		{"idempotency operation", "idempotency: {require_for: [calls_connect, fax_send]}\n" + account, "idempotency.require_for[1]"},
		{"log level", "log: {level: loud}\n" + account, "log.level"},
		{"log format", "log: {format: xml}\n" + account, "log.format"},
		{"no accounts", "listen: 127.0.0.1:1\n", "accounts: at least one"},
		{"bad sid", "accounts:\n  - sid: 'a/b'\n    credentials: {source: env, api_key_env: K, api_token_env: T}\n", "accounts[0].sid"},
		{"duplicate sid", account + "  - sid: ACME\n    credentials: {source: env, api_key_env: K, api_token_env: T}\n", "accounts[1].sid"},
		{"unknown region", "accounts:\n  - sid: acme\n    region: mars\n    credentials: {source: env, api_key_env: K, api_token_env: T}\n", "accounts[0].region"},
		{"missing key env", "accounts:\n  - sid: acme\n    credentials: {source: env, api_token_env: T}\n", "accounts[0].credentials.api_key_env"},
		{"unknown source", "accounts:\n  - sid: acme\n    credentials: {source: ldap, api_key_env: K, api_token_env: T}\n", "accounts[0].credentials.source"},
		{"unknown bucket", "limits: {buckets: {fax: {limit: 1, period: 1s}}}\n" + account, "limits.buckets.fax"},
		{"burst not below limit", "limits: {buckets: {sms: {limit: 5, period: 1s, burst: 5}}}\n" + account, "limits.buckets.sms: burst 5 must be less than limit 5"},
		{"no period", "limits: {buckets: {sms: {limit: 5, period: 0s}}}\n" + account, "limits.buckets.sms: period"},
		{"account cap", "limits: {account: {limit: -1}}\n" + account, "limits.account"},
		{"limit 1 burst 0", "limits: {buckets: {sms: {limit: 1, period: 1s}}}\n" + account, "limits.buckets.sms: burst 0 (meaning 1) must be less than limit 1"},
		{"breaker interval", "breaker: {interval: 0s}\n" + account, "breaker.interval"},
		{"ratio", "breaker: {failure_ratio: 2}\n" + account, "breaker.failure_ratio"},
		{"half open", "breaker: {half_open_requests: 0}\n" + account, "breaker.half_open_requests"},
		{"timeout", "upstream: {timeout: 0s}\n" + account, "upstream.timeout"},
		{"ca file", "upstream: {ca_file: /nonexistent/ca.pem}\n" + account, "upstream.ca_file"},
		{"client", "upstream: {client: http2}\n" + account, "upstream.client"},
		{"idle timeout", "upstream: {idle_conn_timeout: 0s}\n" + account, "upstream.idle_conn_timeout"},
		{"region path", "upstream: {regions: {singapore: {api: 'https://x/y'}}}\n" + account, "upstream.regions.singapore.api"},
		{"region userinfo", "upstream: {regions: {singapore: {api: 'https://u:p@x'}}}\n" + account, "upstream.regions.singapore.api"},
		{"new region incomplete", "upstream: {regions: {frankfurt: {api: 'https://x'}}}\n" + account, "upstream.regions.frankfurt.ccm"},
		{"max body", "max_body: 0\n" + account, "max_body"},
		{"max body syntax", "max_body: lots\n" + account, "not a size"},
		{"bad duration", "shutdown_timeout: soon\n" + account, "shutdown_timeout"},
		{"two documents", account + "---\nlisten: x\n", "more than one YAML document"},
		{"file without token file", "accounts:\n  - sid: a\n    credentials: {source: file, api_key_file: /k}\n", "accounts[0].credentials.api_token_file"},
		{"env keys on a file source", "accounts:\n  - sid: a\n    credentials: {source: file, api_key_file: /k, api_token_file: /t, api_key_env: K}\n", "accounts[0].credentials.api_key_env: only applies to source env"},
		{"vault block on env source", account[:len(account)-2] + ", vault: {path: x}}\n", "accounts[0].credentials.vault: only applies to source vault"},
		{"vault without path", "accounts:\n  - sid: a\n    credentials: {source: vault, vault: {mount: secret}}\n", "accounts[0].credentials.vault.path"},
		{"vault kv version", "accounts:\n  - sid: a\n    credentials: {source: vault, vault: {path: p, kv_version: 3}}\n", "accounts[0].credentials.vault.kv_version"},
		{"vault method", "vault: {auth: {method: ldap}}\naccounts:\n  - sid: a\n    credentials: {source: vault, vault: {path: p}}\n", "vault.auth.method"},
		{"approle without role id", "vault: {auth: {method: approle, secret_id_file: /s}}\naccounts:\n  - sid: a\n    credentials: {source: vault, vault: {path: p}}\n", "vault.auth.role_id_file"},
		{"kubernetes without role", "vault: {auth: {method: kubernetes}}\naccounts:\n  - sid: a\n    credentials: {source: vault, vault: {path: p}}\n", "vault.auth.role"},
		{"vault refresh", "vault: {refresh_interval: 0s}\naccounts:\n  - sid: a\n    credentials: {source: vault, vault: {path: p}}\n", "vault.refresh_interval"},
		{"limits backend", "limits: {backend: etcd}\n" + account, "limits.backend"},
		{"redis address", "limits: {backend: redis, redis: {address: nowhere}}\n" + account, "limits.redis.address"},
		{"redis failure mode", "limits: {on_backend_failure: panic}\n" + account, "limits.on_backend_failure"},
		{"redis password in file", "limits: {redis: {password: hunter2}}\n" + account, `unknown key "password"`},
		{"open listener", "listen: 0.0.0.0:8080\n" + account, "is not loopback"},
		{"auth required without clients", "auth: {required: true}\n" + account, "no clients are configured"},
		{"client id", "clients: [{id: Bad-Id, secret_sha256: '0000000000000000000000000000000000000000000000000000000000000000', accounts: [acme]}]\n" + account, "clients[0].id"},
		{"client secret in clear", "clients: [{id: b, secret_sha256: hunter2, accounts: [acme]}]\n" + account, "clients[0].secret_sha256"},
		{"client without proof", "clients: [{id: b, accounts: [acme]}]\n" + account, "clients[0]: needs secret_sha256"},
		{"client unknown account", "clients: [{id: b, secret_sha256: '0000000000000000000000000000000000000000000000000000000000000000', accounts: [nope]}]\n" + account, "clients[0].accounts[0]"},
		{"client bucket", "clients: [{id: b, secret_sha256: '0000000000000000000000000000000000000000000000000000000000000000', accounts: [acme], buckets: [fax]}]\n" + account, "clients[0].buckets[0]"},
		{"client method", "clients: [{id: b, secret_sha256: '0000000000000000000000000000000000000000000000000000000000000000', accounts: [acme], methods: [BREW]}]\n" + account, "clients[0].methods[0]"},
		{"cert identity without mTLS", "clients: [{id: b, cert_identity: x, accounts: [acme]}]\n" + account, "clients[0].cert_identity"},
		{"cert identity without kind", "tls: {cert_file: /etc/hostname, key_file: /etc/hostname, client_ca_file: /etc/hostname}\nclients: [{id: b, cert_identity: 'spiffe://corp/b', accounts: [acme]}]\n" + account, `clients[0].cert_identity: "spiffe://corp/b" names no kind: write uri:`},
		{"cert identity of another kind", "tls: {cert_file: /etc/hostname, key_file: /etc/hostname, client_ca_file: /etc/hostname}\nclients: [{id: b, cert_identity: 'email:b@corp'}]\n" + account, "clients[0].cert_identity"},
		{"cert identity twice", "tls: {cert_file: /etc/hostname, key_file: /etc/hostname, client_ca_file: /etc/hostname}\nclients: [{id: a, cert_identity: 'dns:A.corp', accounts: [acme]}, {id: b, cert_identity: 'dns:a.CORP', accounts: [acme]}]\n" + account, "clients[1].cert_identity: \"dns:a.CORP\" is clients[0]'s too"},
		{"client secret placeholder", "clients: [{id: b, secret_sha256: REPLACE-with-exogate-hash-secret, accounts: [acme]}]\n" + account, "clients[0].secret_sha256: is a placeholder: make a secret of at least 32 characters (openssl rand -base64 32)"},
		{"client secret angle placeholder", "clients: [{id: b, secret_sha256: '<hash of b.secret>', accounts: [acme]}]\n" + account, "clients[0].secret_sha256: is a placeholder"},
		{"client operation", "clients: [{id: b, secret_sha256: '0000000000000000000000000000000000000000000000000000000000000000', accounts: [acme], operations: [calls.dial]}]\n" + account, `clients[0].operations[0]: "calls.dial" is not an operation (calls.connect, calls.read`},
		{"client operation pattern", "clients: [{id: b, secret_sha256: '0000000000000000000000000000000000000000000000000000000000000000', accounts: [acme], operations: [calls.connect, 'fax.*']}]\n" + account, "clients[0].operations[1]"},
		{"required false with clients", "auth: {required: false}\nclients: [{id: b, secret_sha256: '0000000000000000000000000000000000000000000000000000000000000000', accounts: [acme]}]\n" + account, "auth.required: false with clients configured would let callers without identity past"},
		{"allow_unauthenticated with clients", "auth: {allow_unauthenticated: true}\nclients: [{id: b, secret_sha256: '0000000000000000000000000000000000000000000000000000000000000000', accounts: [acme]}]\n" + account, "auth.allow_unauthenticated: applies only without clients"},
		{"allow_anonymous contradicts required", "auth: {required: true, allow_anonymous: true}\nclients: [{id: b, secret_sha256: '0000000000000000000000000000000000000000000000000000000000000000', accounts: [acme]}]\n" + account, "auth.allow_anonymous: contradicts auth.required: true"},
		{"allow_anonymous without clients", "auth: {allow_anonymous: true}\n" + account, "auth.allow_anonymous: applies only with clients"},
		{"anonymous block not allowed", "auth: {anonymous: {accounts: [acme]}}\nclients: [{id: b, secret_sha256: '0000000000000000000000000000000000000000000000000000000000000000', accounts: [acme]}]\n" + account, "auth.anonymous: has no effect without auth.allow_anonymous: true"},
		{"anonymous operation", "auth: {allow_anonymous: true, anonymous: {accounts: [acme], operations: [sms]}}\nclients: [{id: b, secret_sha256: '0000000000000000000000000000000000000000000000000000000000000000', accounts: [acme]}]\n" + account, "auth.anonymous.operations[0]"},
		{"anonymous accounts", "auth: {allow_anonymous: true, anonymous: {operations: ['*.read']}}\nclients: [{id: b, secret_sha256: '0000000000000000000000000000000000000000000000000000000000000000', accounts: [acme]}]\n" + account, "auth.anonymous.accounts: list the account SIDs"},
		{"anonymous unknown key", "auth: {anonymous: {accounts: [acme], share: 1}}\n" + account, `unknown key "share"`},
		{"tls half", "tls: {cert_file: /etc/hostname}\n" + account, "cert_file and key_file go together"},
		{"rotation grace", "rotation: {previous_grace: -1s}\n" + account, "rotation.previous_grace"},
		{"reauthorize wait", "rotation: {reauthorize_wait: 0s}\n" + account, "rotation.reauthorize_wait"},
		{"vault plain http off loopback", "vault: {address: 'http://vault.internal:8200'}\naccounts:\n  - sid: a\n    credentials: {source: vault, vault: {path: p}}\n", "vault.address: \"http://vault.internal:8200\" is plain http to a host that is not loopback"},
		{"vault address scheme", "vault: {address: 'ftp://vault.internal'}\naccounts:\n  - sid: a\n    credentials: {source: vault, vault: {path: p}}\n", "vault.address"},
		{"vault secret in file", "vault: {token: s.abcdef}\n" + account, `unknown key "token"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.yaml))
			if err == nil {
				err = cfg.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

// Who must authenticate, for each combination of clients and auth keys the
// configuration accepts.
func TestAuthRequired(t *testing.T) {
	const client = "clients: [{id: b, secret_sha256: '0000000000000000000000000000000000000000000000000000000000000000', accounts: [acme]}]\n"
	for _, tc := range []struct {
		name, yaml string
		required   bool
	}{
		{"loopback, no clients", account, false},
		{"open, no clients, allow_unauthenticated", "listen: 0.0.0.0:8080\nauth: {allow_unauthenticated: true}\n" + account, false},
		{"loopback, no clients, anonymous block", "auth: {anonymous: {accounts: [acme], operations: [calls.connect]}}\n" + account, false},
		{"loopback, clients", client + account, true},
		{"loopback, clients, required", "auth: {required: true}\n" + client + account, true},
		{"open, clients", "listen: 0.0.0.0:8080\n" + client + account, true},
		{"loopback, clients, allow_anonymous", "auth: {allow_anonymous: true}\n" + client + account, false},
		{"open, clients, allow_anonymous, required false, a block", "listen: 0.0.0.0:8080\nauth: {required: false, allow_anonymous: true, anonymous: {accounts: ['*'], operations: ['*.read']}}\n" + client + account, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := cfg.AuthRequired(); got != tc.required {
				t.Errorf("AuthRequired() = %v, want %v", got, tc.required)
			}
		})
	}
}

func TestPlaceholderIsSentinel(t *testing.T) {
	cfg, err := Parse([]byte("clients: [{id: b, secret_sha256: REPLACE_ME, accounts: [acme]}]\n" + account))
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	if !errors.Is(err, ErrPlaceholder) {
		t.Errorf("Validate() = %v, want ErrPlaceholder", err)
	}
	for _, s := range []string{"REPLACE_ME", "replace-me", "<hash>"} {
		if !IsPlaceholder(s) {
			t.Errorf("IsPlaceholder(%q) = false", s)
		}
	}
	if IsPlaceholder("835bc7f33847c055b083fada5363d4490af37cb3872427e7bd44311566104aa0") {
		t.Error("a hash taken for a placeholder")
	}
}

func TestMergesOverDefaults(t *testing.T) {
	cfg, err := Parse([]byte("upstream:\n  allow_insecure_http: true\n  regions:\n    singapore: {api: 'http://127.0.0.1:9'}\nlimits:\n  buckets:\n    sms: {limit: 20, period: 2s, burst: 2}\n" + account))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	sg := cfg.Upstream.Regions[RegionSingapore]
	if sg.API != "http://127.0.0.1:9" || sg.CCM != "https://ccm-api.exotel.com" {
		t.Errorf("singapore %+v: override must keep the other host's default", sg)
	}
	if cfg.Upstream.Regions[RegionMumbai].API != "https://api.in.exotel.com" {
		t.Error("mumbai default lost")
	}
	if r := cfg.Limits.Buckets["sms"]; r != (Rule{20, 2 * time.Second, 2}) {
		t.Errorf("sms %+v", r)
	}
	if r := cfg.Limits.Buckets["voice_v1"]; r.Limit != 200 {
		t.Errorf("voice_v1 default lost: %+v", r)
	}
	if cfg.Accounts[0].Region != RegionSingapore {
		t.Errorf("default region %q", cfg.Accounts[0].Region)
	}
}

func TestFromEnv(t *testing.T) {
	env := map[string]string{EnvAPIKey: "k", EnvAPIToken: "t", EnvAccountSID: "acme"}
	getenv := func(k string) string { return env[k] }
	cfg, err := FromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a := cfg.Accounts[0]
	if a.SID != "acme" || a.Region != RegionSingapore || a.Credentials.APIKeyEnv != EnvAPIKey || a.Credentials.APITokenEnv != EnvAPIToken {
		t.Errorf("account %+v", a)
	}
	env[EnvRegion] = "Mumbai"
	cfg, _ = FromEnv(getenv)
	if cfg.Accounts[0].Region != RegionMumbai {
		t.Errorf("region %q", cfg.Accounts[0].Region)
	}
	env[EnvRegion] = "tokyo"
	if _, err := FromEnv(getenv); err == nil || !strings.Contains(err.Error(), "EXOTEL_REGION") {
		t.Errorf("bad EXOTEL_REGION: %v", err)
	}
	env[EnvRegion] = ""
	env[EnvAccountSID] = "a/b"
	if _, err := FromEnv(getenv); err == nil || !strings.Contains(err.Error(), "EXOTEL_ACCOUNT_SID") {
		t.Errorf("bad EXOTEL_ACCOUNT_SID: %v", err)
	}
	env[EnvAccountSID] = "acme"
	env[EnvListen] = "127.0.0.1:9999"
	cfg.ApplyEnv(getenv)
	if cfg.Listen != "127.0.0.1:9999" {
		t.Errorf("EXOGATE_LISTEN ignored: %q", cfg.Listen)
	}

	for _, missing := range []string{EnvAPIKey, EnvAPIToken, EnvAccountSID} {
		t.Run("missing "+missing, func(t *testing.T) {
			e := map[string]string{EnvAPIKey: "k", EnvAPIToken: "t", EnvAccountSID: "acme"}
			delete(e, missing)
			_, err := FromEnv(func(k string) string { return e[k] })
			if err == nil || !strings.Contains(err.Error(), missing) {
				t.Fatalf("error %v, want it to name %s", err, missing)
			}
			if strings.Contains(err.Error(), "k,") || strings.Contains(err.Error(), `"t"`) {
				t.Errorf("error shows a value: %v", err)
			}
		})
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"1024": 1024, "64KiB": 65536, "1MiB": 1 << 20, "10MB": 10e6, "2 GiB": 2 << 30, "7B": 7} {
		if got, err := ParseByteSize(in); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "1XB", "MiB", "99999999999999999999GiB"} {
		if _, err := ParseByteSize(bad); err == nil {
			t.Errorf("ParseByteSize(%q) accepted", bad)
		}
	}
}

// FuzzParse checks that whatever Parse accepts, Validate either accepts or
// rejects with messages that each name a field of the file format, that
// nothing panics, and that an accepted file round-trips: written back as
// YAML and parsed again, it is the same configuration.
func FuzzParse(f *testing.F) {
	f.Add([]byte(account))
	f.Add([]byte("limits: {buckets: {sms: {limit: 5, period: 1s, burst: 5}}}\n" + account))
	f.Add([]byte("max_body: 1MiB\nupstream: {regions: {x: {api: 'https://a', ccm: 'https://b'}}}\n"))
	f.Add([]byte("listen: 0.0.0.0:8080\nauth: {allow_anonymous: true, anonymous: {accounts: ['*']}}\nclients: [{id: b, secret_sha256: REPLACE, accounts: [acme], share: -1}]\n" + account))
	f.Add([]byte("vault: {address: 'http://vault:8200', auth: {method: approle}}\naccounts:\n  - sid: a\n    credentials: {source: vault, vault: {path: p, kv_version: 3}}\n"))
	f.Add([]byte("limits: {backend: redis, redis: {address: x, db: -1, ca_file: /x}, replicas: -1}\nbreaker: {consecutive_failures: 0, failure_ratio: 0}\n" + account))
	for _, file := range []string{"../../config.example.yaml", "testdata/plain-http.yaml"} {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	keys := map[string]bool{}
	for _, field := range reflect.VisibleFields(reflect.TypeFor[Config]()) {
		keys[field.Tag.Get("yaml")] = true
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				field, _, ok := strings.Cut(e.Error(), ": ")
				top := field
				if i := strings.IndexAny(top, ".["); i >= 0 {
					top = top[:i]
				}
				if !ok || !keys[top] {
					t.Fatalf("Validate error names no field of the file: %q", e)
				}
			}
		} else {
			// Anything valid must have accounts with known regions and sane limits.
			for _, a := range cfg.Accounts {
				if _, ok := cfg.Upstream.Regions[a.Region]; !ok {
					t.Fatalf("valid config with unknown region %q", a.Region)
				}
			}
			for name, r := range cfg.Limits.Buckets {
				if r.Limit > 0 && (r.Period <= 0 || r.Burst >= r.Limit) {
					t.Fatalf("valid config with bad rule %s %+v", name, r)
				}
			}
		}
		out, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse of its own output: %v\n%s", err, out)
		}
		if out2, _ := yaml.Marshal(again); !bytes.Equal(out, out2) {
			t.Fatalf("does not round-trip:\n%s\nthen\n%s", out, out2)
		}
	})
}

// FuzzParseByteSize checks that ParseByteSize never panics, that what it
// accepts is a size it can read back written as plain bytes, and that the
// space around the number and unit does not matter.
func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"1024", "64KiB", "1MiB", "10MB", "2 GiB", "7B", "", "-1", "1XB", "MiB", "99999999999999999999GiB", "4611686018427387904", "+5KB", "0x10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseByteSize(s)
		if err != nil {
			if !strings.Contains(err.Error(), "is not a size") {
				t.Fatalf("ParseByteSize(%q): error %q does not say what is wrong", s, err)
			}
			return
		}
		if n < 0 || n > 1<<62 {
			t.Fatalf("ParseByteSize(%q) = %d, out of range", s, n)
		}
		if back, err := ParseByteSize(strconv.FormatInt(int64(n), 10)); err != nil || back != n {
			t.Fatalf("ParseByteSize(%q) = %d, but %d reads back as %d, %v", s, n, n, back, err)
		}
		if spaced, err := ParseByteSize(" " + s + "\t"); err != nil || spaced != n {
			t.Fatalf("ParseByteSize(%q) = %d, but with spaces around it %d, %v", s, n, spaced, err)
		}
	})
}

// vault.allow_insecure lets a plain-http Vault off loopback through (the
// client warns at start-up); plain http to loopback (a Vault Agent in the
// pod) needs nothing.
func TestVaultAllowInsecure(t *testing.T) {
	const vaultAccount = "accounts:\n  - sid: a\n    credentials: {source: vault, vault: {path: p}}\n"
	for _, tc := range []struct {
		name, yaml string
		insecure   bool
	}{
		{"loopback http", "vault: {address: 'http://127.0.0.1:8100'}\n", false},
		{"localhost http", "vault: {address: 'http://localhost:8100'}\n", false},
		{"https", "vault: {address: 'https://vault.internal:8200'}\n", false},
		{"allowed", "vault: {address: 'http://vault.internal:8200', allow_insecure: true}\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.yaml + vaultAccount))
			if err == nil {
				err = cfg.Validate()
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Vault.AllowInsecure != tc.insecure {
				t.Errorf("allow_insecure %v", cfg.Vault.AllowInsecure)
			}
		})
	}
	if d := Default(); d.Vault.AllowInsecure || d.Rotation.ReauthorizeWait != time.Second {
		t.Errorf("defaults: allow_insecure %v, reauthorize_wait %v", d.Vault.AllowInsecure, d.Rotation.ReauthorizeWait)
	}
}

func TestIdempotencyDefaultsAndOperations(t *testing.T) {
	d := Default().Idempotency
	if d.Backend != IdempotencyMemory || d.TTL != 24*time.Hour || d.OnBackendFailure != IdempotencyRefuse || len(d.RequireFor) != 0 {
		t.Errorf("defaults %+v", d)
	}
	d.RequireFor = []string{"calls_connect", "sms.send"}
	ops := d.Operations()
	if len(ops) != 2 || ops[0] != exotel.OpCallsConnect || ops[1] != exotel.OpSMSSend {
		t.Errorf("Operations() = %v", ops)
	}
}
