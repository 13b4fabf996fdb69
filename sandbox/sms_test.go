package sandbox

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func smsForm(to string) url.Values {
	return url.Values{"From": {"EXOTEL"}, "To": {to}, "Body": {"Your code is 1234"}}
}

func TestSMSSend(t *testing.T) {
	h := newHarness(t, Config{})
	t.Run("json", func(t *testing.T) {
		r := h.do(t, http.MethodPost, "/v1/Accounts/acme/Sms/send.json", smsForm("09000000001"))
		if r.status != 200 || r.contentType != "application/json" {
			t.Fatalf("got %d: %s", r.status, r.body)
		}
		m := obj(t, decode(t, r), "SMSMessage").(map[string]any)
		want := map[string]any{
			"AccountSid": "acme", "From": "EXOTEL", "To": "09000000001", "Body": "Your code is 1234",
			"Status": "queued", "Direction": "outbound-api", "DetailedStatus": "PENDING_TO_OPERATOR",
			"DetailedStatusCode": float64(21010), "SmsUnits": float64(1), "DateSent": nil, "Price": nil,
		}
		for k, v := range want {
			if got, ok := m[k]; !ok || got != v {
				t.Errorf("%s = %v, want %v", k, got, v)
			}
		}
		if !sidPattern.MatchString(m["Sid"].(string)) || m["DateCreated"] == "" || m["Uri"] == "" {
			t.Errorf("SMSMessage %v", m)
		}
	})
	t.Run("xml", func(t *testing.T) {
		r := h.do(t, http.MethodPost, "/v1/Accounts/acme/Sms/send", smsForm("09000000001"))
		if r.status != 200 || r.contentType != "application/xml" || !strings.Contains(r.body, "<TwilioResponse><SMSMessage><Sid>") ||
			!strings.Contains(r.body, "<Status>queued</Status>") {
			t.Fatalf("got %d: %s", r.status, r.body)
		}
	})
	t.Run("units", func(t *testing.T) {
		form := smsForm("09000000001")
		form.Set("Body", strings.Repeat("x", 161))
		r := h.do(t, http.MethodPost, "/v1/Accounts/acme/SMS/send.json", form)
		if obj(t, decode(t, r), "SMSMessage", "SmsUnits") != float64(2) {
			t.Errorf("got %s", r.body)
		}
	})
	for _, missing := range []string{"From", "To", "Body"} {
		form := smsForm("09000000001")
		form.Del(missing)
		r := h.do(t, http.MethodPost, "/v1/Accounts/acme/Sms/send.json", form)
		if r.status != 400 || !strings.Contains(obj(t, decode(t, r), "RestException", "Message").(string), missing) {
			t.Errorf("without %s: got %d: %s", missing, r.status, r.body)
		}
	}
}

func TestSMSCallbackAndDetails(t *testing.T) {
	h := newHarness(t, Config{})
	tests := []struct {
		to, status, detailed, code string
	}{
		{"09000000001", "sent", "DELIVERED_TO_HANDSET", "20005"},
		{"09000000005", "failed-dnd", "FAILED_DND", "23005"},
		{"09000000007", "failed", "FAILED_SUBSCRIBER_UNAVAILABLE", "23035"},
	}
	for _, tt := range tests {
		t.Run(tt.status, func(t *testing.T) {
			rc := newReceiver(t)
			form := smsForm(tt.to)
			form.Set("StatusCallback", rc.srv.URL)
			form.Set("CustomField", "c1")
			sid := obj(t, decode(t, h.do(t, http.MethodPost, "/v1/Accounts/acme/Sms/send.json", form)), "SMSMessage", "Sid").(string)
			cb := rc.wait(t, 1)[0]
			if cb.contentType != "application/x-www-form-urlencoded" {
				t.Errorf("Content-Type %q", cb.contentType)
			}
			want := url.Values{
				"SmsSid": {sid}, "To": {tt.to}, "Status": {tt.status}, "SmsUnits": {"1"},
				"DetailedStatus": {tt.detailed}, "DetailedStatusCode": {tt.code}, "CustomField": {"c1"},
			}
			for k := range want {
				if cb.fields.Get(k) != want.Get(k) {
					t.Errorf("%s = %q, want %q", k, cb.fields.Get(k), want.Get(k))
				}
			}
			if !cb.fields.Has("DateSent") || (tt.status == "sent") != (cb.fields.Get("DateSent") != "") {
				t.Errorf("DateSent %q", cb.fields.Get("DateSent"))
			}
			for _, path := range []string{"/v1/Accounts/acme/SMS/Messages/" + sid + ".json", "/v1/Accounts/acme/Sms/Messages/" + sid + ".json"} {
				r := h.do(t, http.MethodGet, path, nil)
				if r.status != 200 || obj(t, decode(t, r), "SMSMessage", "Status") != tt.status {
					t.Errorf("%s: got %d: %s", path, r.status, r.body)
				}
			}
			r := h.do(t, http.MethodGet, "/v1/Accounts/acme/SMS/Messages/"+sid, nil)
			if r.status != 200 || !strings.Contains(r.body, "<DetailedStatus>"+tt.detailed+"</DetailedStatus>") {
				t.Errorf("xml: got %d: %s", r.status, r.body)
			}
		})
	}
	r := h.do(t, http.MethodGet, "/v1/Accounts/acme/SMS/Messages/0123456789abcdef0123456789abcdef.json", nil)
	if r.status != 404 || obj(t, decode(t, r), "RestException", "Status") != float64(404) {
		t.Errorf("unknown SMS: got %d: %s", r.status, r.body)
	}
}

func TestSMSBulkSend(t *testing.T) {
	h := newHarness(t, Config{})
	rc := newReceiver(t)
	form := url.Values{"From": {"EXOTEL"}, "To": {"09000000001,09000000005"}, "To[]": {"09000000007"}, "Body": {"hi"}, "StatusCallback": {rc.srv.URL}}
	r := h.do(t, http.MethodPost, "/v1/Accounts/acme/Sms/bulksend.json", form)
	var list []map[string]map[string]any
	if err := json.Unmarshal([]byte(r.body), &list); r.status != 200 || err != nil || len(list) != 3 {
		t.Fatalf("got %d: %s", r.status, r.body)
	}
	sids := map[string]string{}
	for _, m := range list {
		sids[m["SMSMessage"]["Sid"].(string)] = m["SMSMessage"]["To"].(string)
		if m["SMSMessage"]["Status"] != "queued" {
			t.Errorf("SMSMessage %v", m)
		}
	}
	if len(sids) != 3 {
		t.Errorf("Sids %v", sids)
	}
	want := map[string]string{"09000000001": "sent", "09000000005": "failed-dnd", "09000000007": "failed"}
	for _, cb := range rc.wait(t, 3) {
		to := sids[cb.fields.Get("SmsSid")]
		if to == "" || cb.fields.Get("Status") != want[to] {
			t.Errorf("callback %v", cb.fields)
		}
	}
	r = h.do(t, http.MethodPost, "/v1/Accounts/acme/Sms/bulksend", url.Values{"From": {"EXOTEL"}, "To": {"1", "2"}, "Body": {"hi"}})
	if r.status != 200 || strings.Count(r.body, "<SMSMessage><Sid>") != 2 || !strings.HasPrefix(r.body, "<?xml") {
		t.Errorf("xml: got %d: %s", r.status, r.body)
	}
	many := make([]string, 101)
	for i := range many {
		many[i] = "1"
	}
	for name, form := range map[string]url.Values{
		"no To":   {"From": {"EXOTEL"}, "Body": {"hi"}},
		"no Body": {"From": {"EXOTEL"}, "To": {"1"}},
		"101 To":  {"From": {"EXOTEL"}, "To": {strings.Join(many, ",")}, "Body": {"hi"}},
	} {
		if r := h.do(t, http.MethodPost, "/v1/Accounts/acme/Sms/bulksend.json", form); r.status != 400 || !strings.Contains(r.body, "RestException") {
			t.Errorf("%s: got %d: %s", name, r.status, r.body)
		}
	}
}

// TestSMSUriIsServed follows an SMS's Uri back to the simulator: it names
// the details path that answers it, in the shape it was asked in.
func TestSMSUriIsServed(t *testing.T) {
	h := newHarness(t, Config{})
	for _, path := range []string{"/v1/Accounts/acme/Sms/send.json", "/v1/Accounts/acme/Sms/send"} {
		r := h.do(t, http.MethodPost, path, smsForm("09000000001"))
		var uri, sid string
		if strings.HasSuffix(path, ".json") {
			m := obj(t, decode(t, r), "SMSMessage").(map[string]any)
			uri, sid = m["Uri"].(string), m["Sid"].(string)
		} else {
			uri = between(r.body, "<Uri>", "</Uri>")
			sid = between(r.body, "<Sid>", "</Sid>")
		}
		got := h.do(t, http.MethodGet, uri, nil)
		if got.status != 200 || !strings.Contains(got.body, sid) {
			t.Errorf("%s: Uri %q answered %d: %s", path, uri, got.status, got.body)
		}
		if strings.HasSuffix(path, ".json") != strings.HasSuffix(uri, ".json") {
			t.Errorf("%s: Uri %q is not in the request's shape", path, uri)
		}
	}
}

// TestUnsimulatedPaths: a path Exotel routes but the simulator does not
// model is a 404 in the path's shape that says so, not an empty success.
func TestUnsimulatedPaths(t *testing.T) {
	h := newHarness(t, Config{})
	for _, tc := range []struct{ method, path, shape string }{
		{http.MethodGet, "/v1/Accounts/acme/Sms/Messages.json", "json"},
		{http.MethodGet, "/v1/Accounts/acme/SMS/Messages", "xml"},
		{http.MethodGet, "/v1/Accounts/acme/CustomerWhitelist.json", "json"},
		{http.MethodPost, "/v1/Accounts/acme/Calls/abc.json", "json"},
		{http.MethodGet, "/v2/accounts/acme/campaigns", "v2"},
		{http.MethodGet, "/v3/accounts/acme/calls", "v2"},
	} {
		r := h.do(t, tc.method, tc.path, nil)
		if r.status != http.StatusNotFound || !strings.Contains(r.body, "not simulated") {
			t.Errorf("%s %s: got %d: %s", tc.method, tc.path, r.status, r.body)
			continue
		}
		switch tc.shape {
		case "xml":
			if !strings.Contains(r.body, "<RestException>") {
				t.Errorf("%s: not Exotel's XML error: %s", tc.path, r.body)
			}
		case "json":
			obj(t, decode(t, r), "RestException", "Message")
		case "v2":
			if obj(t, decode(t, r), "response", "status") != "failure" {
				t.Errorf("%s: not the v2 envelope: %s", tc.path, r.body)
			}
		}
	}
	// Lenient mode (the project's own tests) keeps answering them.
	lh := newHarness(t, Config{Lenient: true})
	if r := lh.do(t, http.MethodGet, "/v1/Accounts/acme/CustomerWhitelist.json", nil); r.status != 200 {
		t.Errorf("lenient: got %d: %s", r.status, r.body)
	}
}

func between(s, open, close string) string {
	_, after, _ := strings.Cut(s, open)
	v, _, _ := strings.Cut(after, close)
	return v
}
