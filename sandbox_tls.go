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
	"time"

	"github.com/exogate/exogate/internal/config"
	"github.com/exogate/exogate/internal/gateway"
	"github.com/exogate/exogate/internal/logx"
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
	srv *http.Server
}

// listenSandboxTLS binds addr with a certificate for Exotel's host names,
// issued by a certificate authority made now and never kept: only its
// certificate is written, to caOut, for clients to trust. The private
// keys stay in memory.
func listenSandboxTLS(ctx context.Context, addr, caOut string, cfg config.Config, log zerolog.Logger) (*sandboxTLS, error) {
	caPEM, leaf, err := sandboxCertificates(time.Now())
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	if caOut != "" {
		if err := os.WriteFile(caOut, caPEM, 0o644); err != nil {
			return nil, fmt.Errorf("sandbox: -tls-ca-out: %w", err)
		}
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sandbox: -tls-listen: %w", err)
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{leaf}}
	srv := &http.Server{
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		MaxHeaderBytes:    int(cfg.MaxHeaderBytes),
		ReadTimeout:       cfg.Server.ReadTimeout,
		ErrorLog:          logx.StdLogger(log, "http"),
	}
	return &sandboxTLS{ln: tls.NewListener(ln, tlsConf), srv: srv}, nil
}

// serve hands the listener's requests to gw, the same gateway as the
// main listener's.
func (s *sandboxTLS) serve(gw *gateway.Server, log zerolog.Logger) {
	s.srv.Handler = gw
	log.Info().Str("addr", s.ln.Addr().String()).Str("scheme", "https").Strs("hosts", exotelHosts).
		Msg("sandbox: listening for clients that call Exotel's hosts")
	go func() {
		if err := s.srv.Serve(s.ln); err != http.ErrServerClosed {
			log.Error().Err(err).Msg("sandbox: the https listener stopped")
		}
	}()
}

func (s *sandboxTLS) close() {
	_ = s.srv.Close()
	_ = s.ln.Close()
}

// sandboxCertificates makes a certificate authority and, signed by it, a
// server certificate for exotelHosts and 127.0.0.1, valid from a day
// before now for 30 days. It returns the authority's certificate as PEM.
func sandboxCertificates(now time.Time) ([]byte, tls.Certificate, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "exogate sandbox CA", Organization: []string{"exogate sandbox"}},
		NotBefore:             now.Add(-24 * time.Hour),
		NotAfter:              now.Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: exotelHosts[0], Organization: []string{"exogate sandbox"}},
		DNSNames:     exotelHosts,
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    caTmpl.NotBefore,
		NotAfter:     caTmpl.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	leaf := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), leaf, nil
}
