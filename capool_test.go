package main

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"strings"
	"testing"
)

// caPool reads the file's certificates, on top of the system roots only
// when asked, and names the file when it holds none.
func TestCAPool(t *testing.T) {
	p := newPKI(t)
	block, _ := pem.Decode(p.caPEM)
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	alone, err := caPool(p.caFile, false)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(alone.Subjects()); n != 1 { //nolint:staticcheck // a count of a file's pool, not the system's
		t.Errorf("client CA pool holds %d certificates, want only the file's 1", n)
	}
	withSystem, err := caPool(p.caFile, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Verify(x509.VerifyOptions{Roots: withSystem}); err != nil {
		t.Errorf("the file's CA is not in the pool with the system roots: %v", err)
	}
	if _, err := caPool(writeFile(t, "empty.pem", "not a certificate\n"), true); err == nil || !strings.HasSuffix(err.Error(), "empty.pem holds no PEM certificate") {
		t.Errorf("a file without a certificate: %v", err)
	}
	if _, err := caPool(t.TempDir()+"/missing.pem", false); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing file: %v", err)
	}
}
