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
	"strings"
	"testing"
	"time"

	"github.com/exogate/exogate/internal/callers"
	"github.com/exogate/exogate/internal/redistest"
	"github.com/exogate/exogate/internal/testutil"
)

const (
	billingSecret   = "billing-secret-0123456789abcdef"
	callflowsSecret = "callflows-secret-0123456789abcd"
	opsSecret       = "ops-secret-0123456789abcdefghij"
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
	farm := newFarm(t)
	open := strings.Replace(farm.config(""), "listen: 127.0.0.1:0", "listen: 0.0.0.0:0", 1)
	err := run(context.Background(), []string{"exogate", "-config", writeFile(t, "c.yaml", open)}, func(k string) string { return farmEnv()[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "auth.allow_unauthenticated") {
		t.Errorf("a non-loopback listener without client auth started: %q", err)
	}
	env := map[string]string{"EXOTEL_API_KEY": acmeKey, "EXOTEL_API_TOKEN": acmeToken, "EXOTEL_ACCOUNT_SID": "acme", "EXOGATE_LISTEN": "0.0.0.0:0"}
	err = run(context.Background(), []string{"exogate"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "EXOGATE_ALLOW_UNAUTHENTICATED") {
		t.Errorf("zero-setup on a non-loopback address started: %q", err)
	}
	required := strings.Replace(farm.config("auth: {required: true}\n"), "listen: 127.0.0.1:0", "listen: 127.0.0.1:0", 1)
	err = run(context.Background(), []string{"exogate", "-config", writeFile(t, "r.yaml", required)}, func(k string) string { return farmEnv()[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "no clients are configured") {
		t.Errorf("auth required without clients: %v", err)
	}
}

func TestHashSecretCommand(t *testing.T) {
	var out bytes.Buffer
	if err := hashSecret(strings.NewReader(billingSecret+"\n"), &out); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out.String()) != callers.HashSecret(billingSecret) || strings.Contains(out.String(), billingSecret) {
		t.Errorf("hash-secret printed %q", out.String())
	}
	if err := hashSecret(strings.NewReader("short\n"), io.Discard); err == nil {
		t.Error("a short secret was accepted")
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
	client := func(cn string, uri string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) tls.Certificate {
		c := tmpl(cn, false)
		if uri != "" {
			u, _ := url.Parse(uri)
			c.URIs = []*url.URL{u}
		}
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
	p.opsCert = client("ops", "spiffe://corp/ops", p.caCert, p.caKey)
	p.strangerCert = client("stranger", "spiffe://corp/stranger", p.caCert, p.caKey)
	otherCA, otherKey, _, _ := mk(tmpl("other CA", true), nil, nil)
	p.otherCAClient = client("ops", "spiffe://corp/ops", otherCA, otherKey)
	return p
}

func (p *pki) renewServer(t *testing.T) { p.renew(t) }

func TestMutualTLS(t *testing.T) {
	farm := newFarm(t)
	p := newPKI(t)
	cfg := clientsConfig(farm, fmt.Sprintf(`  - id: ops
    cert_identity: spiffe://corp/ops
    accounts: ["*"]
tls: {cert_file: %s, key_file: %s, client_ca_file: %s}
`, p.serverCert, p.serverKey, p.caFile))
	logs := &testutil.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"exogate", "-config", writeFile(t, "tls.yaml", cfg)}, func(k string) string { return farmEnv()[k] }, io.Discard, io.MultiWriter(logs, allLogs))
	}()
	gatewaysStarted.Add(1)
	defer func() {
		cancel()
		<-done
	}()
	var base string
	waitFor(t, func() bool {
		if m := addrRE.FindStringSubmatch(logs.String()); m != nil {
			base = "https://" + m[1]
		}
		return base != ""
	})
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
	farm := newFarm(t)
	redis := redistest.Start(t)
	cfg := strings.Replace(clientsConfig(farm, ""), "limits:\n  max_wait: 0s\n",
		fmt.Sprintf("limits:\n  max_wait: 0s\n  backend: redis\n  redis: {address: %q, key_prefix: \"caps:\"}\n", redis.Addr()), 1)
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
