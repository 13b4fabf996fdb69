package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/exogate/exogate/internal/fakeexotel"
	"github.com/exogate/exogate/internal/redistest"
)

// keyedPost sends a Calls/connect with an Idempotency-Key to base and
// returns the status, whether it was a replay, and the body.
func keyedPost(t *testing.T, base, key, body string) (int, bool, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/Accounts/acme/Calls/connect.json", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Idempotent-Replayed") == "true", string(b)
}

// Two replicas on one real Redis: the same keyed call sent to both at
// once is placed once; a replica restarted on the same Redis still
// replays it.
func TestIdempotencyAcrossReplicasOnRedis(t *testing.T) {
	farm := newFarm(t)
	rds := redistest.Start(t)
	var placed atomic.Int64
	farm.fakes["singapore-api"].SetOverride(func(r fakeexotel.Request) (int, string, bool) {
		if r.Method != http.MethodPost {
			return 0, "", false
		}
		return 200, fmt.Sprintf(`{"Call":{"Sid":"placed-%d"}}`, placed.Add(1)), true
	})
	cfg := writeFile(t, "exogate.yaml", farm.config(fmt.Sprintf(`limits:
  redis: {address: %q, key_prefix: "idem-e2e:", timeout: 2s}
idempotency: {backend: redis, require_for: [calls_connect]}
`, rds.Addr())))
	a, b := startBinary(t, cfg), startBinary(t, cfg)

	for round := range 3 {
		key := fmt.Sprintf("order-%d", round)
		before := placed.Load()
		var wg sync.WaitGroup
		codes := make([]int, 4)
		bodies := make([]string, 4)
		for i := range codes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				base := []*process{a, b}[i%2].base
				codes[i], _, bodies[i] = keyedPost(t, base, key, "From=1&To=2")
			}()
		}
		wg.Wait()
		if n := placed.Load() - before; n != 1 {
			t.Fatalf("round %d: Exotel placed %d calls for one key sent to two replicas, want 1 (%v)", round, n, codes)
		}
		for i, c := range codes {
			if c != 200 && c != 409 {
				t.Errorf("round %d, caller %d: %d %s", round, i, c, bodies[i])
			}
		}
		// Afterwards both replicas answer with the one call placed.
		_, _, first := keyedPost(t, a.base, key, "From=1&To=2")
		code, replayed, second := keyedPost(t, b.base, key, "From=1&To=2")
		if code != 200 || !replayed || first != second || !strings.Contains(first, fmt.Sprintf("placed-%d", before+1)) {
			t.Errorf("round %d: replays %q and %d %v %q", round, first, code, replayed, second)
		}
	}
	if code, _, body := keyedPost(t, a.base, "order-0", "From=1&To=3"); code != 422 {
		t.Errorf("another body under a used key: %d %s", code, body)
	}

	// Restart replica a on the same Redis: the key is still there.
	_ = a.cmd.Process.Signal(os.Interrupt)
	_ = a.cmd.Wait()
	c := startBinary(t, cfg)
	before := placed.Load()
	code, replayed, body := keyedPost(t, c.base, "order-1", "From=1&To=2")
	if code != 200 || !replayed || placed.Load() != before {
		t.Errorf("after a restart: %d replayed=%v %s, %d calls placed", code, replayed, body, placed.Load()-before)
	}
	// require_for: a call without a key is refused by every replica.
	req, _ := http.NewRequest("POST", c.base+"/v1/Accounts/acme/Calls/connect.json", strings.NewReader("From=1"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 || resp.Header.Get("X-Exogate-Error") != "idempotency_key_required" {
		t.Errorf("no key: %d %s", resp.StatusCode, resp.Header.Get("X-Exogate-Error"))
	}
	if n := value(scrape(t, c.adminURL(t)), "exogate_idempotency_events_total", map[string]string{"event": "replayed"}); n != 1 {
		t.Errorf("exogate_idempotency_events_total{event=replayed} = %v, want 1", n)
	}
	for _, p := range []*process{a, b, c} {
		if strings.Contains(p.logs.String(), "order-") {
			t.Error("an idempotency key is in the logs")
		}
	}
}
