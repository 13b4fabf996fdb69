//go:build unix

package credentials

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The new files keep the old ones' owner and group: an operator rotating
// as root must not leave the gateway's user a file it cannot read.
func TestPublishFilesKeepsTheOwner(t *testing.T) {
	dir, p, base := readFiles(t)
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		// Only root can give a file away: then the old pair belongs to
		// another user, as the gateway's files do.
		uid, gid = 12345, 23456
		for _, name := range []string{"api_key", "api_token"} {
			if err := os.Chown(filepath.Join(dir, name), uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := p.Publish(context.Background(), base, "newkey-4567", "new-token-4567"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"api_key", "api_token"} {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st := info.Sys().(*syscall.Stat_t); int(st.Uid) != uid || int(st.Gid) != gid {
			t.Errorf("%s owned by %d:%d, want %d:%d kept", name, st.Uid, st.Gid, uid, gid)
		}
	}
}
