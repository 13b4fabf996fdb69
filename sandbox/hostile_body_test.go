package sandbox

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// TestBodyIsCapped: an API body past maxBody is answered 413 in the path's
// shape, and not kept.
func TestBodyIsCapped(t *testing.T) {
	h := newHarness(t, Config{})
	body := "From=1&To=2&CallerId=3&Pad=" + strings.Repeat("x", maxBody)
	for _, path := range []string{"/v1/Accounts/acme/Calls/connect.json", "/v1/Accounts/acme/Calls/connect", "/v2/accounts/acme/calls"} {
		req, _ := http.NewRequest(http.MethodPost, h.srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(acme.Key, acme.Token)
		r := h.send(t, req)
		if r.status != http.StatusRequestEntityTooLarge || !strings.Contains(r.body, "413") {
			t.Errorf("%s: got %d: %.200s", path, r.status, r.body)
		}
	}
	if reqs := h.sim.Requests(); len(reqs) != 0 {
		t.Errorf("%d oversized requests kept", len(reqs))
	}
	if r := h.do(t, http.MethodGet, "/v1/Accounts/acme/Calls.json", nil); !strings.Contains(r.body, `"Total":0`) {
		t.Errorf("an oversized request placed a call: %s", r.body)
	}
}

// TestRecordedBodiesAreCapped: the recorded requests' bodies and headers
// stay within maxRecordedBytes in all, the oldest forgotten first.
func TestRecordedBodiesAreCapped(t *testing.T) {
	h := newHarness(t, Config{})
	big := make([]byte, maxBody)
	n := maxRecordedBytes/maxBody + 5
	for i := 0; i < n; i++ {
		h.sim.admit(Request{Method: "POST", RequestURI: "/" + strconv.Itoa(i), Body: big}, httptest.NewRecorder())
	}
	reqs := h.sim.Requests()
	total := 0
	for _, r := range reqs {
		total += len(r.Body)
	}
	if total > maxRecordedBytes || len(reqs) == 0 || reqs[len(reqs)-1].RequestURI != "/"+strconv.Itoa(n-1) {
		t.Errorf("%d requests with %d body bytes kept, want at most %d bytes and the newest", len(reqs), total, maxRecordedBytes)
	}
	h.sim.Reset()
	header := http.Header{"X-Big": {string(big)}}
	for i := 0; i < n; i++ {
		h.sim.admit(Request{Method: "GET", RequestURI: "/h", Header: header}, httptest.NewRecorder())
	}
	if reqs := h.sim.Requests(); len(reqs)*maxBody > maxRecordedBytes {
		t.Errorf("%d requests with %d header bytes each kept, want at most %d bytes", len(reqs), maxBody, maxRecordedBytes)
	}
	h.sim.Reset()
	h.sim.admit(Request{Method: "POST", RequestURI: "/after", Body: big}, httptest.NewRecorder())
	if reqs := h.sim.Requests(); len(reqs) != 1 {
		t.Errorf("after Reset: %d requests", len(reqs))
	}
}

// TestCallsListHugePage: a Page whose offset overflows is refused, rather
// than answering the first page with a negative next page.
func TestCallsListHugePage(t *testing.T) {
	h := newHarness(t, Config{})
	h.do(t, http.MethodPost, "/v1/Accounts/acme/Calls/connect.json", connectForm("09000000001"))
	for _, page := range []string{"9223372036854775807", "184467440737095516", "1000001"} {
		r := h.do(t, http.MethodGet, "/v1/Accounts/acme/Calls.json?PageSize=100&Page="+page, nil)
		if r.status != http.StatusBadRequest || !strings.Contains(r.body, "Page must be") {
			t.Errorf("Page=%s: got %d: %s", page, r.status, r.body)
		}
	}
	r := h.do(t, http.MethodGet, "/v1/Accounts/acme/Calls.json?PageSize=100&Page=1000000", nil)
	if r.status != 200 || !strings.Contains(r.body, `"Calls":[]`) || strings.Contains(r.body, `"NextPageUri":"`) {
		t.Errorf("Page=1000000: got %d: %s", r.status, r.body)
	}
}
