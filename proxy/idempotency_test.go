package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/exogate/exogate/internal/callers"
	"github.com/exogate/exogate/internal/exotel"
	"github.com/exogate/exogate/internal/fakeexotel"
	"github.com/exogate/exogate/internal/idempotency"
	"github.com/exogate/exogate/internal/testutil"
)

const connectPath = "/v1/Accounts/acme/Calls/connect.json"

// keyedRig is a rig whose gateway keeps idempotency keys in memory and
// whose Singapore api host places a call with a fresh Sid per request.
func keyedRig(t *testing.T, mod func(*Config)) (*rig, *atomic.Int64) {
	t.Helper()
	r := newRig(t, func(c *Config) {
		c.Idempotency = &Idempotency{Keys: idempotency.New(idempotency.NewMemory(0, nil), idempotency.Options{})}
		if mod != nil {
			mod(c)
		}
	})
	var calls atomic.Int64
	r.fakes["singapore-api"].SetOverride(func(req fakeexotel.Request) (int, string, bool) {
		if req.Method != http.MethodPost {
			return 0, "", false
		}
		return 200, fmt.Sprintf(`{"Call":{"Sid":"call-%d","Status":"in-progress"}}`, calls.Add(1)), true
	})
	return r, &calls
}

func (r *rig) post(path, key, body string, hdr ...string) (*http.Response, []byte) {
	r.t.Helper()
	req, _ := http.NewRequest("POST", r.front.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return r.do(req)
}

func TestIdempotencySameKeyTwice(t *testing.T) {
	r, calls := keyedRig(t, nil)
	first, b1 := r.post(connectPath, "order-17", "From=1&To=2")
	second, b2 := r.post(connectPath, "order-17", "From=1&To=2")
	if calls.Load() != 1 || r.total() != 1 {
		t.Fatalf("Exotel placed %d calls (%d requests), want 1", calls.Load(), r.total())
	}
	if first.StatusCode != 200 || second.StatusCode != 200 || string(b1) != string(b2) {
		t.Fatalf("answers %d %q and %d %q, want the same", first.StatusCode, b1, second.StatusCode, b2)
	}
	if first.Header.Get("Idempotent-Replayed") != "" || second.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("Idempotent-Replayed: first %q, second %q", first.Header.Get("Idempotent-Replayed"), second.Header.Get("Idempotent-Replayed"))
	}
	if ct := second.Header.Get("Content-Type"); ct != first.Header.Get("Content-Type") || ct == "" {
		t.Errorf("replayed Content-Type %q, first %q", ct, first.Header.Get("Content-Type"))
	}
	// X-Idempotency-Key is the same key.
	if third, b3 := r.post(connectPath, "", "From=1&To=2", "X-Idempotency-Key", "order-17"); third.StatusCode != 200 || string(b3) != string(b1) {
		t.Errorf("X-Idempotency-Key: %d %q", third.StatusCode, b3)
	}
	// Without a key, or with another, a request is a new one.
	r.post(connectPath, "", "From=1&To=2")
	r.post(connectPath, "order-18", "From=1&To=2")
	if calls.Load() != 3 {
		t.Errorf("%d calls placed, want 3", calls.Load())
	}
	if !strings.Contains(r.logs.String(), `"idempotency":"replayed"`) {
		t.Errorf("the access log does not show the replay: %s", r.logs.String())
	}
	if strings.Contains(r.logs.String(), "order-17") {
		t.Error("the key is in the log")
	}
}

func TestIdempotencyConcurrent(t *testing.T) {
	r, calls := keyedRig(t, nil)
	release := make(chan struct{})
	r.fakes["singapore-api"].SetOverride(func(req fakeexotel.Request) (int, string, bool) {
		<-release
		return 200, fmt.Sprintf(`{"Call":{"Sid":"call-%d"}}`, calls.Add(1)), true
	})
	codes := make([]int, 10)
	replayed := make([]bool, 10)
	var wg sync.WaitGroup
	var answered atomic.Int32
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", r.front.URL+connectPath, strings.NewReader("From=1&To=2"))
			req.Header.Set("Idempotency-Key", "burst")
			resp, err := r.front.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i], replayed[i] = resp.StatusCode, resp.Header.Get("Idempotent-Replayed") == "true"
			if answered.Add(1) == 9 {
				close(release) // nine answered while the first is held
			}
		}()
	}
	wg.Wait()
	if calls.Load() != 1 {
		t.Fatalf("Exotel placed %d calls, want 1", calls.Load())
	}
	fresh := 0
	for i, c := range codes {
		switch {
		case c == 200 && !replayed[i]:
			fresh++
		case c == 409, c == 200 && replayed[i]:
		default:
			t.Errorf("caller %d: %d", i, c)
		}
	}
	if fresh != 1 {
		t.Errorf("%d callers got a fresh answer, want 1 (codes %v)", fresh, codes)
	}
}

func TestIdempotencyConflictAndMismatchShapes(t *testing.T) {
	r, _ := keyedRig(t, nil)
	release := make(chan struct{})
	var once sync.Once
	defer once.Do(func() { close(release) }) // a failure must not leave the upstream held
	r.fakes["singapore-api"].SetOverride(func(req fakeexotel.Request) (int, string, bool) {
		<-release
		return 200, `{"Call":{}}`, true
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequest("POST", r.front.URL+connectPath, strings.NewReader("From=1&To=2"))
		req.Header.Set("Idempotency-Key", "held")
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if resp, err := r.front.Client().Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	testutil.Eventually(t, 10*time.Second, "the first request did not reach Exotel", func() bool { return r.total() == 1 })
	resp, b := r.post(connectPath, "held", "From=1&To=2")
	assertShape(t, resp, b, exotel.ShapeJSON, 409, KindIdempotencyKeyInUse)
	if resp.Header.Get("Retry-After") != "1" {
		t.Errorf("409 Retry-After %q, want 1", resp.Header.Get("Retry-After"))
	}
	resp, b = r.post(connectPath, "held", "From=1&To=3")
	assertShape(t, resp, b, exotel.ShapeJSON, 422, KindIdempotencyKeyReused)
	once.Do(func() { close(release) })
	<-done
	// The path's XML spelling is the same call asking for another shape
	// of answer: the key was used for another request.
	resp, b = r.post(strings.TrimSuffix(connectPath, ".json"), "held", "From=1&To=2")
	assertShape(t, resp, b, exotel.ShapeXML, 422, KindIdempotencyKeyReused)
	resp, b = r.post(connectPath, "held", "From=1&To=3")
	assertShape(t, resp, b, exotel.ShapeJSON, 422, KindIdempotencyKeyReused)
	if r.total() != 1 {
		t.Errorf("Exotel received %d requests, want 1", r.total())
	}
}

func TestIdempotencyTwoClients(t *testing.T) {
	cs, err := callers.New(callers.Config{Clients: []callers.ClientConfig{
		{ID: "billing", SecretSHA256: callers.HashSecret("billing-secret"), Rights: callers.Rights{Accounts: []string{"*"}}},
		{ID: "support", SecretSHA256: callers.HashSecret("support-secret"), Rights: callers.Rights{Accounts: []string{"*"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	r, calls := keyedRig(t, func(c *Config) { c.Callers = cs })
	for _, who := range []string{"billing", "support", "billing", "support"} {
		resp, b := r.post(connectPath, "shared", "From=1&To=2", "Authorization", basic(who, who+"-secret"))
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", who, resp.StatusCode, b)
		}
	}
	if calls.Load() != 2 {
		t.Errorf("Exotel placed %d calls, want one per client", calls.Load())
	}
}

// What the gateway answered without sending anything, and Exotel's own
// 401 and 429, free the key; every other answer of Exotel's is kept.
func TestIdempotencyReleasedOrKept(t *testing.T) {
	r, calls := keyedRig(t, func(c *Config) { c.RetryWait = -1 })
	var status atomic.Int32
	r.fakes["singapore-api"].SetOverride(func(req fakeexotel.Request) (int, string, bool) {
		calls.Add(1)
		return int(status.Load()), `{"RestException":{"Status":` + fmt.Sprint(status.Load()) + `}}`, true
	})
	for _, tc := range []struct {
		status int
		kept   bool
	}{{429, false}, {401, false}, {500, true}, {400, true}, {200, true}} {
		key := fmt.Sprint("k-", tc.status)
		status.Store(int32(tc.status))
		before := calls.Load()
		resp, _ := r.post(connectPath, key, "From=1")
		if resp.StatusCode != tc.status {
			t.Fatalf("Exotel's %d answered %d", tc.status, resp.StatusCode)
		}
		status.Store(200)
		resp, _ = r.post(connectPath, key, "From=1")
		forwarded := calls.Load() - before
		if tc.kept && (forwarded != 1 || resp.StatusCode != tc.status || resp.Header.Get("Idempotent-Replayed") != "true") {
			t.Errorf("Exotel's %d: the retry got %d after %d requests, want the kept %d", tc.status, resp.StatusCode, forwarded, tc.status)
		}
		if !tc.kept && (forwarded != 2 || resp.StatusCode != 200) {
			t.Errorf("Exotel's %d: the retry got %d after %d requests, want it forwarded", tc.status, resp.StatusCode, forwarded)
		}
	}
	// The gateway's own 429: nothing sent, key freed.
	r.limiter.admit = func(context.Context, string, string) (time.Duration, error) { return 0, limited{time.Second} }
	resp, b := r.post(connectPath, "limited", "From=1")
	assertShape(t, resp, b, exotel.ShapeJSON, 429, KindRateLimited)
	r.limiter.admit = func(context.Context, string, string) (time.Duration, error) { return 0, nil }
	before := calls.Load()
	if resp, _ := r.post(connectPath, "limited", "From=1"); resp.StatusCode != 200 || calls.Load() != before+1 {
		t.Errorf("after the gateway's 429 the retry got %d, %d requests", resp.StatusCode, calls.Load()-before)
	}
}

// The request reached Exotel and the connection broke before an answer:
// the retry gets upstream_outcome_unknown, and Exotel saw one request.
func TestIdempotencyOutcomeUnknown(t *testing.T) {
	var posts atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		_, _ = io.ReadAll(r.Body)
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	}))
	srv.StartTLS()
	defer srv.Close()
	withUpstreamConfig(t, srv, nil, func(c *Config) {
		c.Idempotency = &Idempotency{Keys: idempotency.New(idempotency.NewMemory(0, nil), idempotency.Options{})}
	}, func(t *testing.T, r *rig) {
		resp, b := r.post(connectPath, "lost", "From=1&To=2")
		assertShape(t, resp, b, exotel.ShapeJSON, 502, KindUpstreamOutcomeUnknown)
		if !strings.Contains(string(b), "Call Details") {
			t.Errorf("the first answer does not say how to check: %s", b)
		}
		for range 2 {
			resp, b2 := r.post(connectPath, "lost", "From=1&To=2")
			assertShape(t, resp, b2, exotel.ShapeJSON, 502, KindUpstreamOutcomeUnknown)
			if resp.Header.Get("Idempotent-Replayed") != "true" || !strings.Contains(string(b2), "will not be forwarded again") {
				t.Errorf("the retry: %s %s", resp.Header, b2)
			}
		}
		if posts.Load() != 1 {
			t.Errorf("Exotel received %d requests, want 1", posts.Load())
		}
	})
}

func TestIdempotencyBadKeysAndRequired(t *testing.T) {
	r, calls := keyedRig(t, func(c *Config) {
		c.Idempotency.RequireFor = []exotel.Operation{exotel.OpCallsConnect}
	})
	for _, hdr := range [][]string{
		{"Idempotency-Key", strings.Repeat("k", 256)},      // too long
		{"Idempotency-Key", "a b"},                         // a space
		{"Idempotency-Key", "clé"},                         // not ASCII
		{"Idempotency-Key", "a", "X-Idempotency-Key", "b"}, // two values
	} {
		resp, b := r.post(connectPath, "", "From=1", hdr...)
		assertShape(t, resp, b, exotel.ShapeJSON, 400, KindIdempotencyKeyInvalid)
	}
	resp, b := r.post(connectPath, "", "From=1")
	assertShape(t, resp, b, exotel.ShapeJSON, 400, KindIdempotencyKeyRequired)
	resp, b = r.post(strings.TrimSuffix(connectPath, ".json"), "", "From=1")
	assertShape(t, resp, b, exotel.ShapeXML, 400, KindIdempotencyKeyRequired)
	if calls.Load() != 0 || r.total() != 0 {
		t.Fatalf("refused requests reached Exotel: %d", r.total())
	}
	// Other operations need no key; a GET's key does nothing.
	if resp, _ := r.post("/v1/Accounts/acme/Sms/send.json", "", "From=1"); resp.StatusCode != 200 {
		t.Errorf("sms.send without a key: %d", resp.StatusCode)
	}
	if resp, _ := r.post(connectPath, "ok-key", "From=1"); resp.StatusCode != 200 {
		t.Errorf("calls.connect with a key: %d", resp.StatusCode)
	}
}

// brokenBackend fails every call, as Redis does when it is down.
type brokenBackend struct{}

func (brokenBackend) Add(context.Context, string, []byte, time.Duration) ([]byte, error) {
	return nil, errors.New("connection refused")
}
func (brokenBackend) Swap(context.Context, string, []byte, []byte, time.Duration) (bool, error) {
	return false, errors.New("connection refused")
}

func TestIdempotencyBackendDown(t *testing.T) {
	for _, forward := range []bool{false, true} {
		r, calls := keyedRig(t, func(c *Config) {
			c.Idempotency = &Idempotency{Keys: idempotency.New(brokenBackend{}, idempotency.Options{}), Forward: forward}
		})
		resp, b := r.post(connectPath, "k", "From=1")
		if forward {
			if resp.StatusCode != 200 || calls.Load() != 1 {
				t.Errorf("forward: %d, %d calls", resp.StatusCode, calls.Load())
			}
			continue
		}
		assertShape(t, resp, b, exotel.ShapeJSON, 503, KindIdempotencyUnavailable)
		if calls.Load() != 0 {
			t.Errorf("refuse: %d calls placed", calls.Load())
		}
		// A request without a key does not need the backend.
		if resp, _ := r.post(connectPath, "", "From=1"); resp.StatusCode != 200 {
			t.Errorf("refuse: a request without a key got %d", resp.StatusCode)
		}
	}
}
