package webhooks

import (
	"strconv"
	"testing"
	"time"
)

func newTestStore(t *testing.T, now func() time.Time) queue { return newMemStore(now) }

func strconvI(n int64) string { return strconv.FormatInt(n, 10) }
