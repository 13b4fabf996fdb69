package sandbox

import (
	"net/http"
	"strings"
	"testing"
)

func (h *harness) v2(t *testing.T, method, path, contentType, body string) reply {
	t.Helper()
	req, _ := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.SetBasicAuth(acme.Key, acme.Token)
	return h.send(t, req)
}

func TestV2Calls(t *testing.T) {
	h := newHarness(t, Config{})
	const body = `{"from":{"contact_uri":"09876543210"},"to":{"contact_uri":"09000000005"},"virtual_number":"08047112233","custom_field":"x"}`
	r := h.v2(t, http.MethodPost, "/v2/accounts/acme/calls", "application/json", body)
	if r.status != 200 {
		t.Fatalf("got %d: %s", r.status, r.body)
	}
	m := decode(t, r)
	if m["http_code"] != float64(200) || m["method"] != "POST" || !sidPattern.MatchString(m["request_id"].(string)) ||
		obj(t, m, "response", "status") != "success" || obj(t, m, "response", "error_data") != nil {
		t.Errorf("envelope %s", r.body)
	}
	id := obj(t, m, "response", "data", "id").(string)
	if !sidPattern.MatchString(id) || obj(t, m, "response", "data", "to", "contact_uri") != "09000000005" {
		t.Errorf("data %s", r.body)
	}

	r = h.v2(t, http.MethodGet, "/v2/accounts/acme/calls/"+id, "", "")
	if r.status != 200 || obj(t, decode(t, r), "response", "data", "id") != id {
		t.Errorf("details: got %d: %s", r.status, r.body)
	}
	waitForStatus(t, h, id, "busy")
	r = h.v2(t, http.MethodGet, "/v2/accounts/acme/calls", "", "")
	if data, _ := obj(t, decode(t, r), "response", "data").([]any); r.status != 200 || len(data) != 1 {
		t.Errorf("list: got %d: %s", r.status, r.body)
	}

	errs := []struct {
		name, method, path, ct, body string
		status, code                 int
	}{
		{"unknown id", http.MethodGet, "/v2/accounts/acme/calls/0123456789abcdef0123456789abcdef", "", "", 404, 1000},
		{"not JSON", http.MethodPost, "/v2/accounts/acme/calls", "application/x-www-form-urlencoded", "a=b", 415, 1011},
		{"bad JSON", http.MethodPost, "/v2/accounts/acme/calls", "application/json", "{", 400, 1001},
		{"no from", http.MethodPost, "/v2/accounts/acme/calls", "application/json", `{"to":{"contact_uri":"1"},"virtual_number":"2"}`, 400, 1001},
		{"no to", http.MethodPost, "/v2/accounts/acme/calls", "application/json", `{"from":{"contact_uri":"1"},"virtual_number":"2"}`, 400, 1001},
		{"no virtual_number", http.MethodPost, "/v2/accounts/acme/calls", "application/json", `{"from":{"contact_uri":"1"},"to":{"contact_uri":"1"}}`, 400, 1001},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			r := h.v2(t, tt.method, tt.path, tt.ct, tt.body)
			m := decode(t, r)
			if r.status != tt.status || m["http_code"] != float64(tt.status) || obj(t, m, "response", "status") != "failure" ||
				obj(t, m, "response", "error_data", "code") != float64(tt.code) {
				t.Errorf("got %d: %s", r.status, r.body)
			}
		})
	}
}

// waitForStatus waits for a call to reach status, read through
// the v1 details.
func waitForStatus(t *testing.T, h *harness, sid, status string) {
	t.Helper()
	waitFor(t, "call "+sid+" "+status, func() bool {
		r := h.do(t, http.MethodGet, "/v1/Accounts/acme/Calls/"+sid+".json", nil)
		return r.status == 200 && strings.Contains(r.body, `"Status":"`+status+`"`)
	})
}

// TestOtherRoutedPaths: in lenient mode the paths the simulator does not
// model answer an empty success in their shape (TestUnsimulatedPaths has
// the sandbox's 404).
func TestOtherRoutedPaths(t *testing.T) {
	h := newHarness(t, Config{Lenient: true})
	for _, tt := range []struct{ method, path, want string }{
		{http.MethodGet, "/v2/accounts/acme/users", `"status":"success"`},
		{http.MethodPost, "/v2/accounts/acme/messages", `"status":"success"`},
		{http.MethodGet, "/v3/accounts/acme/calls/abc/legs", `"status":"success"`},
		{http.MethodGet, "/v2_beta/Accounts/acme/IncomingPhoneNumbers", `{}`},
		{http.MethodGet, "/v1/Accounts/acme/Numbers/09000000001.json", `{}`},
		{http.MethodGet, "/v1/Accounts/acme/CustomerWhitelist/09000000001", `<TwilioResponse></TwilioResponse>`},
	} {
		if r := h.v2(t, tt.method, tt.path, "application/json", "{}"); r.status != 200 || !strings.Contains(r.body, tt.want) {
			t.Errorf("%s %s: got %d: %s", tt.method, tt.path, r.status, r.body)
		}
	}
}

func TestLenient(t *testing.T) {
	h := newHarness(t, Config{Lenient: true})
	for _, tt := range []struct{ method, path, ct, body, want string }{
		{http.MethodPost, "/v1/Accounts/acme/Calls/connect.json", "application/x-www-form-urlencoded", "From=1", `"Status":"in-progress"`},
		{http.MethodPost, "/v1/Accounts/acme/Calls/connect", "multipart/form-data; boundary=x", "garbage", `<Status>in-progress</Status>`},
		{http.MethodPost, "/v1/Accounts/acme/Sms/send.json", "", "", `"Status":"queued"`},
		{http.MethodGet, "/v1/Accounts/acme/Calls/c1.json", "", "", `{"Call":{"Sid":"c1",`},
		{http.MethodGet, "/v1/Accounts/acme/SMS/Messages/s1", "", "", `<Sid>s1</Sid>`},
		{http.MethodPost, "/v2/accounts/acme/calls", "text/plain", "x", `"status":"success"`},
		{http.MethodGet, "/v2/accounts/acme/calls/c2", "", "", `"id":"c2"`},
	} {
		if r := h.v2(t, tt.method, tt.path, tt.ct, tt.body); r.status != 200 || !strings.Contains(r.body, tt.want) {
			t.Errorf("%s %s: got %d: %s", tt.method, tt.path, r.status, r.body)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/v1/Accounts/acme/Calls/c1.json", nil)
	req.SetBasicAuth(acme.Key, "wrong")
	if r := h.send(t, req); r.status != 401 {
		t.Errorf("wrong credentials, lenient: %d", r.status)
	}
}
