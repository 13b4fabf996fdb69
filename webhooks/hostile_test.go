package webhooks

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// listen serves e's callback handler on 127.0.0.1 and returns the base URL.
func (e *env) listen() string {
	e.t.Helper()
	srv := httptest.NewServer(e.svc.Handler())
	e.t.Cleanup(srv.Close)
	return srv.URL
}

// postRaw sends body to the listener at base as a hostile client would.
func postRaw(t *testing.T, base, path, ct, body string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ct)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A callback whose identifying fields appear twice is ambiguous: the
// gateway would dedupe and verify one value while the target, reading the
// same bytes, may act on the other (many form parsers keep the last
// value, Go's JSON decoder matches keys case-insensitively). Such a body
// is refused and nothing is stored.
func TestIngressRefusesAmbiguousFields(t *testing.T) {
	const forged = "ffffffffffffffffffffffffffffffff"
	mpType, mpBody := multipartBody(t, [][2]string{{"CallSid", callSid}, {"Status", "completed"}, {"CallSid", forged}})
	tests := []struct{ name, ct, body string }{
		{"form, CallSid twice", formType, "CallSid=" + callSid + "&Status=completed&CallSid=" + forged},
		{"form, Status twice", formType, "CallSid=" + callSid + "&Status=completed&Status=ringing"},
		{"form, CallSid in another case", formType, "CallSid=" + callSid + "&Status=completed&callsid=" + forged},
		{"json, CallSid twice", "application/json", `{"CallSid":"` + callSid + `","Status":"completed","CallSid":"` + forged + `"}`},
		{"json, CallSid in another case", "application/json", `{"CallSid":"` + callSid + `","Status":"completed","callSid":"` + forged + `"}`},
		{"json, EventType twice", "application/json", `{"CallSid":"` + callSid + `","Status":"completed","EventType":"terminal","EventType":"answered"}`},
		{"multipart, CallSid twice", mpType, string(mpBody)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			base := e.listen()
			if code := postRaw(t, base, "/hooks/calls/"+Token(urlSecret, "calls"), tt.ct, tt.body); code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400", code)
			}
			if got := e.svc.Counters().Received[refusePayload]; got != 1 {
				t.Fatalf("payload refusals %d, want 1", got)
			}
			ms, err := e.q.List("calls", StatePending, 10)
			if err != nil || len(ms) != 0 {
				t.Fatalf("stored %d messages (%v), want none", len(ms), err)
			}
		})
	}
}
