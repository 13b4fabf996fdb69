package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/exogate/exogate/internal/gateway"
	"github.com/rs/zerolog"
)

// exotelHosts are the names Exotel's clients connect to; the sandbox's
// HTTPS listener holds a certificate for each, so a client that
// hard-codes one reaches the sandbox through a hosts-file entry.
var exotelHosts = []string{
	"api.exotel.com", "api.in.exotel.com",
	"ccm-api.exotel.com", "ccm-api.in.exotel.com",
	"twilix.exotel.com", "twilix.exotel.in",
	"localhost",
}

// sandboxTLS is the sandbox's HTTPS listener, bound but not yet serving.
type sandboxTLS struct {
	ln  net.Listener
	srv *http.Server // set by serve
}

// listenSandboxTLS binds addr with the run's certificate for Exotel's host
// names; the authority's certificate (never its key) is written to caOut,
// for clients to trust.
func listenSandboxTLS(ctx context.Context, addr, caOut string, ca *sandboxCA) (*sandboxTLS, error) {
	if caOut != "" {
		if err := os.WriteFile(caOut, ca.caPEM, 0o644); err != nil {
			return nil, fmt.Errorf("sandbox: -tls-ca-out: %w", err)
		}
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sandbox: -tls-listen: %w", err)
	}
	return &sandboxTLS{ln: tls.NewListener(ln, ca.serverTLS())}, nil
}

// serve hands the listener's requests to gw, the same gateway as the
// main listener's, served with its API listener's settings.
func (s *sandboxTLS) serve(gw *gateway.Server, log zerolog.Logger) {
	s.srv = gw.NewHTTPServer(log)
	log.Info().Str("addr", s.ln.Addr().String()).Str("scheme", "https").Strs("hosts", exotelHosts).
		Msg("sandbox: listening for clients that call Exotel's hosts")
	go func() {
		if err := s.srv.Serve(s.ln); err != http.ErrServerClosed {
			log.Error().Err(err).Msg("sandbox: the https listener stopped")
		}
	}()
}

func (s *sandboxTLS) close() {
	if s.srv != nil {
		_ = s.srv.Close()
	}
	_ = s.ln.Close()
}

// sandboxCA is the run's certificate authority, made at start; its key is
// never written. It issues two server certificates: one for Exotel's host
// names and loopback, kept in memory, for the simulator and -tls-listen;
// and one for loopback and the webhook ingress's host only, whose key is
// written (mode 0600, in the run's directory, removed with it) for the
// ingress's tls, so that a key left behind by a killed process cannot
// stand in for Exotel. The directory also holds the authority's
// certificate, the gateway's upstream.ca_file.
type sandboxCA struct {
	caPEM                     []byte
	leaf                      tls.Certificate
	caFile, certFile, keyFile string
}

func newSandboxCA(now time.Time, dir string, hooksHosts ...string) (*sandboxCA, error) {
	auth, err := newRunAuthority(now)
	if err != nil {
		return nil, err
	}
	leaf, err := auth.issue(2, exotelHosts)
	if err != nil {
		return nil, err
	}
	ingress, err := auth.issue(3, append([]string{"localhost"}, hooksHosts...))
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(ingress.PrivateKey)
	if err != nil {
		return nil, err
	}
	c := &sandboxCA{caPEM: auth.pem, leaf: leaf, caFile: filepath.Join(dir, "exotel-ca.pem"),
		certFile: filepath.Join(dir, "hooks-cert.pem"), keyFile: filepath.Join(dir, "hooks-key.pem")}
	for file, data := range map[string][]byte{
		c.caFile:   auth.pem,
		c.certFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ingress.Certificate[0]}),
		c.keyFile:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	} {
		if err := os.WriteFile(file, data, 0o600); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// serverTLS is the TLS configuration of a listener that answers for
// Exotel's host names: the simulator's and -tls-listen's.
func (c *sandboxCA) serverTLS() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{c.leaf}}
}

// roots are the system's certificate authorities and the run's: the
// simulator's callbacks reach the webhook ingress, and any https service.
func (c *sandboxCA) roots() *x509.CertPool {
	pool, _ := x509.SystemCertPool()
	if pool == nil {
		pool = x509.NewCertPool()
	}
	pool.AppendCertsFromPEM(c.caPEM)
	return pool
}

// runAuthority is a certificate authority that lives in memory for one run.
type runAuthority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

// newRunAuthority makes an authority valid from a day before now for 30
// days, that signs server certificates only.
func newRunAuthority(now time.Time) (*runAuthority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "exogate sandbox CA", Organization: []string{"exogate sandbox"}},
		NotBefore:             now.Add(-24 * time.Hour),
		NotAfter:              now.Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &runAuthority{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// issue signs a server certificate for hosts (names or addresses; empty
// ones skipped), 127.0.0.1 and ::1, as long as the authority is valid.
func (a *runAuthority) issue(serial int64, hosts []string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	var names []string
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	for _, h := range hosts {
		switch ip := net.ParseIP(h); {
		case ip != nil:
			ips = append(ips, ip)
		case h != "" && !slices.Contains(names, h):
			names = append(names, h)
		}
	}
	cn := "127.0.0.1"
	if len(names) > 0 {
		cn = names[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"exogate sandbox"}},
		DNSNames:     names,
		IPAddresses:  ips,
		NotBefore:    a.cert.NotBefore,
		NotAfter:     a.cert.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
