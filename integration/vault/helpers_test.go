// Package vault tests exogate's Vault credentials against a real Vault: the
// in-process test cluster from Vault's own module, with the KV v2 secrets
// engine and the AppRole and Kubernetes auth methods. It lives in its own Go
// module so that exogate's go.mod needs only vault/api.
package vault

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	kubeauth "github.com/hashicorp/vault-plugin-auth-kubernetes"
	kv "github.com/hashicorp/vault-plugin-secrets-kv"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/builtin/credential/approle"
	vaulthttp "github.com/hashicorp/vault/http"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/vault"
	"github.com/rs/zerolog"

	"github.com/exogate/exogate/internal/testutil"
)

// secrets holds every secret the suite hands out (API tokens, Vault tokens,
// secret ids, service-account JWTs). TestMain fails the run if any of them
// appears in any log output captured from exogate.
var secrets = &secretSet{}

type secretSet struct {
	mu sync.Mutex
	s  []string
}

func (s *secretSet) add(v ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range v {
		if len(x) >= 8 {
			s.s = append(s.s, x)
		}
	}
}

// allLogs is every line exogate logged in this suite, in process or not.
var allLogs = &testutil.SyncBuffer{}

func TestMain(m *testing.M) {
	code := m.Run()
	logs := allLogs.String()
	if code == 0 && logs == "" {
		fmt.Fprintln(os.Stderr, "FAIL: no exogate log output was captured")
		code = 1
	}
	secrets.mu.Lock()
	for _, s := range secrets.s {
		for _, form := range []string{s, base64.StdEncoding.EncodeToString([]byte(s))} {
			if strings.Contains(logs, form) {
				fmt.Fprintf(os.Stderr, "FAIL: a secret (%s…) appears in exogate's log output\n", s[:4])
				code = 1
			}
		}
	}
	secrets.mu.Unlock()
	os.Exit(code)
}

// newLogger returns a debug-level logger into allLogs (and the test's own
// buffer, when given).
func newLogger(extra ...io.Writer) zerolog.Logger {
	return zerolog.New(io.MultiWriter(append([]io.Writer{allLogs}, extra...)...)).Level(zerolog.DebugLevel).With().Timestamp().Logger()
}

// testVault is a running in-process Vault with KV v2 at secret/, KV v1 at
// kv1/, and AppRole and Kubernetes auth enabled.
type testVault struct {
	cluster *vault.TestCluster
	root    *api.Client
	addr    string
	caFile  string
}

func startVault(t *testing.T) *testVault {
	t.Helper()
	cluster := vault.NewTestCluster(t, &vault.CoreConfig{
		LogicalBackends: map[string]logical.Factory{"kv": kv.Factory},
		CredentialBackends: map[string]logical.Factory{
			"approle":    approle.Factory,
			"kubernetes": kubeauth.Factory,
		},
	}, &vault.TestClusterOptions{HandlerFunc: vaulthttp.Handler, NumCores: 1})
	cluster.Start()
	t.Cleanup(cluster.Cleanup)
	root := cluster.Cores[0].Client
	must(t, root.Sys().Unmount("secret"))
	must(t, root.Sys().Mount("secret", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}))
	must(t, root.Sys().Mount("kv1", &api.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}))
	must(t, root.Sys().EnableAuthWithOptions("approle", &api.EnableAuthOptions{Type: "approle"}))
	must(t, root.Sys().PutPolicy("exogate", exogatePolicy))
	// KV v2 mounts upgrade in the background: wait until writes work.
	waitFor(t, 30*time.Second, func() bool {
		_, err := root.KVv2("secret").Put(context.Background(), "probe", map[string]any{"x": "y"})
		return err == nil
	})
	return &testVault{cluster: cluster, root: root, addr: root.Address(), caFile: cluster.CACertPEMFile}
}

const exogatePolicy = `
path "secret/data/exotel/*" { capabilities = ["read"] }
path "kv1/exotel/*" { capabilities = ["read"] }
`

// putPair writes an account's key and token as a new KV v2 version.
func (v *testVault) putPair(t *testing.T, path, key, token string) int {
	t.Helper()
	secrets.add(key, token)
	s, err := v.root.KVv2("secret").Put(context.Background(), path, map[string]any{"api_key": key, "api_token": token})
	if err != nil {
		t.Fatal(err)
	}
	return s.VersionMetadata.Version
}

// appRole creates a role with the exogate policy and returns its role id and
// a fresh secret id.
func (v *testVault) appRole(t *testing.T, name string, ttl, maxTTL time.Duration) (roleID, secretID string) {
	t.Helper()
	_, err := v.root.Logical().Write("auth/approle/role/"+name, map[string]any{
		"token_policies": "exogate",
		"token_ttl":      int(ttl.Seconds()),
		"token_max_ttl":  int(maxTTL.Seconds()),
	})
	must(t, err)
	r, err := v.root.Logical().Read("auth/approle/role/" + name + "/role-id")
	must(t, err)
	roleID = r.Data["role_id"].(string)
	return roleID, v.secretID(t, name)
}

func (v *testVault) secretID(t *testing.T, role string) string {
	t.Helper()
	s, err := v.root.Logical().Write("auth/approle/role/"+role+"/secret-id", nil)
	must(t, err)
	id := s.Data["secret_id"].(string)
	secrets.add(id)
	return id
}

// wrappedSecretID returns a new secret id of role, response-wrapped: a
// wrapping token that can be unwrapped once.
func (v *testVault) wrappedSecretID(t *testing.T, role string) string {
	t.Helper()
	c, err := v.root.Clone()
	must(t, err)
	c.SetToken(v.root.Token())
	c.SetWrappingLookupFunc(func(string, string) string { return "5m" })
	s, err := c.Logical().Write("auth/approle/role/"+role+"/secret-id", nil)
	must(t, err)
	secrets.add(s.WrapInfo.Token)
	return s.WrapInfo.Token
}

// token creates a token with the exogate policy.
func (v *testVault) token(t *testing.T, ttl time.Duration) string {
	t.Helper()
	s, err := v.root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"exogate"}, TTL: ttl.String()})
	must(t, err)
	secrets.add(s.Auth.ClientToken)
	return s.Auth.ClientToken
}

// serviceAccountJWT returns an RS256 JWT with a pod service account's claims.
// Vault's Kubernetes auth parses it and asks the TokenReview API (our fake)
// whether it is valid.
func serviceAccountJWT(t *testing.T, namespace, name, uid string) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	must(t, err)
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	head := enc(map[string]string{"alg": "RS256", "typ": "JWT"})
	body := enc(map[string]any{
		"iss":                                    "kubernetes/serviceaccount",
		"sub":                                    "system:serviceaccount:" + namespace + ":" + name,
		"kubernetes.io/serviceaccount/namespace": namespace,
		"kubernetes.io/serviceaccount/service-account.name": name,
		"kubernetes.io/serviceaccount/service-account.uid":  uid,
		"kubernetes.io/serviceaccount/secret.name":          name + "-token",
		"iat": time.Now().Unix(),
	})
	sum := sha256.Sum256([]byte(head + "." + body))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	must(t, err)
	jwt := head + "." + body + "." + base64.RawURLEncoding.EncodeToString(sig)
	secrets.add(jwt)
	return jwt
}

// tokenReviewer is a fake Kubernetes TokenReview API: it accepts the JWTs it
// was given and records every one it was asked about.
type tokenReviewer struct {
	mu       sync.Mutex
	valid    map[string][3]string // jwt -> namespace, name, uid
	reviewed []string
}

func (tr *tokenReviewer) allow(jwt, namespace, name, uid string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.valid == nil {
		tr.valid = map[string][3]string{}
	}
	tr.valid[jwt] = [3]string{namespace, name, uid}
}

func (tr *tokenReviewer) seen() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]string(nil), tr.reviewed...)
}

func (tr *tokenReviewer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/apis/authentication.k8s.io/v1/tokenreviews" || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	var review struct {
		Spec struct {
			Token string `json:"token"`
		} `json:"spec"`
	}
	_ = json.NewDecoder(r.Body).Decode(&review)
	tr.mu.Lock()
	tr.reviewed = append(tr.reviewed, review.Spec.Token)
	who, ok := tr.valid[review.Spec.Token]
	tr.mu.Unlock()
	status := map[string]any{"authenticated": false}
	if ok {
		status = map[string]any{"authenticated": true, "user": map[string]any{
			"username": "system:serviceaccount:" + who[0] + ":" + who[1], "uid": who[2],
		}}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1", "status": status,
	})
}

// relay forwards TCP connections on loopback to target until hang is
// called; then it cuts the connections it was forwarding and holds every new
// one open without a byte of answer, the way a Vault behind a dead route
// looks (connections time out rather than being refused). release forwards
// the held connections and the new ones again.
type relay struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	hanging bool
	live    []net.Conn // forwarded connections, both ends
	held    []net.Conn // accepted while hanging, never answered
	nHeld   int        // connections ever held
}

func startRelay(t *testing.T, target string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	r := &relay{ln: ln, target: target}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			if r.hanging {
				r.held = append(r.held, c)
				r.nHeld++
				r.mu.Unlock()
				continue
			}
			r.mu.Unlock()
			r.forward(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, c := range append(r.live, r.held...) {
			c.Close()
		}
	})
	return r
}

func (r *relay) addr() string { return r.ln.Addr().String() }

func (r *relay) forward(c net.Conn) {
	up, err := net.Dial("tcp", r.target)
	if err != nil {
		c.Close()
		return
	}
	r.mu.Lock()
	r.live = append(r.live, c, up)
	r.mu.Unlock()
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		dst.Close()
		src.Close()
	}
	go pipe(up, c)
	go pipe(c, up)
}

func (r *relay) hang() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hanging = true
	for _, c := range r.live {
		c.Close()
	}
	r.live = nil
}

// heldCount returns how many connections were ever held.
func (r *relay) heldCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nHeld
}

func (r *relay) release() {
	r.mu.Lock()
	r.hanging = false
	held := r.held
	r.held = nil
	r.mu.Unlock()
	for _, c := range held {
		r.forward(c)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or fails the test after limit.
func waitFor(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, limit, "condition not met", cond)
}
