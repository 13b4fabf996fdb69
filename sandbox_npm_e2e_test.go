package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// npmToken is the token the Node clients are given: with no clients
// configured the gateway takes a caller's credentials for stale Exotel
// ones and never forwards them.
const npmToken = "a_token_the_gateway_ignores"

// npmClients copies integration/npm into a temporary directory and
// installs its pinned packages there with npm ci.
func npmClients(t *testing.T) string {
	t.Helper()
	for _, bin := range []string{"node", "npm"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is needed for Exotel's npm clients (scripts/test.sh installs it): %v", bin, err)
		}
	}
	dir := t.TempDir()
	for _, name := range []string{"package.json", "package-lock.json", "hosts.js", "clients.js"} {
		b, err := os.ReadFile(filepath.Join("integration", "npm", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci: %v\n%s", err, out)
	}
	return dir
}

// The sandbox's HTTPS listener holds a certificate for each of Exotel's
// host names, issued by the authority whose certificate -tls-ca-out
// wrote, and that file holds no private key.
func checkSandboxCertificate(t *testing.T, tlsAddr, caFile string) {
	t.Helper()
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(caPEM, []byte("BEGIN CERTIFICATE")) || bytes.Contains(caPEM, []byte("PRIVATE KEY")) {
		t.Fatalf("-tls-ca-out wrote:\n%s", caPEM)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("-tls-ca-out: no certificate")
	}
	for _, host := range exotelHosts {
		conn, err := tls.Dial("tcp", tlsAddr, &tls.Config{ServerName: host, RootCAs: roots, MinVersion: tls.VersionTLS12})
		if err != nil {
			t.Errorf("TLS to %s as %s: %v", tlsAddr, host, err)
			continue
		}
		conn.Close()
	}
}

// Exotel's client libraries published on npm, unchanged: exotel-node and
// exotel hard-code https://SID:TOKEN@twilix.exotel.in, so they reach the
// sandbox's HTTPS listener through hosts.js, which resolves Exotel's host
// names to 127.0.0.1 like a hosts-file line, and trust its certificate
// through NODE_EXTRA_CA_CERTS. They place a call and read it back, send
// SMS and read one back, and parse Exotel's 400; the simulated Exotel saw
// each request, with the gateway's credentials and never the clients'.
func TestSandboxServesExotelsNpmClients(t *testing.T) {
	t.Parallel()
	dir := npmClients(t)
	tlsAddr, caFile := freeAddr(t), filepath.Join(t.TempDir(), "ca.pem")
	p := startSandbox(t, "-tls-listen", tlsAddr, "-tls-ca-out", caFile)
	checkSandboxCertificate(t, tlsAddr, caFile)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, port, _ := strings.Cut(tlsAddr, ":")
	cmd := exec.CommandContext(ctx, "node", "-r", "./hosts.js", "clients.js", "acme")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "NODE_EXTRA_CA_CERTS=" + caFile, "EXOGATE_TLS_PORT=" + port}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the npm clients: %v\n%s", err, stderr.String())
	}
	var got map[string]json.RawMessage
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("the npm clients printed %q: %v", out, err)
	}
	res := func(name string) map[string]string {
		var m map[string]string
		if err := json.Unmarshal(got[name], &m); err != nil || m["Sid"] == "" {
			t.Errorf("%s answered %s", name, got[name])
		}
		return m
	}
	call, details := res("exotel-node.connectCall"), res("exotel-node.getCallDetails")
	if call["Status"] != "in-progress" || call["To"] != "08012345670" || details["Sid"] != call["Sid"] {
		t.Errorf("exotel-node: placed %v, then read %v", call, details)
	}
	if sms := res("exotel-node.sendSMS"); sms["Body"] != "hello from exotel-node" || sms["From"] != "08039591000" {
		t.Errorf("exotel-node.sendSMS: %v", sms)
	}
	sent, checked := res("exotel.sendSMS"), res("exotel.checkSMS")
	if sent["To"] != "08012345671" || checked["Sid"] != sent["Sid"] {
		t.Errorf("exotel: sent %v, then read %v", sent, checked)
	}
	if rej := string(got["exotel.sendSMS.rejected"]); !strings.Contains(rej, "400") || !strings.Contains(rej, "To") {
		t.Errorf("exotel.sendSMS without To: %s", rej)
	}
	checkNpmRequests(t, p, call["Sid"], sent["Sid"])
}

// checkNpmRequests asserts the simulated Exotel received each request the
// clients sent, and none of the clients' credentials.
func checkNpmRequests(t *testing.T, p *sandboxProc, callSid, smsSid string) {
	t.Helper()
	_, body := send(t, "GET", p.admin+"/sandbox/requests", "", nil)
	var reqs []struct {
		Method     string              `json:"method"`
		RequestURI string              `json:"request_uri"`
		Header     map[string][]string `json:"header"`
	}
	if err := json.Unmarshal([]byte(body), &reqs); err != nil {
		t.Fatalf("/sandbox/requests: %v: %.300s", err, body)
	}
	seen := map[string]int{}
	for _, r := range reqs {
		seen[r.Method+" "+r.RequestURI]++
		if auth := strings.Join(r.Header["Authorization"], ""); auth != "Basic ***" {
			t.Errorf("%s %s reached Exotel with Authorization %q", r.Method, r.RequestURI, auth)
		}
	}
	for want, n := range map[string]int{
		"POST /v1/Accounts/acme/Calls/connect":         1,
		"GET /v1/Accounts/acme/Calls/" + callSid:       1,
		"POST /v1/Accounts/acme/Sms/send":              3,
		"GET /v1/Accounts/acme/Sms/Messages/" + smsSid: 1,
	} {
		if seen[want] != n {
			t.Errorf("the simulated Exotel saw %q %d times, want %d; it saw %v", want, seen[want], n, seen)
		}
	}
	if strings.Contains(body, npmToken) {
		t.Errorf("the clients' token reached the simulated Exotel: %.300s", body)
	}
}
