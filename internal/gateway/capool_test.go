package gateway

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// caPool reads the file's certificates, on top of the system roots only
// when asked, and names the file when it holds none.
func TestCAPool(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	srv.Close()
	ca := srv.Certificate()
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	alone, err := caPool(caFile, false)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(alone.Subjects()); n != 1 { //nolint:staticcheck // a count of a file's pool, not the system's
		t.Errorf("client CA pool holds %d certificates, want only the file's 1", n)
	}
	withSystem, err := caPool(caFile, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Verify(x509.VerifyOptions{Roots: withSystem}); err != nil {
		t.Errorf("the file's CA is not in the pool with the system roots: %v", err)
	}
	if _, err := caPool(empty, true); err == nil || !strings.HasSuffix(err.Error(), "empty.pem holds no PEM certificate") {
		t.Errorf("a file without a certificate: %v", err)
	}
	if _, err := caPool(t.TempDir()+"/missing.pem", false); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing file: %v", err)
	}
}
