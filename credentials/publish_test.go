package credentials

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readFiles writes an old pair to a new directory and returns it, its
// Publisher, and the Publisher's read of it.
func readFiles(t *testing.T) (string, *Publisher, Snapshot) {
	t.Helper()
	dir := t.TempDir()
	writePair(t, dir, "oldkey-0123", "old-token-0123", time.Now())
	p := filePublisher(t, dir)
	base, err := p.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return dir, p, base
}

func filePublisher(t *testing.T, dir string) *Publisher {
	t.Helper()
	p, err := NewPublisher(PublishConfig{Spec: Spec{Account: "acme", Source: "file",
		APIKeyFile: filepath.Join(dir, "api_key"), APITokenFile: filepath.Join(dir, "api_token")}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Publishing to files replaces both, keeping their permissions, leaves no
// temporary file, and the gateway's store reads the version Publish names.
func TestPublishFiles(t *testing.T) {
	dir := t.TempDir()
	writePair(t, dir, "oldkey-0123", "old-token-0123", time.Now())
	if err := os.Chmod(filepath.Join(dir, "api_token"), 0o640); err != nil {
		t.Fatal(err)
	}
	p := filePublisher(t, dir)
	base, err := p.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if base.KeyPrefix != "oldk" || base.Version != "file-"+Fingerprint("oldkey-0123", "old-token-0123") {
		t.Fatalf("read %s", base)
	}
	kv := Snapshot{Version: "v3", KeyPrefix: "oldk", data: map[string]any{"api_key": "oldkey-0123", "api_token": "old-token-0123"}}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		if out := fmt.Sprintf(verb, kv); strings.Contains(out, "old-token") || strings.Contains(out, "oldkey-0123") {
			t.Errorf("%s prints a secret: %s", verb, out)
		}
	}
	v, err := p.Publish(context.Background(), base, "newkey-4567", "new-token-4567")
	if err != nil {
		t.Fatal(err)
	}
	s := fileStore(t, dir)
	c, err := s.Refresh(context.Background(), "acme")
	if err != nil || c.Version() != v {
		t.Fatalf("store read %v (%v), want the published %s", c, err, v)
	}
	if info, _ := os.Stat(filepath.Join(dir, "api_token")); info.Mode().Perm() != 0o640 {
		t.Errorf("token file mode %v, want 0640 kept", info.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("files left in the directory: %v", entries)
	}
}

// A pair changed since the read is not overwritten.
func TestPublishFilesConflict(t *testing.T) {
	dir, p, base := readFiles(t)
	writePair(t, dir, "otherkey-89", "other-token-89", time.Now())
	if _, err := p.Publish(context.Background(), base, "newkey-4567", "new-token-4567"); !errors.Is(err, ErrConflict) {
		t.Fatalf("Publish over a changed pair: %v", err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "api_token"))
	if strings.TrimSpace(string(b)) != "other-token-89" {
		t.Errorf("the other writer's token was replaced")
	}
}

// A write that fails leaves the old pair in place, whole, and no temporary
// file holding the new token.
func TestPublishFilesFailureLeavesTheOldPair(t *testing.T) {
	dir, p, base := readFiles(t)
	// The key's rename fails, after the token's succeeded.
	defer func(r func(string, string) error) { rename = r }(rename)
	rename = func(from, to string) error {
		if filepath.Base(to) == "api_key" {
			return &os.LinkError{Op: "rename", Old: from, New: to, Err: os.ErrPermission}
		}
		return os.Rename(from, to)
	}
	_, err := p.Publish(context.Background(), base, "newkey-4567", "new-token-4567")
	if err == nil || strings.Contains(err.Error(), "new-token-4567") {
		t.Fatalf("Publish with a failing rename: %v", err)
	}
	now, err := p.Read(context.Background())
	if err != nil || now.Version != base.Version {
		t.Errorf("after the failure the files hold %s (%v), want the old pair %s", now.Version, err, base.Version)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("files left in the directory: %v", entries)
	}
}

func TestPublisherRefusesEnvAndRollbackWithoutVersions(t *testing.T) {
	_, err := NewPublisher(PublishConfig{Spec: Spec{Account: "acme", Source: "env", APIKeyEnv: "K", APITokenEnv: "T"}})
	if err == nil || !strings.Contains(err.Error(), "environment variables (K, T)") {
		t.Errorf("env: %v", err)
	}
	dir := t.TempDir()
	writePair(t, dir, "oldkey-0123", "old-token-0123", time.Now())
	p := filePublisher(t, dir)
	if _, _, _, err := p.Previous(context.Background(), Snapshot{}); err == nil || !strings.Contains(err.Error(), "keeps no previous versions") {
		t.Errorf("rollback on files: %v", err)
	}
	if _, err := p.Publish(context.Background(), Snapshot{}, "key:colon", "token"); err == nil {
		t.Error("a key with a colon was published")
	}
}
