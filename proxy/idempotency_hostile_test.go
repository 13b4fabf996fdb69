package proxy

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/exogate/exogate/internal/exotel"
	"github.com/exogate/exogate/internal/fakeexotel"
	"github.com/exogate/exogate/internal/idempotency"
	"github.com/exogate/exogate/internal/testutil"
)

// A caller that asks for a compressed answer gets Exotel's gzip bytes
// passed through; a retry under the same key, from a caller that does not
// ask for one, must still get an answer it can read.
func TestIdempotencyReplayOfCompressedAnswer(t *testing.T) {
	var calls atomic.Int64
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		body := fmt.Sprintf(`{"Call":{"Sid":"call-%d"}}`, calls.Add(1))
		w.Header().Set("Content-Type", "application/json")
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			_, _ = io.WriteString(zw, body)
			_ = zw.Close()
			return
		}
		_, _ = io.WriteString(w, body)
	}))
	defer up.Close()
	keys := func(c *Config) {
		c.Idempotency = &Idempotency{Keys: idempotency.New(idempotency.NewMemory(0, nil), idempotency.Options{})}
	}
	withUpstreamConfig(t, up, nil, keys, func(t *testing.T, r *rig) {
		// The caller's own transport decompresses what it asked for.
		first, b1 := r.post(connectPath, "zipped", "From=1&To=2", "Accept-Encoding", "gzip")
		if first.StatusCode != 200 {
			t.Fatalf("first: %d %q", first.StatusCode, b1)
		}
		if first.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(strings.NewReader(string(b1)))
			if err != nil {
				t.Fatal(err)
			}
			b1, _ = io.ReadAll(zr)
		}
		second, b2 := r.post(connectPath, "zipped", "From=1&To=2", "Accept-Encoding", "identity")
		if calls.Load() != 1 {
			t.Fatalf("Exotel placed %d calls, want 1", calls.Load())
		}
		if second.Header.Get("Idempotent-Replayed") != "true" || second.Header.Get("Content-Encoding") != "" || string(b2) != string(b1) {
			t.Fatalf("replay: %d Content-Encoding %q body %q, want the first answer %q in clear",
				second.StatusCode, second.Header.Get("Content-Encoding"), b2, b1)
		}
	})
}

// The gateway reads these paths as one operation on one account, and
// forwards each as it came: a key retried under another spelling of the
// path must not place the call again.
func TestIdempotencyKeyAcrossPathSpellings(t *testing.T) {
	r, calls := keyedRig(t, nil)
	first, b1 := r.post(connectPath, "spelled", "From=1&To=2")
	if first.StatusCode != 200 {
		t.Fatalf("first: %d %q", first.StatusCode, b1)
	}
	for _, p := range []string{
		"/v1/Accounts/ACME/Calls/connect.json",
		"/v1/accounts/acme/calls/Connect.json",
		"/v1/Accounts/acme//Calls/connect.json",
		"/v1/Accounts/acme/Calls/%63onnect.json",
		"/V1/Accounts/acme/Calls/connect.JSON",
		"/v1/Accounts/acme/Calls/connect.json/",
	} {
		resp, b := r.post(p, "spelled", "From=1&To=2")
		if resp.Header.Get("Idempotent-Replayed") != "true" || string(b) != string(b1) {
			t.Errorf("%s: %d replayed %q %q, want the first answer", p, resp.StatusCode, resp.Header.Get("Idempotent-Replayed"), b)
		}
	}
	// Without the suffix the answer is XML: the key is another request's.
	resp, b := r.post("/v1/Accounts/ACME/Calls/Connect", "spelled", "From=1&To=2")
	assertShape(t, resp, b, exotel.ShapeXML, 422, KindIdempotencyKeyReused)
	if calls.Load() != 1 {
		t.Errorf("Exotel placed %d calls under one key, want 1", calls.Load())
	}
}

// Exotel's 429 means it did nothing, but the replay that follows it
// reached Exotel whole before the caller hung up: Exotel may have placed
// the call, so the key must not be freed for a retry to place it again.
func TestIdempotencyReplayAfter429LostWhenCallerLeaves(t *testing.T) {
	r, _ := keyedRig(t, func(c *Config) { c.RetryWait = time.Minute })
	release := make(chan struct{})
	defer close(release)
	var n atomic.Int64
	r.fakes["singapore-api"].SetOverride(func(req fakeexotel.Request) (int, string, bool) {
		switch n.Add(1) {
		case 1:
			return 429, `{"RestException":{"Status":429}}`, true
		case 2:
			<-release // the replay: held until the caller has gone
		}
		return 200, `{"Call":{"Sid":"again"}}`, true
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequestWithContext(ctx, "POST", r.front.URL+connectPath, strings.NewReader("From=1&To=2"))
		req.Header.Set("Idempotency-Key", "paused")
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if resp, err := r.front.Client().Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	testutil.Eventually(t, 10*time.Second, "the replay reaches Exotel", func() bool { return n.Load() == 2 })
	cancel()
	<-done
	var resp *http.Response
	var b []byte
	testutil.Eventually(t, 10*time.Second, "the first request settles", func() bool {
		resp, b = r.post(connectPath, "paused", "From=1&To=2")
		return resp.StatusCode != http.StatusConflict
	})
	if n.Load() != 2 {
		t.Errorf("Exotel received %d requests, want 2: the retry was forwarded after a replay that reached it", n.Load())
	}
	assertShape(t, resp, b, exotel.ShapeJSON, http.StatusBadGateway, KindUpstreamOutcomeUnknown)
}
