package sandbox

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// TestFaultListIsCapped: faults past maxFaults are refused, so POSTing in a
// loop cannot grow the list (and every request's scan of it) without bound.
func TestFaultListIsCapped(t *testing.T) {
	h := newHarness(t, Config{})
	for i := 0; i < maxFaults; i++ {
		h.addFault(t, `{"status":503,"count":1}`)
	}
	r := h.admin(t, http.MethodPost, "/sandbox/faults", `{"status":503}`)
	var m map[string]string
	if r.status != http.StatusBadRequest || json.Unmarshal([]byte(r.body), &m) != nil || !strings.Contains(m["error"], "DELETE") {
		t.Fatalf("fault %d: got %d: %s", maxFaults+1, r.status, r.body)
	}
	var list []fault
	if err := json.Unmarshal([]byte(h.admin(t, http.MethodGet, "/sandbox/faults", "").body), &list); err != nil || len(list) != maxFaults {
		t.Fatalf("%d faults listed (%v), want %d", len(list), err, maxFaults)
	}
	h.admin(t, http.MethodDelete, "/sandbox/faults", "")
	h.addFault(t, `{"status":503}`)
}

// TestFaultLatenciesAddUpToTheCap: selected latencies add up, but never past
// maxLatency, so stacked faults cannot hold a request for hours.
func TestFaultLatenciesAddUpToTheCap(t *testing.T) {
	h := newHarness(t, Config{})
	h.addFault(t, `{"latency":"4m"}`)
	h.addFault(t, `{"latency":"4m"}`)
	if delay, action := h.sim.pickFaults(); delay != maxLatency || action != nil {
		t.Errorf("delay %v action %v, want %v and none", delay, action, maxLatency)
	}
}

// TestFaultsUnderLoad adds, lists and clears faults while requests flow; run
// with -race.
func TestFaultsUnderLoad(t *testing.T) {
	h := newHarness(t, Config{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				rec := httptest.NewRecorder()
				h.sim.AdminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/sandbox/faults", strings.NewReader(`{"status":503,"ratio":0.5,"count":3}`)))
				h.sim.AdminHandler().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/sandbox/faults", nil))
				if i%5 == 0 {
					h.sim.AdminHandler().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodDelete, "/sandbox/faults", nil))
				}
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				req := httptest.NewRequest(http.MethodGet, "/v1/Accounts/acme/Calls.json", nil)
				req.SetBasicAuth(acme.Key, acme.Token)
				rec := httptest.NewRecorder()
				h.sim.ServeHTTP(rec, req)
				if rec.Code != 200 && rec.Code != 503 {
					t.Errorf("got %d", rec.Code)
				}
			}
		}()
	}
	wg.Wait()
	if n := h.sim.Count(); n != 100 {
		t.Errorf("%d requests counted, want 100", n)
	}
}

// TestDropAfterCallerLeft: a drop fault delayed by latency, whose caller
// has gone, ends its handler.
func TestDropAfterCallerLeft(t *testing.T) {
	h := newHarness(t, Config{})
	h.addFault(t, `{"drop":true,"latency":"5m","count":1}`)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.srv.URL+"/v1/Accounts/acme/Calls.json", nil)
		resp, err := h.srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	waitFor(t, "the request to arrive", func() bool { return h.sim.Count() == 1 })
	cancel()
	if err := <-done; err == nil {
		t.Error("the canceled request got an answer")
	}
	h.srv.Close() // waits for the handler
	if r := h.admin(t, http.MethodGet, "/sandbox/faults", ""); strings.TrimSpace(r.body) != "[]" {
		t.Errorf("the spent fault is listed: %s", r.body)
	}
}

// TestFaultBodyTooLarge: a fault body past 64 KiB is answered 413 with a
// JSON error, and adds nothing.
func TestFaultBodyTooLarge(t *testing.T) {
	h := newHarness(t, Config{})
	r := h.admin(t, http.MethodPost, "/sandbox/faults", `{"status":503,"latency":"`+strings.Repeat("1", 70<<10)+`ms"}`)
	var m map[string]string
	if r.status != http.StatusRequestEntityTooLarge || json.Unmarshal([]byte(r.body), &m) != nil || !strings.Contains(m["error"], "64 KiB") {
		t.Errorf("got %d: %.200s", r.status, r.body)
	}
	if r := h.admin(t, http.MethodGet, "/sandbox/faults", ""); strings.TrimSpace(r.body) != "[]" {
		t.Errorf("faults: %s", r.body)
	}
}
