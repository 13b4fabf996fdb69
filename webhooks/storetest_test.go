package webhooks

import (
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// newTestStore opens a store in a temporary directory, closed when the
// test ends.
func newTestStore(t *testing.T, now func() time.Time) queue {
	t.Helper()
	s, err := OpenStore(filepath.Join(t.TempDir(), "webhooks.db"), StoreOptions{Clock: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func strconvI(n int64) string { return strconv.FormatInt(n, 10) }
