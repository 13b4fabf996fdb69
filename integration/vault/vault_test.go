package vault

import (
	"context"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/exogate/exogate/credentials"
	"github.com/exogate/exogate/internal/testutil"
)

const acmePath = "exotel/acme"

// newStore starts a credentials store for the account "acme" reading
// secret/exotel/acme from v, and stops it (revoking its token) at cleanup.
func newStore(t *testing.T, v *testVault, auth credentials.VaultAuth, env map[string]string, secret credentials.VaultSecret) (*credentials.Store, *testutil.SyncBuffer) {
	t.Helper()
	logs := &testutil.SyncBuffer{}
	return startStore(t, storeConfig(v, auth, env, secret, logs), logs), logs
}

// storeConfig is the configuration newStore uses.
func storeConfig(v *testVault, auth credentials.VaultAuth, env map[string]string, secret credentials.VaultSecret, logs io.Writer) credentials.Config {
	if secret.Path == "" {
		secret.Path = acmePath
	}
	return credentials.Config{
		Accounts:         []credentials.Spec{{Account: "acme", Source: "vault", Vault: secret}},
		Vault:            credentials.VaultConfig{Address: v.addr, CAFile: v.caFile, Auth: auth},
		RefreshInterval:  300 * time.Millisecond,
		MinForcedRefresh: 100 * time.Millisecond,
		Getenv:           func(k string) string { return env[k] },
		Logger:           newLogger(logs),
	}
}

// startStore makes and starts a store from cfg, and closes it at cleanup
// (printing logs if the test failed).
func startStore(t *testing.T, cfg credentials.Config, logs *testutil.SyncBuffer) *credentials.Store {
	t.Helper()
	s, err := credentials.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.Start(ctx)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("exogate's log:\n%s", logs.String())
		}
		cancel()
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// basic returns the key and token a store would send for acme.
func basic(t *testing.T, s *credentials.Store) (key, token, version string) {
	t.Helper()
	h := http.Header{}
	version, err := s.Authorize(h, "acme")
	if err != nil {
		return "", "", ""
	}
	r := &http.Request{Header: h}
	key, token, _ = r.BasicAuth()
	return key, token, version
}

func waitVersion(t *testing.T, s *credentials.Store, version string) {
	t.Helper()
	waitFor(t, 20*time.Second, func() bool {
		c := s.Current("acme")
		return c != nil && c.Version() == version
	})
}

func TestKVv2ReadAndNewVersionPickedUp(t *testing.T) {
	v := startVault(t)
	v.putPair(t, acmePath, "key-one-1234", "token-one-5678")
	tok := v.token(t, time.Hour)
	s, logs := newStore(t, v, credentials.VaultAuth{Method: "token"}, map[string]string{"VAULT_TOKEN": tok}, credentials.VaultSecret{})

	waitVersion(t, s, "v1")
	if k, tk, _ := basic(t, s); k != "key-one-1234" || tk != "token-one-5678" {
		t.Fatalf("read %q:%q", k, tk)
	}
	v.putPair(t, acmePath, "key-one-1234", "token-two-9999")
	waitVersion(t, s, "v2")
	if _, tk, _ := basic(t, s); tk != "token-two-9999" {
		t.Fatalf("rotation not picked up: %q", tk)
	}

	// A deleted latest version reads as no data: the last good pair stays.
	must(t, v.root.KVv2("secret").Delete(context.Background(), acmePath))
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(logs.String(), "deleted or destroyed") })
	if _, tk, ver := basic(t, s); tk != "token-two-9999" || ver != "v2" {
		t.Errorf("after delete: %q %s", tk, ver)
	}
	// A version missing a field is refused too, naming the field.
	_, err := v.root.KVv2("secret").Put(context.Background(), acmePath, map[string]any{"api_key": "k"})
	must(t, err)
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(logs.String(), `field \"api_token\" is missing`) })
	if _, _, ver := basic(t, s); ver != "v2" {
		t.Errorf("incomplete version swapped in: %s", ver)
	}
}

func TestKVv1(t *testing.T) {
	v := startVault(t)
	_, err := v.root.Logical().Write("kv1/exotel/acme", map[string]any{"key": "kv1-key-1234", "secret": "kv1-token-5678"})
	must(t, err)
	secrets.add("kv1-key-1234", "kv1-token-5678")
	tok := v.token(t, time.Hour)
	s, _ := newStore(t, v, credentials.VaultAuth{}, map[string]string{"VAULT_TOKEN": tok},
		credentials.VaultSecret{Mount: "kv1", KVVersion: 1, APIKeyField: "key", APITokenField: "secret"})
	waitVersion(t, s, "kv1-"+credentials.Fingerprint("kv1-key-1234", "kv1-token-5678"))
	if k, tk, _ := basic(t, s); k != "kv1-key-1234" || tk != "kv1-token-5678" {
		t.Fatalf("read %q:%q", k, tk)
	}
	_, err = v.root.Logical().Write("kv1/exotel/acme", map[string]any{"key": "kv1-key-1234", "secret": "kv1-token-rotated"})
	must(t, err)
	secrets.add("kv1-token-rotated")
	// KV v1 keeps no versions: the label is the pair's fingerprint, the
	// same on every replica.
	waitVersion(t, s, "kv1-"+credentials.Fingerprint("kv1-key-1234", "kv1-token-rotated"))
}

func TestAppRoleLoginRenewalExpiryAndRelogin(t *testing.T) {
	v := startVault(t)
	v.putPair(t, acmePath, "approle-key-1", "approle-token-1")
	roleID, secretID := v.appRole(t, "exogate", 2*time.Second, 6*time.Second)
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "role_id"), []byte(roleID), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "secret_id"), []byte(secretID+"\n"), 0o600))
	s, logs := newStore(t, v, credentials.VaultAuth{Method: "approle",
		RoleIDFile: filepath.Join(dir, "role_id"), SecretIDFile: filepath.Join(dir, "secret_id")}, nil, credentials.VaultSecret{})
	waitVersion(t, s, "v1")

	// Renewed while it can be, then (max TTL 6s) a fresh login.
	waitFor(t, 30*time.Second, func() bool {
		l := logs.String()
		return strings.Contains(l, "vault: token renewed") && strings.Count(l, "vault: logged in") >= 2
	})
	// Reads go on with the new token.
	v.putPair(t, acmePath, "approle-key-1", "approle-token-2")
	waitVersion(t, s, "v2")

	// Vault tokens (hvs.…) and the role id never reach the log.
	var tokens []string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "hvs.") || strings.Contains(line, roleID) {
			tokens = append(tokens, line)
		}
	}
	if len(tokens) > 0 {
		t.Errorf("log lines mention a token or the role id: %v", tokens)
	}
}

func TestPolicyRevokedThenRestored(t *testing.T) {
	v := startVault(t)
	v.putPair(t, acmePath, "policy-key-1", "policy-token-1")
	roleID, secretID := v.appRole(t, "exogate", time.Hour, time.Hour)
	s, logs := newStore(t, v, credentials.VaultAuth{Method: "approle", RoleIDEnv: "ROLE", SecretIDEnv: "SECRET"},
		map[string]string{"ROLE": roleID, "SECRET": secretID}, credentials.VaultSecret{})
	waitVersion(t, s, "v1")

	must(t, v.root.Sys().PutPolicy("exogate", `path "secret/data/other/*" { capabilities = ["read"] }`))
	waitFor(t, 20*time.Second, func() bool { return strings.Contains(logs.String(), "permission denied (403)") })
	if _, tk, _ := basic(t, s); tk != "policy-token-1" {
		t.Fatalf("last good credentials lost after 403: %q", tk)
	}
	if n := strings.Count(logs.String(), "permission denied (403)"); n != 1 {
		t.Errorf("403 logged %d times, want once per change", n)
	}
	if !strings.Contains(logs.String(), "secret/data/exotel/acme") {
		t.Error("the error does not name the Vault path")
	}

	must(t, v.root.Sys().PutPolicy("exogate", exogatePolicy))
	v.putPair(t, acmePath, "policy-key-1", "policy-token-2")
	waitVersion(t, s, "v2")
	if !strings.Contains(logs.String(), "source recovered") {
		t.Error("recovery not logged")
	}
}

func TestTokenFileRotatedOnDisk(t *testing.T) {
	v := startVault(t)
	v.putPair(t, acmePath, "file-key-1", "file-token-1")
	tokenFile := filepath.Join(t.TempDir(), "sink")
	first := v.token(t, time.Hour)
	must(t, os.WriteFile(tokenFile, []byte(first), 0o600))
	s, logs := newStore(t, v, credentials.VaultAuth{Method: "token", TokenFile: tokenFile}, nil, credentials.VaultSecret{})
	waitVersion(t, s, "v1")

	// Vault Agent writes a new token and the old one is revoked.
	second := v.token(t, time.Hour)
	must(t, os.WriteFile(tokenFile+".tmp", []byte(second), 0o600))
	must(t, os.Rename(tokenFile+".tmp", tokenFile))
	waitFor(t, 20*time.Second, func() bool { return strings.Contains(logs.String(), "vault: token file changed") })
	must(t, v.root.Auth().Token().RevokeTree(first))
	v.putPair(t, acmePath, "file-key-1", "file-token-2")
	waitVersion(t, s, "v2")
}

func TestWrappedSecretIDIsNeverReused(t *testing.T) {
	v := startVault(t)
	v.putPair(t, acmePath, "wrap-key-1", "wrap-token-1")
	roleID, _ := v.appRole(t, "wrapped", 2*time.Second, 3*time.Second)
	wrapped := func() string { return v.wrappedSecretID(t, "wrapped") }
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "role_id"), []byte(roleID), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "secret_id"), []byte(wrapped()), 0o600))
	s, logs := newStore(t, v, credentials.VaultAuth{Method: "approle", RoleIDFile: filepath.Join(dir, "role_id"),
		SecretIDFile: filepath.Join(dir, "secret_id"), SecretIDWrapped: true}, nil, credentials.VaultSecret{})
	waitVersion(t, s, "v1")
	// At max TTL a new login is due, but the wrapped id was used once.
	waitFor(t, 30*time.Second, func() bool { return strings.Contains(logs.String(), "already used once") })
	if n := strings.Count(logs.String(), "vault: logged in"); n != 1 {
		t.Fatalf("%d logins with one wrapped secret id", n)
	}
	// A new wrapped id arrives (as from an orchestrator): login works again.
	must(t, os.WriteFile(filepath.Join(dir, "secret_id"), []byte(wrapped()), 0o600))
	waitFor(t, 30*time.Second, func() bool { return strings.Count(logs.String(), "vault: logged in") >= 2 })
	if _, tk, _ := basic(t, s); tk != "wrap-token-1" {
		t.Errorf("credentials lost while logged out: %q", tk)
	}
}

func TestKubernetesAuth(t *testing.T) {
	v := startVault(t)
	v.putPair(t, acmePath, "kube-key-1", "kube-token-1")
	reviewer := &tokenReviewer{}
	k8s := httptest.NewTLSServer(reviewer)
	defer k8s.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k8s.Certificate().Raw})

	must(t, v.root.Sys().EnableAuthWithOptions("kubernetes", &api.EnableAuthOptions{Type: "kubernetes"}))
	_, err := v.root.Logical().Write("auth/kubernetes/config", map[string]any{
		"kubernetes_host":      k8s.URL,
		"kubernetes_ca_cert":   string(ca),
		"disable_local_ca_jwt": true,
	})
	must(t, err)
	_, err = v.root.Logical().Write("auth/kubernetes/role/exogate", map[string]any{
		"bound_service_account_names":      "my-app",
		"bound_service_account_namespaces": "default",
		"token_policies":                   "exogate",
		"token_ttl":                        2,
		"token_max_ttl":                    3,
	})
	must(t, err)

	jwt1 := serviceAccountJWT(t, "default", "my-app", "uid-1")
	reviewer.allow(jwt1, "default", "my-app", "uid-1")
	saFile := filepath.Join(t.TempDir(), "token")
	must(t, os.WriteFile(saFile, []byte(jwt1), 0o600))
	s, logs := newStore(t, v, credentials.VaultAuth{Method: "kubernetes", Role: "exogate", ServiceAccountTokenFile: saFile}, nil, credentials.VaultSecret{})
	waitVersion(t, s, "v1")

	// The kubelet rotates the projected token: the next login must send the
	// new one (a new auth value per login, the file read each time).
	jwt2 := serviceAccountJWT(t, "default", "my-app", "uid-1")
	reviewer.allow(jwt2, "default", "my-app", "uid-1")
	must(t, os.WriteFile(saFile, []byte(jwt2), 0o600))
	waitFor(t, 30*time.Second, func() bool {
		for _, j := range reviewer.seen() {
			if j == jwt2 {
				return true
			}
		}
		return false
	})
	v.putPair(t, acmePath, "kube-key-1", "kube-token-2")
	waitVersion(t, s, "v2")
	if strings.Contains(logs.String(), "login failed") {
		t.Errorf("a login failed: %s", logs.String())
	}
}

// A reload with secret_id_wrapped: true must not need the wrapped secret id
// again: it was spent at the first login. The new store shares the old one's
// Vault session (no new login), keeps reading after the old store is closed,
// and when the Vault settings did change, the new session still knows the
// id is spent and does not send it to Vault again.
func TestReloadKeepsTheWrappedSecretIDSession(t *testing.T) {
	v := startVault(t)
	v.putPair(t, acmePath, "reload-key-1", "reload-token-1")
	roleID, _ := v.appRole(t, "wrapped", time.Hour, time.Hour)
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "role_id"), []byte(roleID), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "secret_id"), []byte(v.wrappedSecretID(t, "wrapped")), 0o600))
	auth := credentials.VaultAuth{Method: "approle", RoleIDFile: filepath.Join(dir, "role_id"),
		SecretIDFile: filepath.Join(dir, "secret_id"), SecretIDWrapped: true}
	logs := &testutil.SyncBuffer{}
	first := startStore(t, storeConfig(v, auth, nil, credentials.VaultSecret{}, logs), logs)
	waitVersion(t, first, "v1")

	// The reload: the new store starts, then the old one is closed.
	cfg := storeConfig(v, auth, nil, credentials.VaultSecret{}, logs)
	cfg.Previous = first
	second := startStore(t, cfg, logs)
	must(t, first.Close(context.Background()))
	v.putPair(t, acmePath, "reload-key-1", "reload-token-2")
	waitVersion(t, second, "v2")
	if n := strings.Count(logs.String(), "vault: logged in"); n != 1 {
		t.Errorf("%d logins, want the one before the reload", n)
	}
	if strings.Contains(logs.String(), "vault: token revoked") {
		t.Error("closing the old store revoked the token the new one uses")
	}

	// A reload that changes the Vault settings needs a new session; the
	// spent wrapped id is not sent to Vault again.
	logs3 := &testutil.SyncBuffer{}
	cfg = storeConfig(v, auth, nil, credentials.VaultSecret{}, logs3)
	cfg.Vault.Timeout = 7 * time.Second
	cfg.Previous = second
	third := startStore(t, cfg, logs3)
	waitFor(t, 20*time.Second, func() bool { return strings.Contains(logs3.String(), "already used once") })
	if strings.Contains(logs3.String(), "Vault answered") {
		t.Errorf("the spent wrapped secret id was sent to Vault again: %s", logs3.String())
	}
	if _, tk, _ := basic(t, third); tk != "reload-token-2" {
		t.Errorf("the new store lost the credentials it started with: %q", tk)
	}
	must(t, third.Close(context.Background()))

	// The last store closed revokes the session's token, once.
	must(t, second.Close(context.Background()))
	if n := strings.Count(logs.String(), "vault: token revoked"); n != 1 {
		t.Errorf("token revoked %d times, want once", n)
	}
}
