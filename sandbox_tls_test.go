package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// -tls-ca-out names where -tls-listen's authority goes: alone it is a
// mistake.
func TestSandboxTLSCAOutNeedsTLSListen(t *testing.T) {
	if _, err := parseSandboxFlags([]string{"-tls-ca-out", "ca.pem"}, io.Discard); err == nil || !strings.Contains(err.Error(), "-tls-listen") {
		t.Errorf("-tls-ca-out alone: %v", err)
	}
	f, err := parseSandboxFlags([]string{"-tls-listen", "127.0.0.1:443", "-tls-ca-out", "ca.pem"}, io.Discard)
	if err != nil || f.tlsListen != "127.0.0.1:443" || f.tlsCAOut != "ca.pem" {
		t.Errorf("%+v %v", f, err)
	}
}

// The server certificate verifies, under the written authority, for each
// of Exotel's host names and for no other name.
func TestSandboxCertificatesCoverExotelsHosts(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ca, err := newSandboxCA(now, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	caPEM, leaf := ca.caPEM, ca.leaf
	block, rest := pem.Decode(caPEM)
	if block == nil || block.Type != "CERTIFICATE" || len(rest) != 0 {
		t.Fatalf("the authority's PEM: %q", caPEM)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	cert, err := x509.ParseCertificate(leaf.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"api.exotel.com", "api.in.exotel.com", "ccm-api.exotel.com",
		"ccm-api.in.exotel.com", "twilix.exotel.com", "twilix.exotel.in", "127.0.0.1"} {
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, CurrentTime: now}); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: "exotel.com", Roots: roots, CurrentTime: now}); err == nil {
		t.Error("the certificate is valid for exotel.com")
	}
}

// The run's files: the authority's certificate, and the server's
// certificate and key for the webhook ingress, each readable by the owner
// only; the server certificate also covers the ingress's host. No file
// holds the authority's key.
func TestSandboxCAFiles(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	dir := t.TempDir()
	ca, err := newSandboxCA(now, dir, "10.1.2.3", "hooks.test", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{ca.caFile, ca.certFile, ca.keyFile} {
		st, err := os.Stat(f)
		if err != nil || st.Mode().Perm() != 0o600 || filepath.Dir(f) != dir {
			t.Errorf("%s: %v %v", f, st, err)
		}
	}
	pair, err := tls.LoadX509KeyPair(ca.certFile, ca.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.caPEM)
	cert, _ := x509.ParseCertificate(pair.Certificate[0])
	for _, host := range []string{"10.1.2.3", "hooks.test", "127.0.0.1", "::1"} {
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, CurrentTime: now}); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
	// The key on disk (left behind if the process is killed) cannot stand
	// in for Exotel: the ingress's certificate names none of its hosts.
	for _, host := range exotelHosts {
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, CurrentTime: now}); err == nil && host != "localhost" {
			t.Errorf("the ingress's certificate on disk is valid for %s", host)
		}
	}
	if cert.IsCA {
		t.Error("the ingress's certificate is an authority")
	}
	// The simulator's callbacks trust the run's authority.
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: "127.0.0.1", Roots: ca.roots(), CurrentTime: now}); err != nil {
		t.Errorf("roots: %v", err)
	}
}

// -tls-listen serves the gateway as its API listener does: "OPTIONS *" is
// answered alike on both (net/http's bare 200 is off), as in production.
func TestSandboxTLSListenerServesLikeTheAPIListener(t *testing.T) {
	t.Parallel()
	tlsAddr := freeAddr(t)
	p := startSandbox(t, "-tls-listen", tlsAddr)
	waitFor(t, func() bool {
		return strings.Contains(p.logs.String(), "listening for clients that call Exotel's hosts")
	})
	optionsStar := func(conn net.Conn) string {
		defer conn.Close()
		_, _ = io.WriteString(conn, "OPTIONS * HTTP/1.1\r\nHost: api.exotel.com\r\nConnection: close\r\n\r\n")
		line, _ := bufio.NewReader(conn).ReadString('\n')
		return strings.TrimSpace(line)
	}
	plain, err := net.Dial("tcp", strings.TrimPrefix(p.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	want := optionsStar(plain)
	secure, err := tls.Dial("tcp", tlsAddr, &tls.Config{ServerName: "api.exotel.com", InsecureSkipVerify: true}) //nolint:gosec // the status line is compared, not the peer
	if err != nil {
		t.Fatal(err)
	}
	if got := optionsStar(secure); got != want || strings.Contains(got, " 200 ") {
		t.Errorf("OPTIONS *: %q on -tls-listen, %q on the API listener", got, want)
	}
}

// A request in flight on -tls-listen when the sandbox is told to stop is
// answered, as one on the API listener is: the shutdown drains both.
func TestSandboxTLSListenerDrainsAtShutdown(t *testing.T) {
	t.Parallel()
	tlsAddr, caOut := freeAddr(t), filepath.Join(t.TempDir(), "ca.pem")
	p := startSandbox(t, "-tls-listen", tlsAddr, "-tls-ca-out", caOut)
	waitFor(t, func() bool {
		return strings.Contains(p.logs.String(), "listening for clients that call Exotel's hosts")
	})
	if resp, body := send(t, "POST", p.admin+"/sandbox/faults", `{"latency":"3s","count":1}`, nil); resp.StatusCode != 201 {
		t.Fatalf("fault: %d %s", resp.StatusCode, body)
	}
	caPEM, err := os.ReadFile(caOut)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "api.exotel.com"}}}
	done := make(chan string, 1)
	go func() {
		resp, err := client.Get("https://" + tlsAddr + "/v1/Accounts/acme/Calls.json")
		if err != nil {
			done <- err.Error()
			return
		}
		resp.Body.Close()
		done <- resp.Status
	}()
	waitFor(t, func() bool {
		_, reqs := send(t, "GET", p.admin+"/sandbox/requests", "", nil)
		return strings.Contains(reqs, "/v1/Accounts/acme/Calls.json")
	})
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-done:
		if !strings.HasPrefix(got, "200") {
			t.Errorf("the request in flight at shutdown on -tls-listen got %q, want 200", got)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the request in flight at shutdown got no answer")
	}
}
