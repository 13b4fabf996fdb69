//go:build unix

package credentials

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// keepOwner gives the new file tmp the owner and group of the file info
// describes, when they differ: run as root, rotate would otherwise leave
// the gateway's user a file it may not read. A user who cannot give it
// them is refused before anything is renamed.
func keepOwner(tmp *os.File, info fs.FileInfo) error {
	want, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	have, err := tmp.Stat()
	if err != nil {
		return fmt.Errorf("cannot read the new file's owner: %s", errorKind(err))
	}
	if st, ok := have.Sys().(*syscall.Stat_t); ok && st.Uid == want.Uid && st.Gid == want.Gid {
		return nil
	}
	if err := tmp.Chown(int(want.Uid), int(want.Gid)); err != nil {
		return fmt.Errorf("cannot give the new file the old one's owner %d:%d (run exogate rotate as that user or as root): %s", want.Uid, want.Gid, errorKind(err))
	}
	return nil
}
