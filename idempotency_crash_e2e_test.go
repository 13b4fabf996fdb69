package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/exogate/exogate/internal/fakeexotel"
	"github.com/exogate/exogate/internal/redistest"
	"github.com/exogate/exogate/internal/testutil"
)

// A replica killed (SIGKILL) while its keyed call is at Exotel leaves the
// key reserved in Redis: a retry on another replica gets 409 while the
// lease holds, then upstream_outcome_unknown, and never a second call.
func TestIdempotencyReplicaKilledMidFlight(t *testing.T) {
	farm := newFarm(t)
	rds := redistest.Start(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // before the fakes close
	var placed atomic.Int64
	farm.fakes["singapore-api"].SetOverride(func(r fakeexotel.Request) (int, string, bool) {
		if r.Method != http.MethodPost {
			return 0, "", false
		}
		placed.Add(1)
		<-release
		return 200, `{"Call":{"Sid":"late"}}`, true
	})
	// The shortest lease the settings allow: the upstream timeout is short
	// and there is no wait in line.
	cfg := farm.config(fmt.Sprintf(`limits:
  max_wait: 0s
  redis: {address: %q, key_prefix: "idem-kill:", timeout: 2s}
idempotency: {backend: redis}
`, rds.Addr()))
	cfg = strings.Replace(cfg, "upstream:\n", "upstream:\n  timeout: 1s\n", 1)
	file := writeFile(t, "exogate.yaml", cfg)
	a, b := startBinary(t, file), startBinary(t, file)

	go func() {
		req, _ := http.NewRequest("POST", a.base+"/v1/Accounts/acme/Calls/connect.json", strings.NewReader("From=1&To=2"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Idempotency-Key", "killed")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	testutil.Eventually(t, 30*time.Second, "the call reaches Exotel", func() bool { return placed.Load() == 1 })
	_ = a.cmd.Process.Kill()
	_ = a.cmd.Wait()

	if code, _, body := keyedPost(t, b.base, "killed", "From=1&To=2"); code != http.StatusConflict {
		t.Fatalf("retry while the dead replica's lease holds: %d %s, want 409", code, body)
	}
	var code int
	var body string
	testutil.Eventually(t, 3*time.Minute, "the lease runs out", func() bool {
		code, _, body = keyedPost(t, b.base, "killed", "From=1&To=2")
		return code != http.StatusConflict
	})
	if code != http.StatusGatewayTimeout || !strings.Contains(body, "upstream_outcome_unknown") && !strings.Contains(body, "may have been carried out") {
		t.Errorf("retry after the lease: %d %s, want 504 upstream_outcome_unknown", code, body)
	}
	if placed.Load() != 1 {
		t.Errorf("Exotel received %d calls for one key, want 1", placed.Load())
	}
}
