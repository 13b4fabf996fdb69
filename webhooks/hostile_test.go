package webhooks

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/exogate/exogate/internal/testutil"
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

// TestIngressHostileRequests sends, over a real connection, requests a
// hostile party would try. None is acknowledged, none is stored, and the
// route's token appears in no log line.
func TestIngressHostileRequests(t *testing.T) {
	tok := Token(urlSecret, "calls")
	many := strings.Repeat("X=1&", maxFields) + "CallSid=" + callSid + "&Status=completed"
	var parts [][2]string
	for i := 0; i <= maxFields; i++ {
		parts = append(parts, [2]string{"X", "1"})
	}
	parts = append(parts, [2]string{"CallSid", callSid}, [2]string{"Status", "completed"})
	mpType, mpBody := multipartBody(t, parts)
	deep := `{"CallSid":"` + callSid + `","Status":"completed","X":` + strings.Repeat("[", 30000) + strings.Repeat("]", 30000) + `}`
	tests := []struct {
		name, path, ct, body string
		code                 int
	}{
		{"dot-dot after the route", "/hooks/calls/../sms/" + Token(urlSecret, "sms"), formType, smsForm, 404},
		{"dot-dot in the token", "/hooks/calls/" + tok + "/../" + tok, formType, callForm, 404},
		{"trailing slash", "/hooks/calls/" + tok + "/", formType, callForm, 404},
		{"double slash", "/hooks//calls/" + tok, formType, callForm, 404},
		{"route in another case", "/hooks/CALLS/" + tok, formType, callForm, 404},
		{"another route's token", "/hooks/sms/" + tok, formType, smsForm, 404},
		{"token in the query", "/hooks/calls/?token=" + tok, formType, callForm, 404},
		{"too many form fields", "/hooks/calls/" + tok, formType, many, 400},
		{"too many parts", "/hooks/calls/" + tok, mpType, string(mpBody), 400},
		{"multipart without boundary", "/hooks/calls/" + tok, "multipart/form-data", string(mpBody), 400},
		{"form sent as JSON", "/hooks/calls/" + tok, "application/json", callForm, 400},
		{"JSON sent as a form", "/hooks/calls/" + tok, formType, callJSON, 400},
		{"no content type", "/hooks/calls/" + tok, "", callForm, 400},
		{"deep JSON", "/hooks/calls/" + tok, "application/json", deep, 400},
		{"semicolon separators", "/hooks/calls/" + tok, formType, "CallSid=" + callSid + ";Status=completed", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &testutil.SyncBuffer{}
			e := newEnv(t, func(c *Config, d *Deps) {
				c.MaxBody = 64 << 10
				d.Log = zerolog.New(logs)
			})
			base := e.listen()
			if code := postRaw(t, base, tt.path, tt.ct, tt.body); code != tt.code {
				t.Fatalf("status %d, want %d", code, tt.code)
			}
			for _, r := range []string{"calls", "sms"} {
				if ms, err := e.q.List(r, StatePending, 10); err != nil || len(ms) != 0 {
					t.Fatalf("%s: stored %d messages (%v), want none", r, len(ms), err)
				}
			}
			if strings.Contains(logs.String(), tok) {
				t.Fatalf("the token is in the logs: %s", logs.String())
			}
		})
	}
}

// TestReplayStaysOnItsRoute: naming one route's dead message under another
// route is answered 404 and replays nothing, so an operator's request for
// one route never moves another's messages.
func TestReplayStaysOnItsRoute(t *testing.T) {
	e := newEnv(t, nil)
	e.target.answer(func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusGone) })
	e.post("sms", formType, smsForm)
	e.deliverDue("sms")
	dead := e.only("sms", StateDead)
	srv := httptest.NewServer(e.svc.Admin())
	t.Cleanup(srv.Close)
	for _, body := range []string{
		`{"route":"calls","id":"` + dead.ID + `"}`,
		`{"route":"calls","state":"dead"}`,
	} {
		resp, err := http.Post(srv.URL+"/webhooks/replay", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && !strings.Contains(string(got), `"replayed":0`) {
			t.Fatalf("%s: %d %s", body, resp.StatusCode, got)
		}
	}
	if m := e.only("sms", StateDead); m.ID != dead.ID {
		t.Fatalf("dead message %s, want %s", m.ID, dead.ID)
	}
}

// TestIngressRefusesOtherCharsets: a body declared in a charset that is
// not ASCII-compatible (UTF-16, UTF-7) would be read one way here and
// another way by a target that decodes by the declared charset, so it is
// refused; UTF-8 and ASCII, in any case, are accepted.
func TestIngressRefusesOtherCharsets(t *testing.T) {
	for _, tt := range []struct {
		ct   string
		code int
	}{
		{formType + "; charset=UTF-16BE", 400},
		{formType + "; charset=utf-7", 400},
		{"application/json; charset=utf-32", 400},
		{formType + "; charset=UTF-8", 200},
		{formType + "; charset=\"us-ascii\"", 200},
		{"application/json; charset=utf-8", 200},
	} {
		e := newEnv(t, nil)
		body := callForm
		if strings.HasPrefix(tt.ct, "application/json") {
			body = callJSON
		}
		if code := postRaw(t, e.listen(), "/hooks/calls/"+Token(urlSecret, "calls"), tt.ct, body); code != tt.code {
			t.Errorf("%s: status %d, want %d", tt.ct, code, tt.code)
		}
	}
}

// TestIngressMultipartNamesAsTargetsRead: a part this parser would skip
// (a disposition other than form-data, a second Content-Disposition) still
// names a field for some targets' parsers, so it counts as a repeat.
func TestIngressMultipartNamesAsTargetsRead(t *testing.T) {
	const forged = "ffffffffffffffffffffffffffffffff"
	head := "--b\r\nContent-Disposition: form-data; name=\"CallSid\"\r\n\r\n" + callSid +
		"\r\n--b\r\nContent-Disposition: form-data; name=\"Status\"\r\n\r\ncompleted\r\n"
	for name, body := range map[string]string{
		"attachment disposition": head + "--b\r\nContent-Disposition: attachment; name=\"CallSid\"\r\n\r\n" + forged + "\r\n--b--\r\n",
		"two dispositions": head + "--b\r\nContent-Disposition: form-data; name=\"X\"\r\nContent-Disposition: form-data; name=\"CallSid\"\r\n\r\n" +
			forged + "\r\n--b--\r\n",
	} {
		e := newEnv(t, nil)
		if code := postRaw(t, e.listen(), "/hooks/calls/"+Token(urlSecret, "calls"), "multipart/form-data; boundary=b", body); code != 400 {
			t.Errorf("%s: status %d, want 400", name, code)
		}
	}
}
