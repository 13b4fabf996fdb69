package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/exogate/exogate/internal/callers"
	"github.com/exogate/exogate/internal/exotel"
	"github.com/exogate/exogate/internal/gateway"
	"github.com/exogate/exogate/internal/redistest"
	"github.com/exogate/exogate/internal/testutil"
)

const (
	billingSecret   = "billing-secret-0123456789abcdef0123456789"
	callflowsSecret = "callflows-secret-0123456789abcdef01234567"
	opsSecret       = "ops-secret-0123456789abcdefghij0123456789"
)

// A central gateway with two clients of different rights and shares.
func clientsConfig(farm *exotelFarm, extra string) string {
	return farm.config(fmt.Sprintf(`auth: {required: true}
limits:
  max_wait: 0s
  buckets:
    voice_v1: {limit: 8, period: 1h, burst: 7}
    sms: {limit: 100, period: 1h, burst: 99}
clients:
  - id: callflows
    secret_sha256: %s
    accounts: [acme]
    buckets: [voice_v1, voice_v2]
    share: 3
  - id: billing
    secret_sha256: %s
    accounts: [acme]
    buckets: [sms]
    methods: [POST]
    share: 1
    max_per_period: 2
%s`, callers.HashSecret(callflowsSecret), callers.HashSecret(billingSecret), extra))
}

func TestClientsRightsAndShares(t *testing.T) {
	t.Parallel()
	farm := newFarm(t)
	g := startGateway(t, []string{"-config", writeFile(t, "exogate.yaml", clientsConfig(farm, ""))}, farmEnv())
	billing := map[string]string{"Authorization": basicOf("billing", billingSecret), "Content-Type": "application/x-www-form-urlencoded"}
	callflows := map[string]string{"Authorization": basicOf("callflows", callflowsSecret)}

	for _, tc := range []struct {
		name, method, path string
		hdr                map[string]string
		status             int
		kind               string
	}{
		{"no credentials", "GET", "/v1/Accounts/acme/Calls.json", nil, 401, "unauthenticated"},
		{"stale Exotel credentials", "GET", "/v1/Accounts/acme/Calls.json", map[string]string{"Authorization": basicOf(acmeKey, acmeToken)}, 401, "unauthenticated"},
		{"wrong secret", "POST", "/v1/Accounts/acme/Sms/send.json", map[string]string{"Authorization": basicOf("billing", callflowsSecret)}, 401, "unauthenticated"},
		{"billing sends sms", "POST", "/v1/Accounts/acme/Sms/send.json", billing, 200, ""},
		{"billing may not read", "GET", "/v1/Accounts/acme/SMS/Messages/x.json", billing, 403, "forbidden"},
		{"billing may not call", "POST", "/v1/Accounts/acme/Calls/connect.json", billing, 403, "forbidden"},
		{"billing may not use another account", "POST", "/v1/Accounts/acme1m/Sms/send.json", billing, 403, "forbidden"},
		{"billing on an unknown account: forbidden, not 404", "POST", "/v1/Accounts/nosuch/Sms/send.json", billing, 403, "forbidden"},
		{"callflows calls", "POST", "/v1/Accounts/acme/Calls/connect.json", callflows, 200, ""},
		{"callflows v2", "POST", "/v2/accounts/acme/calls", callflows, 200, ""},
		{"callflows may not send sms", "POST", "/v1/Accounts/acme/Sms/send.json", callflows, 403, "forbidden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			farm.reset()
			resp, body := send(t, tc.method, g.base+tc.path, "To=1", tc.hdr)
			if resp.StatusCode != tc.status || resp.Header.Get("X-Exogate-Error") != tc.kind {
				t.Fatalf("%d %q: %s", resp.StatusCode, resp.Header.Get("X-Exogate-Error"), body)
			}
			if tc.status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if tc.status >= 400 && !strings.Contains(body, "RestException") {
				t.Errorf("not in Exotel's shape: %s", body)
			}
			got := farm.all()
			if tc.status != 200 {
				if len(got) != 0 {
					t.Errorf("a refused request reached Exotel")
				}
				return
			}
			if len(got) != 1 || got[0].Header.Get("Authorization") != basicOf(acmeKey, acmeToken) {
				t.Errorf("upstream did not get exactly the account's credentials: %+v", got)
			}
		})
	}

	// billing: max_per_period 2 in sms (it used one above); its share
	// (1 of 4) of sms's 100 would be 25.
	farm.reset()
	var codes []int
	for range 3 {
		resp, _ := send(t, "POST", g.base+"/v1/Accounts/acme/Sms/send.json", "To=1", billing)
		codes = append(codes, resp.StatusCode)
	}
	// A cap of n per period keeps to "never more than n in any window": n-1
	// at once, the n-th a period later. billing used its one above.
	if fmt.Sprint(codes) != "[429 429 429]" {
		t.Errorf("billing over its cap: %v, want [429 429 429]", codes)
	}
	// callflows: share 3 of 4 of voice_v1's 8 = 6, so 5 at once; it used
	// one above.
	codes = nil
	for range 6 {
		resp, _ := send(t, "POST", g.base+"/v1/Accounts/acme/Calls/connect.json", "To=1", callflows)
		codes = append(codes, resp.StatusCode)
	}
	if fmt.Sprint(codes) != "[200 200 200 200 429 429]" {
		t.Errorf("callflows over its share: %v, want four more then 429", codes)
	}

	logs := g.logs.String()
	if !strings.Contains(logs, `"client":"billing"`) || !strings.Contains(logs, `"client":"callflows"`) || !strings.Contains(logs, `"client":"anonymous"`) {
		t.Error("access lines do not carry the client id")
	}
	for _, r := range farm.all() {
		for _, v := range r.Header {
			for _, s := range []string{billingSecret, callflowsSecret, basicOf("billing", billingSecret)[6:]} {
				if strings.Contains(strings.Join(v, ","), s) {
					t.Error("a client secret reached Exotel")
				}
			}
		}
	}
}

func TestOpenListenerRefused(t *testing.T) {
	t.Parallel()
	farm := newFarm(t)
	open := strings.Replace(farm.config(""), "listen: 127.0.0.1:0", "listen: 0.0.0.0:0", 1)
	err := run(context.Background(), []string{"exogate", "-config", writeFile(t, "c.yaml", open)}, func(k string) string { return farmEnv()[k] }, nil, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "auth.allow_unauthenticated") {
		t.Errorf("a non-loopback listener without client auth started: %q", err)
	}
	env := map[string]string{"EXOTEL_API_KEY": acmeKey, "EXOTEL_API_TOKEN": acmeToken, "EXOTEL_ACCOUNT_SID": "acme", "EXOGATE_LISTEN": "0.0.0.0:0"}
	err = run(context.Background(), []string{"exogate"}, func(k string) string { return env[k] }, nil, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "EXOGATE_ALLOW_UNAUTHENTICATED") {
		t.Errorf("zero-setup on a non-loopback address started: %q", err)
	}
	required := strings.Replace(farm.config("auth: {required: true}\n"), "listen: 127.0.0.1:0", "listen: 127.0.0.1:0", 1)
	err = run(context.Background(), []string{"exogate", "-config", writeFile(t, "r.yaml", required)}, func(k string) string { return farmEnv()[k] }, nil, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "no clients are configured") {
		t.Errorf("auth required without clients: %v", err)
	}
}

func TestHashSecretCommand(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := hashSecret(strings.NewReader(billingSecret+"\n"), &out); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out.String()) != callers.HashSecret(billingSecret) || strings.Contains(out.String(), billingSecret) {
		t.Errorf("hash-secret printed %q", out.String())
	}
	for _, short := range []string{"short", strings.Repeat("x", 31), "billing-secret-0123456789abcdef"} {
		err := hashSecret(strings.NewReader(short+"\n"), io.Discard)
		if err == nil || !strings.Contains(err.Error(), "at least 32") || !strings.Contains(err.Error(), "openssl rand -base64 32") {
			t.Errorf("a %d-character secret: %v, want a refusal that says how to make one", len(short), err)
		}
	}
	if err := hashSecret(strings.NewReader(strings.Repeat("x", 32)+"\n"), io.Discard); err != nil {
		t.Errorf("a 32-character secret: %v", err)
	}
}

// exogate hash-secret reads the secret from run's stdin, never from the
// arguments or the environment.
func TestHashSecretThroughRun(t *testing.T) {
	t.Parallel() // nothing shared: no listener, no environment, stdin is a parameter
	var out, errOut bytes.Buffer
	getenv := func(string) string { return "" }
	if err := run(t.Context(), []string{"exogate", "hash-secret"}, getenv, strings.NewReader(billingSecret+"\n"), &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out.String()); got != callers.HashSecret(billingSecret) {
		t.Errorf("hash-secret printed %q, want the secret's hash", got)
	}
	if strings.Contains(out.String()+errOut.String(), billingSecret) {
		t.Error("hash-secret printed the secret")
	}
	err := run(t.Context(), []string{"exogate", "hash-secret"}, getenv, strings.NewReader("short\n"), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "at least 32") {
		t.Errorf("a short secret on stdin: %v, want a refusal", err)
	}
}

// pki is a throw-away CA with a server and client certificates.
type pki struct {
	renew                 func(t *testing.T)
	dir                   string
	caPEM                 []byte
	caCert                *x509.Certificate
	caKey                 *ecdsa.PrivateKey
	serverCert, serverKey string
	caFile                string
	opsCert, strangerCert tls.Certificate
	otherCAClient         tls.Certificate
	// issue makes a client certificate of the CA with a CN, an optional URI
	// SAN and DNS SANs.
	issue func(cn, uri string, dns ...string) tls.Certificate
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	mk := func(tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, []byte, []byte) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		if err != nil {
			t.Fatal(err)
		}
		cert, _ := x509.ParseCertificate(der)
		kder, _ := x509.MarshalECPrivateKey(key)
		return cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	}
	serial := int64(1)
	tmpl := func(cn string, isCA bool) *x509.Certificate {
		serial++
		c := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: isCA,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
		return c
	}
	var caPEM []byte
	p.caCert, p.caKey, caPEM, _ = mk(tmpl("exogate test CA", true), nil, nil)
	p.caPEM = caPEM
	srv := tmpl("127.0.0.1", false)
	srv.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	_, _, sPEM, sKey := mk(srv, p.caCert, p.caKey)
	p.serverCert, p.serverKey, p.caFile = filepath.Join(p.dir, "server.pem"), filepath.Join(p.dir, "server.key"), filepath.Join(p.dir, "ca.pem")
	_ = os.WriteFile(p.serverCert, sPEM, 0o600)
	_ = os.WriteFile(p.serverKey, sKey, 0o600)
	_ = os.WriteFile(p.caFile, caPEM, 0o600)
	client := func(cn string, uri string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, dns ...string) tls.Certificate {
		c := tmpl(cn, false)
		if uri != "" {
			u, _ := url.Parse(uri)
			c.URIs = []*url.URL{u}
		}
		c.DNSNames = dns
		_, _, cPEM, cKey := mk(c, parent, parentKey)
		pair, err := tls.X509KeyPair(cPEM, cKey)
		if err != nil {
			t.Fatal(err)
		}
		return pair
	}
	p.renew = func(t *testing.T) {
		srv := tmpl("127.0.0.1", false)
		srv.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		_, _, sPEM, sKey := mk(srv, p.caCert, p.caKey)
		_ = os.WriteFile(p.serverKey, sKey, 0o600)
		_ = os.WriteFile(p.serverCert, sPEM, 0o600)
	}
	p.issue = func(cn, uri string, dns ...string) tls.Certificate { return client(cn, uri, p.caCert, p.caKey, dns...) }
	p.opsCert = client("ops", "spiffe://corp/ops", p.caCert, p.caKey)
	p.strangerCert = client("stranger", "spiffe://corp/stranger", p.caCert, p.caKey)
	otherCA, otherKey, _, _ := mk(tmpl("other CA", true), nil, nil)
	p.otherCAClient = client("ops", "spiffe://corp/ops", otherCA, otherKey)
	return p
}

func (p *pki) renewServer(t *testing.T) { p.renew(t) }

// clients returns a maker of HTTPS clients that trust the CA and present
// the given certificates, and a function that sends one request to base
// and returns its status and X-Exogate-Error.
func (p *pki) clients(base string) (func(...tls.Certificate) *http.Client, func(c *http.Client, method, path string, hdr map[string]string) (int, string, error)) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.caPEM)
	clientWith := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs}}}
	}
	do := func(c *http.Client, method, path string, hdr map[string]string) (int, string, error) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader("To=1"))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("X-Exogate-Error"), nil
	}
	return clientWith, do
}

// startTLSGateway runs the gateway with a TLS listener, in process, and
// waits until /readyz answers over TLS. It returns the https base URL and
// the gateway's log.
func startTLSGateway(t *testing.T, cfg string) (string, *testutil.SyncBuffer) {
	t.Helper()
	logs := &testutil.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	started := make(chan string, 1)
	go func() {
		done <- runNotify(ctx, []string{"exogate", "-config", writeFile(t, "tls.yaml", cfg)}, func(k string) string { return farmEnv()[k] }, nil, io.Discard, io.MultiWriter(logs, allLogs),
			func(s *gateway.Server) { started <- s.Addr().String() })

	}()
	gatewaysStarted.Add(1)
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case addr := <-started:
		return "https://" + addr, logs
	case err := <-done:
		done <- err // for the cleanup
		t.Fatalf("run exited before listening: %v\n%s", err, logs.String())
		return "", nil
	}
}

func TestMutualTLS(t *testing.T) {
	t.Parallel()
	farm := newFarm(t)
	p := newPKI(t)
	cfg := clientsConfig(farm, fmt.Sprintf(`  - id: ops
    cert_identity: uri:spiffe://corp/ops
    accounts: ["*"]
tls: {cert_file: %s, key_file: %s, client_ca_file: %s}
`, p.serverCert, p.serverKey, p.caFile))
	base, logs := startTLSGateway(t, cfg)
	clientWith, do := p.clients(base)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.caPEM)
	waitFor(t, func() bool { code, _, err := do(clientWith(), "GET", "/readyz", nil); return err == nil && code == 200 })

	if code, kind, err := do(clientWith(p.opsCert), "POST", "/v2/accounts/acme1m/calls", nil); err != nil || code != 200 {
		t.Errorf("ops by certificate: %d %q %v", code, kind, err)
	}
	if code, kind, _ := do(clientWith(p.strangerCert), "GET", "/v1/Accounts/acme/Calls.json", nil); code != 401 || kind != "unauthenticated" {
		t.Errorf("a verified but unmapped certificate: %d %q", code, kind)
	}
	if code, _, err := do(clientWith(p.otherCAClient), "GET", "/v1/Accounts/acme/Calls.json", nil); err == nil && code == 200 {
		t.Errorf("a certificate from another CA was accepted")
	}
	if code, _, _ := do(clientWith(), "POST", "/v1/Accounts/acme/Sms/send.json", map[string]string{"Authorization": basicOf("billing", billingSecret)}); code != 200 {
		t.Errorf("Basic over TLS without a certificate: %d", code)
	}
	if code, kind, _ := do(clientWith(), "GET", "/v1/Accounts/acme/Calls.json", nil); code != 401 || kind != "unauthenticated" {
		t.Errorf("no certificate, no credentials: %d %q", code, kind)
	}
	if !strings.Contains(logs.String(), `"client":"ops"`) || !strings.Contains(logs.String(), `"scheme":"https"`) {
		t.Error("log does not show the TLS listener or the certificate's client")
	}

	// A renewed server certificate is picked up without a restart.
	serial := func() string {
		conn, err := tls.Dial("tcp", strings.TrimPrefix(base, "https://"), &tls.Config{RootCAs: pool})
		if err != nil {
			return ""
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := serial()
	p.renewServer(t)
	deadline := time.Now().Add(20 * time.Second)
	for serial() == before {
		if time.Now().After(deadline) {
			t.Fatal("the renewed certificate was not picked up within 20s")
		}
		<-time.After(100 * time.Millisecond)
	}
}

// Per-client caps hold across replicas with the Redis backend: billing's one
// request per hour is spent on one gateway and refused on the other.
func TestClientCapsOnRedis(t *testing.T) {
	// Serial: a Redis limiter routes go-redis's process-wide logger.
	// limits.redis.timeout 2s: on a loaded machine a Redis call over the
	// default 100ms would send a replica to its local share, which is not
	// what this test is about.
	farm := newFarm(t)
	redis := redistest.Start(t)
	cfg := strings.Replace(clientsConfig(farm, ""), "limits:\n  max_wait: 0s\n",
		fmt.Sprintf("limits:\n  max_wait: 0s\n  backend: redis\n  redis: {address: %q, key_prefix: \"caps:\", timeout: 2s}\n", redis.Addr()), 1)
	file := writeFile(t, "exogate.yaml", cfg)
	a := startGateway(t, []string{"-config", file}, farmEnv())
	b := startGateway(t, []string{"-config", file}, farmEnv())
	billing := map[string]string{"Authorization": basicOf("billing", billingSecret), "Content-Type": "application/x-www-form-urlencoded"}
	r1, _ := send(t, "POST", a.base+"/v1/Accounts/acme/Sms/send.json", "To=1", billing)
	r2, _ := send(t, "POST", b.base+"/v1/Accounts/acme/Sms/send.json", "To=1", billing)
	if r1.StatusCode != 200 || r2.StatusCode != 429 || r2.Header.Get("X-Exogate-Error") != "rate_limited" {
		t.Errorf("billing's cap across two replicas: %d then %d %q, want 200 then 429", r1.StatusCode, r2.StatusCode, r2.Header.Get("X-Exogate-Error"))
	}
	// callflows has its own budget: untouched by billing's.
	callflows := map[string]string{"Authorization": basicOf("callflows", callflowsSecret)}
	if r, _ := send(t, "POST", b.base+"/v1/Accounts/acme/Calls/connect.json", "To=1", callflows); r.StatusCode != 200 {
		t.Errorf("callflows: %d", r.StatusCode)
	}
}

// Each cert_identity is matched only against the kind it names, and a CN
// only on a certificate without SANs: a certificate whose CN spells another
// client's URI, or whose CN names a client beside SANs, identifies no one.
func TestCertIdentityKinds(t *testing.T) {
	t.Parallel()
	farm := newFarm(t)
	p := newPKI(t)
	cfg := clientsConfig(farm, fmt.Sprintf(`  - id: ops
    cert_identity: uri:spiffe://corp/ops
    accounts: ["*"]
  - id: batch
    cert_identity: dns:batch.corp.internal
    accounts: [acme]
  - id: legacy
    cert_identity: cn:legacy
    accounts: [acme]
tls: {cert_file: %s, key_file: %s, client_ca_file: %s}
`, p.serverCert, p.serverKey, p.caFile))
	base, logs := startTLSGateway(t, cfg)
	clientWith, do := p.clients(base)
	waitFor(t, func() bool { code, _, err := do(clientWith(), "GET", "/readyz", nil); return err == nil && code == 200 })

	for _, tc := range []struct {
		name   string
		cert   tls.Certificate
		status int
		client string // in the access line
	}{
		{"uri SAN", p.issue("whatever", "spiffe://corp/ops"), 200, "ops"},
		{"dns SAN, any case", p.issue("whatever", "", "x.corp", "Batch.Corp.Internal"), 200, "batch"},
		{"cn without SANs", p.issue("legacy", ""), 200, "legacy"},
		{"cn spelling a uri identity", p.issue("spiffe://corp/ops", ""), 401, ""},
		{"cn spelling a dns identity", p.issue("batch.corp.internal", ""), 401, ""},
		{"cn beside a dns SAN", p.issue("legacy", "", "x.corp"), 401, ""},
		{"cn beside a uri SAN", p.issue("legacy", "spiffe://corp/stranger"), 401, ""},
		{"dns SAN spelling a cn identity", p.issue("x", "", "legacy"), 401, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			farm.reset()
			code, kind, err := do(clientWith(tc.cert), "GET", "/v1/Accounts/acme/Calls.json", nil)
			if err != nil || code != tc.status {
				t.Fatalf("%d %q %v, want %d", code, kind, err, tc.status)
			}
			if tc.status == 401 && (kind != "unauthenticated" || len(farm.all()) != 0) {
				t.Errorf("refused as %q, %d requests reached Exotel", kind, len(farm.all()))
			}
		})
	}
	for _, id := range []string{"ops", "batch", "legacy"} {
		if !strings.Contains(logs.String(), `"client":"`+id+`"`) {
			t.Errorf("no access line for client %s", id)
		}
	}
}

// An un-prefixed cert_identity (how 0.x configurations wrote them) stops
// start-up with a message that names the field and the forms.
func TestCertIdentityWithoutKindRefused(t *testing.T) {
	t.Parallel()
	farm := newFarm(t)
	p := newPKI(t)
	cfg := clientsConfig(farm, fmt.Sprintf(`  - id: ops
    cert_identity: spiffe://corp/ops
    accounts: ["*"]
tls: {cert_file: %s, key_file: %s, client_ca_file: %s}
`, p.serverCert, p.serverKey, p.caFile))
	// Should it start, it stops at its "listening" line and the test fails.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := &cancelOn{word: `"listening"`, cancel: cancel}
	err := run(ctx, []string{"exogate", "-config", writeFile(t, "c.yaml", cfg)}, func(k string) string { return farmEnv()[k] }, nil, io.Discard, stderr)
	if err == nil || !strings.Contains(err.Error(), "clients[2].cert_identity") || !strings.Contains(err.Error(), "uri:spiffe://") {
		t.Errorf("started, or the error does not name the field and the forms: %v", err)
	}
}

// cancelOn is a log writer that calls cancel once a line holds word.
type cancelOn struct {
	word   string
	cancel context.CancelFunc
	buf    testutil.SyncBuffer
}

func (c *cancelOn) Write(p []byte) (int, error) {
	n, err := c.buf.Write(p)
	if strings.Contains(c.buf.String(), c.word) {
		c.cancel()
	}
	return n, err
}

// With clients configured, a caller without identity gets 401 (on loopback
// too, where auth.required defaults to false without clients), and so does
// one whose Basic credentials name no client: they are not taken for stale
// Exotel credentials any more. auth.allow_anonymous lets callers without
// identity through with exactly the anonymous block's rights.
func TestAnonymousCallersWithClients(t *testing.T) {
	t.Parallel()
	farm := newFarm(t)
	base := strings.Replace(clientsConfig(farm, ""), "auth: {required: true}\n", "", 1)
	if base == clientsConfig(farm, "") {
		t.Fatal("clientsConfig changed: no auth line to remove")
	}
	callflows := map[string]string{"Authorization": basicOf("callflows", callflowsSecret)}
	stale := map[string]string{"Authorization": basicOf(acmeKey, acmeToken)}
	type req struct {
		name, method, path string
		hdr                map[string]string
		status             int
	}
	for _, tc := range []struct {
		name string
		auth string // the auth block
		reqs []req
	}{
		{"clients, auth by default", "", []req{
			{"no credentials", "GET", "/v1/Accounts/acme/Calls.json", nil, 401},
			{"no credentials, v2", "POST", "/v2/accounts/acme/calls", nil, 401},
			{"unknown id (stale Exotel credentials)", "GET", "/v1/Accounts/acme/Calls.json", stale, 401},
			{"a client", "POST", "/v1/Accounts/acme/Calls/connect.json", callflows, 200},
		}},
		{"allow_anonymous without a block", "auth: {allow_anonymous: true}\n", []req{
			{"no credentials: no rights", "GET", "/v1/Accounts/acme/Calls.json", nil, 403},
			{"unknown id", "GET", "/v1/Accounts/acme/Calls.json", stale, 401},
			{"a client", "POST", "/v1/Accounts/acme/Calls/connect.json", callflows, 200},
		}},
		{"allow_anonymous with a block", "auth:\n  allow_anonymous: true\n  anonymous: {accounts: [acme], operations: [calls.read]}\n", []req{
			{"granted", "GET", "/v1/Accounts/acme/Calls.json", nil, 200},
			{"another operation", "POST", "/v1/Accounts/acme/Calls/connect.json", nil, 403},
			{"another account", "GET", "/v1/Accounts/acme1m/Calls.json", nil, 403},
			{"unknown id", "GET", "/v1/Accounts/acme/Calls.json", stale, 401},
			{"not Basic", "GET", "/v1/Accounts/acme/Calls.json", map[string]string{"Authorization": "Bearer abc"}, 401},
			{"wrong secret", "GET", "/v1/Accounts/acme/Calls.json", map[string]string{"Authorization": basicOf("callflows", billingSecret)}, 401},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := startBinary(t, writeFile(t, "exogate.yaml", tc.auth+base))
			for _, r := range tc.reqs {
				t.Run(r.name, func(t *testing.T) {
					farm.reset()
					resp, body := send(t, r.method, g.base+r.path, "To=1", r.hdr)
					kind := map[int]string{200: "", 401: "unauthenticated", 403: "forbidden"}[r.status]
					if resp.StatusCode != r.status || resp.Header.Get("X-Exogate-Error") != kind {
						t.Fatalf("%d %q: %s", resp.StatusCode, resp.Header.Get("X-Exogate-Error"), body)
					}
					got := farm.all()
					if r.status != 200 {
						if len(got) != 0 {
							t.Error("a refused request reached Exotel")
						}
						if !strings.Contains(body, "RestException") && !strings.Contains(body, `"http_code":`) {
							t.Errorf("not in Exotel's shape: %s", body)
						}
						return
					}
					if len(got) != 1 || got[0].Header.Get("Authorization") != basicOf(acmeKey, acmeToken) {
						t.Errorf("upstream did not get exactly the account's credentials: %+v", got)
					}
				})
			}
		})
	}
}

// operations: rights by what a request does, not only by bucket. A client
// allowed voice_v1 to place calls may not edit the CustomerWhitelist (also
// voice_v1); one allowed to send SMS may not bulk-send; a read-only client
// may not reach Calls/connect even with GET.
func TestOperationRights(t *testing.T) {
	t.Parallel()
	farm := newFarm(t)
	cfg := farm.config(fmt.Sprintf(`clients:
  - id: callflows
    secret_sha256: %s
    accounts: [acme]
    operations: [calls.connect, calls.read]
  - id: billing
    secret_sha256: %s
    accounts: [acme]
    operations: [sms.send]
  - id: ops
    secret_sha256: %s
    accounts: ["*"]
    operations: ["*.read"]
`, callers.HashSecret(callflowsSecret), callers.HashSecret(billingSecret), callers.HashSecret(opsSecret)))
	g := startBinary(t, writeFile(t, "exogate.yaml", cfg))
	callflows := map[string]string{"Authorization": basicOf("callflows", callflowsSecret), "Content-Type": "application/x-www-form-urlencoded"}
	billing := map[string]string{"Authorization": basicOf("billing", billingSecret), "Content-Type": "application/x-www-form-urlencoded"}
	ops := map[string]string{"Authorization": basicOf("ops", opsSecret)}
	for _, tc := range []struct {
		name, method, path string
		hdr                map[string]string
		status             int
	}{
		{"callflows places a call", "POST", "/v1/Accounts/acme/Calls/connect.json", callflows, 200},
		{"callflows places a v2 call", "POST", "/v2/accounts/acme/calls", callflows, 200},
		{"callflows reads a call", "GET", "/v1/Accounts/acme/Calls/c1.json", callflows, 200},
		{"callflows may not edit the whitelist", "POST", "/v1/Accounts/acme/CustomerWhitelist.json", callflows, 403},
		{"callflows may not look up numbers", "GET", "/v1/Accounts/acme/Numbers/0987654321.json", callflows, 403},
		{"callflows may not change a v3 call", "PATCH", "/v3/accounts/acme/calls/c1", callflows, 403},
		{"billing sends", "POST", "/v1/Accounts/acme/Sms/send.json", billing, 200},
		{"billing may not bulk-send", "POST", "/v1/Accounts/acme/Sms/bulksend.json", billing, 403},
		{"billing may not run campaigns", "POST", "/v2/accounts/acme/sms-campaigns", billing, 403},
		{"billing may not buy numbers", "POST", "/v2_beta/Accounts/acme/IncomingPhoneNumbers.json", billing, 403},
		{"ops reads", "GET", "/v1/Accounts/acme1m/Calls.json", ops, 200},
		{"ops may not place a call", "POST", "/v2/accounts/acme/calls", ops, 403},
		{"ops may not place a call with GET", "GET", "/v1/Accounts/acme/Calls/connect.json", ops, 405},
		{"ops may not change trunks", "POST", "/v2/accounts/acme/trunks/t1/whitelisted-ips", ops, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			farm.reset()
			resp, body := send(t, tc.method, g.base+tc.path, "To=1", tc.hdr)
			if resp.StatusCode != tc.status {
				t.Fatalf("%d %q: %s", resp.StatusCode, resp.Header.Get("X-Exogate-Error"), body)
			}
			if tc.status == 200 {
				if n := len(farm.all()); n != 1 {
					t.Errorf("%d requests reached Exotel", n)
				}
				return
			}
			kind := map[int]string{403: "forbidden", 405: "method_not_allowed"}[tc.status]
			if resp.Header.Get("X-Exogate-Error") != kind || len(farm.all()) != 0 {
				t.Errorf("kind %q, %d requests reached Exotel", resp.Header.Get("X-Exogate-Error"), len(farm.all()))
			}
			shape := exotel.ShapeOf(tc.path)
			code := strconv.Itoa(tc.status)
			want := map[exotel.Shape]string{exotel.ShapeJSON: `{"RestException":{"Status":` + code, exotel.ShapeV2: `"http_code":` + code, exotel.ShapeXML: "<Status>" + code + "</Status>"}[shape]
			if !strings.Contains(body, want) {
				t.Errorf("%d not in Exotel's %s shape: %s", tc.status, shape, body)
			}
		})
	}
}

// exogate check tests the accounts' credentials: callers' identities and
// rights do not apply to it, so it works on a gateway with clients.
func TestCheckCommandWithClients(t *testing.T) {
	t.Parallel()
	farm := newFarm(t)
	var out bytes.Buffer
	err := run(context.Background(), []string{"exogate", "check", "-config", writeFile(t, "exogate.yaml", clientsConfig(farm, ""))}, func(k string) string { return farmEnv()[k] }, nil, &out, allLogs)
	if err != nil || strings.Count(out.String(), ": 200 OK: credentials are valid") != 2 {
		t.Errorf("check on a gateway with clients: %v\n%s", err, out.String())
	}
	// It says who gets in.
	if !strings.Contains(out.String(), "2 clients") || !strings.Contains(out.String(), "a caller without identity gets 401") {
		t.Errorf("check does not say what callers without identity get:\n%s", out.String())
	}
	out.Reset()
	anon := strings.Replace(clientsConfig(farm, ""), "auth: {required: true}\n", "auth: {allow_anonymous: true, anonymous: {accounts: [acme], operations: ['*.read']}}\n", 1)
	err = run(context.Background(), []string{"exogate", "check", "-config", writeFile(t, "anon.yaml", anon)}, func(k string) string { return farmEnv()[k] }, nil, &out, allLogs)
	if err != nil || !strings.Contains(out.String(), "a caller without identity may use accounts acme, operations *.read, buckets all, methods all") {
		t.Errorf("check with anonymous callers: %v\n%s", err, out.String())
	}
}
