package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
)

// An unreachable upstream is answered with the reason's kind (DNS, a
// refused connection, TLS), never the error's text: no host, address or
// certificate detail reaches the caller.
func TestUnreachableReason(t *testing.T) {
	dial := func(err error) error {
		return fmt.Errorf("proxy: %w", &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(10, 9, 8, 7), Port: 443}, Err: err})
	}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"dns", dial(&net.DNSError{Err: "no such host", Name: "api.exotel.com", IsNotFound: true}), "Upstream unreachable: its host name did not resolve (DNS)"},
		{"refused", dial(os.NewSyscallError("connect", syscall.ECONNREFUSED)), "Upstream unreachable: connection refused"},
		{"reset", dial(os.NewSyscallError("read", syscall.ECONNRESET)), "Upstream unreachable: connection reset"},
		{"network", dial(os.NewSyscallError("connect", syscall.ENETUNREACH)), "Upstream unreachable: no route to it"},
		{"tls verify", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, "Upstream unreachable: its TLS certificate was not trusted"},
		{"tls alert", fmt.Errorf("remote error: %w", tls.AlertError(40)), "Upstream unreachable: TLS handshake failed"},
		{"other", errors.New("something else at 10.9.8.7"), "Upstream unreachable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := toResponse(tc.err)
			if r.status != 502 || r.kind != KindUpstreamUnreachable || r.message != tc.want {
				t.Errorf("%d %s %q, want 502 %q", r.status, r.kind, r.message, tc.want)
			}
			if strings.Contains(r.message, "10.9.8.7") || strings.Contains(r.message, "api.exotel.com") {
				t.Errorf("the message names the upstream: %q", r.message)
			}
		})
	}
}
