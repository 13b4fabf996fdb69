package credentials

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"
)

// vaultStore makes a Store with one Vault account and returns it with its
// log. It is not started: nothing here logs in.
func vaultStore(t *testing.T, vc VaultConfig, getenv map[string]string) (*Store, *bytes.Buffer, error) {
	t.Helper()
	var logs bytes.Buffer
	s, err := New(Config{
		Accounts: []Spec{{Account: "acme", Source: "vault", Vault: VaultSecret{Path: "exotel/acme"}}},
		Vault:    vc,
		Getenv:   env(getenv),
		Logger:   zerolog.New(&logs),
	})
	return s, &logs, err
}

// The configured address wins over every environment variable, and the
// process environment turns off nothing: api.DefaultConfig reads
// VAULT_AGENT_ADDR (which replaces the address), VAULT_SKIP_VERIFY and more
// from os.Getenv, over the configuration's head.
func TestVaultClientIgnoresTheProcessEnvironment(t *testing.T) {
	var agentHits atomic.Int64
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		agentHits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"data":{"ttl":3600,"renewable":false}}`))
	}))
	defer agent.Close()
	// The configured Vault: TLS with a certificate nobody here trusts.
	var vaultHits atomic.Int64
	vault := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		vaultHits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"data":{"ttl":3600,"renewable":false}}`))
	}))
	defer vault.Close()
	vault.Config.ErrorLog = nil

	for k, v := range map[string]string{
		"VAULT_AGENT_ADDR":      agent.URL,
		"VAULT_ADDR":            agent.URL,
		"VAULT_SKIP_VERIFY":     "true",
		"VAULT_TLS_SERVER_NAME": "elsewhere.example",
		"VAULT_NAMESPACE":       "someone-else",
		"VAULT_HEADERS":         `{"X-Injected":"yes"}`,
		"VAULT_TOKEN":           "hvs.process-environment-token",
		"VAULT_WRAP_TTL":        "5m",
		"VAULT_HTTP_PROXY":      agent.URL,
	} {
		t.Setenv(k, v)
	}

	s, _, err := vaultStore(t, VaultConfig{Address: vault.URL, Auth: VaultAuth{Method: "token"}},
		map[string]string{"VAULT_TOKEN": "hvs.configured-token"})
	if err != nil {
		t.Fatal(err)
	}
	c := s.vault.client
	if c.Address() != vault.URL {
		t.Errorf("address %s, want the configured %s", c.Address(), vault.URL)
	}
	if ns := c.Namespace(); ns != "" {
		t.Errorf("namespace %q from the process environment", ns)
	}
	if c.Headers().Get("X-Injected") != "" {
		t.Error("VAULT_HEADERS from the process environment was applied")
	}
	if c.Token() != "" {
		t.Error("the process environment's VAULT_TOKEN was set before any login")
	}
	if f := c.CurrentWrappingLookupFunc(); f == nil {
		t.Error("the default wrapping lookup is in use: it wraps every answer when VAULT_WRAP_TTL is set")
	} else if ttl := f("GET", "secret/data/exotel/acme"); ttl != "" {
		t.Errorf("reads would be response-wrapped (%s)", ttl)
	}

	// A real request: it goes to the configured Vault, and its untrusted
	// certificate is refused in spite of VAULT_SKIP_VERIFY.
	_, err = s.vault.login(context.Background())
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("login to a Vault with an untrusted certificate: %v, want a certificate error", err)
	}
	if n := agentHits.Load(); n != 0 {
		t.Errorf("%d requests went to VAULT_AGENT_ADDR / VAULT_HTTP_PROXY", n)
	}
	if n := vaultHits.Load(); n != 0 {
		t.Errorf("%d requests reached the untrusted Vault", n)
	}
}

// Plain http off loopback and VAULT_SKIP_VERIFY are refused unless
// vault.allow_insecure, and warned about when allowed.
func TestVaultInsecureSettings(t *testing.T) {
	for _, tc := range []struct {
		name     string
		address  string
		env      map[string]string
		allow    bool
		wantErr  []string // the error names these; nil: no error
		wantWarn bool
	}{
		{name: "https", address: "https://vault.internal:8200"},
		{name: "http to loopback", address: "http://127.0.0.1:8200"},
		{name: "http to localhost", address: "http://localhost:8200"},
		{name: "http to ipv6 loopback", address: "http://[::1]:8200"},
		{name: "unix socket", address: "unix:///run/vault/agent.sock"},
		{name: "http off loopback", address: "http://vault.internal:8200",
			wantErr: []string{"vault.address", "vault.allow_insecure"}},
		{name: "http off loopback from VAULT_ADDR", env: map[string]string{"VAULT_ADDR": "http://10.0.0.5:8200"},
			wantErr: []string{"vault.address", "vault.allow_insecure"}},
		{name: "skip verify", address: "https://vault.internal:8200", env: map[string]string{"VAULT_SKIP_VERIFY": "true"},
			wantErr: []string{"VAULT_SKIP_VERIFY", "vault.allow_insecure"}},
		{name: "skip verify garbage", address: "https://vault.internal:8200", env: map[string]string{"VAULT_SKIP_VERIFY": "yes please"},
			wantErr: []string{"VAULT_SKIP_VERIFY"}},
		{name: "skip verify false", address: "https://vault.internal:8200", env: map[string]string{"VAULT_SKIP_VERIFY": "false"}},
		{name: "other scheme", address: "ftp://vault.internal", wantErr: []string{"vault.address"}},
		{name: "http off loopback allowed", address: "http://vault.internal:8200", allow: true, wantWarn: true},
		{name: "skip verify allowed", address: "https://vault.internal:8200", env: map[string]string{"VAULT_SKIP_VERIFY": "1"},
			allow: true, wantWarn: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, logs, err := vaultStore(t, VaultConfig{Address: tc.address, AllowInsecure: tc.allow}, tc.env)
			if tc.wantErr == nil && err != nil {
				t.Fatalf("refused: %v", err)
			}
			for _, w := range tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v, want one naming %s", err, w)
				}
			}
			if warned := strings.Contains(logs.String(), "insecure"); warned != tc.wantWarn {
				t.Errorf("warned %v, want %v: %s", warned, tc.wantWarn, logs.String())
			}
		})
	}
}

// Token and secret-id files readable by group or others are warned about,
// by name, never by content.
func TestVaultWarnsAboutCredentialFilesOthersCanRead(t *testing.T) {
	dir := t.TempDir()
	const content = "hvs.do-not-print-this-0123456789"
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		auth func() VaultAuth
		warn string // the file warned about; "" none
	}{
		{"token file 0600", func() VaultAuth { return VaultAuth{Method: "token", TokenFile: write("t600", 0o600)} }, ""},
		{"token file 0400", func() VaultAuth { return VaultAuth{Method: "token", TokenFile: write("t400", 0o400)} }, ""},
		{"token file 0644", func() VaultAuth { return VaultAuth{Method: "token", TokenFile: write("t644", 0o644)} }, "t644"},
		{"token file 0604", func() VaultAuth { return VaultAuth{Method: "token", TokenFile: write("t604", 0o604)} }, "t604"},
		{"secret id 0640", func() VaultAuth {
			return VaultAuth{Method: "approle", RoleIDEnv: "R", SecretIDFile: write("s640", 0o640)}
		}, "s640"},
		{"secret id 0600", func() VaultAuth {
			return VaultAuth{Method: "approle", RoleIDEnv: "R", SecretIDFile: write("s600", 0o600)}
		}, ""},
		{"missing file", func() VaultAuth { return VaultAuth{Method: "token", TokenFile: filepath.Join(dir, "absent")} }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, logs, err := vaultStore(t, VaultConfig{Address: "https://vault.internal:8200", Auth: tc.auth()}, nil)
			if err != nil {
				t.Fatal(err)
			}
			out := logs.String()
			warned := strings.Contains(out, "readable by group or others")
			if warned != (tc.warn != "") {
				t.Fatalf("warned %v, want %v: %s", warned, tc.warn != "", out)
			}
			if tc.warn != "" && !strings.Contains(out, filepath.Join(dir, tc.warn)) {
				t.Errorf("the warning does not name the file: %s", out)
			}
			if strings.Contains(out, content) {
				t.Errorf("the file's content was logged: %s", out)
			}
		})
	}
}
