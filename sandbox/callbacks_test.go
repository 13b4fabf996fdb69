package sandbox

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestOutcomeRule(t *testing.T) {
	rc := newReceiver(t)
	h := newHarness(t, Config{})
	want := []struct {
		status   string
		duration int
	}{
		{"completed", 30}, {"completed", 30}, {"completed", 30}, {"completed", 30}, {"completed", 30},
		{"busy", 0}, {"no-answer", 0}, {"failed", 0}, {"canceled", 0}, {"completed", 300},
	}
	for digit, w := range want {
		t.Run(strconv.Itoa(digit), func(t *testing.T) {
			rc.mu.Lock()
			rc.got = nil
			rc.mu.Unlock()
			form := connectForm("0900000000" + strconv.Itoa(digit))
			form.Set("StatusCallback", rc.srv.URL+"/cb")
			sid := obj(t, decode(t, h.do(t, http.MethodPost, "/v1/Accounts/acme/Calls/connect.json", form)), "Call", "Sid").(string)
			cb := rc.wait(t, 1)[0]
			if got := cb.fields.Get("Status"); got != w.status || cb.fields.Get("CallSid") != sid {
				t.Errorf("callback Status %q for %s, want %q", got, cb.fields.Get("CallSid"), w.status)
			}
			c := obj(t, decode(t, h.do(t, http.MethodGet, "/v1/Accounts/acme/Calls/"+sid+".json", nil)), "Call").(map[string]any)
			if c["Status"] != w.status || c["Duration"] != float64(w.duration) || c["EndTime"] == nil {
				t.Errorf("stored call %v, want %s after %ds", c, w.status, w.duration)
			}
			if answered := w.duration > 0; answered != (c["Price"] != nil) {
				t.Errorf("Price %v for %s", c["Price"], w.status)
			}
		})
	}
	if got := callOutcome("+91 (0) 80-4711"); got.status != "completed" {
		t.Errorf("trailing 1 with punctuation: %v", got)
	}
	if got := callOutcome("sip:alice"); got.status != "completed" || got.duration != 30 {
		t.Errorf("no digit: %v", got)
	}
}

func TestCallCallbackDefault(t *testing.T) {
	rc := newReceiver(t)
	h := newHarness(t, Config{})
	form := connectForm("09000000005")
	form.Set("StatusCallback", rc.srv.URL)
	h.do(t, http.MethodPost, "/v1/Accounts/acme/Calls/connect", form)
	cb := rc.wait(t, 1)[0]
	if !strings.HasPrefix(cb.contentType, "multipart/form-data; boundary=") {
		t.Errorf("Content-Type %q", cb.contentType)
	}
	if len(cb.fields) != 4 || cb.fields.Get("Status") != "busy" || cb.fields.Get("DateUpdated") == "" || !cb.fields.Has("RecordingUrl") {
		t.Errorf("fields %v", cb.fields)
	}
}

func TestCallCallbackEvents(t *testing.T) {
	rc := newReceiver(t)
	h := newHarness(t, Config{})
	form := connectForm("09000000009")
	form.Set("StatusCallback", rc.srv.URL)
	form["StatusCallbackEvents[]"] = []string{"terminal", "answered"}
	form.Set("CustomField", "order-42")
	sid := obj(t, decode(t, h.do(t, http.MethodPost, "/v1/Accounts/acme/Calls/connect.json", form)), "Call", "Sid").(string)
	got := rc.wait(t, 2)
	if len(got) != 2 {
		t.Fatalf("%d callbacks", len(got))
	}
	answered, terminal := got[0].fields, got[1].fields
	if answered.Get("EventType") != "answered" || answered.Get("Status") != "in-progress" || answered.Get("ConversationDuration") != "0" {
		t.Errorf("answered event %v", answered)
	}
	want := map[string]string{
		"CallSid": sid, "EventType": "terminal", "Status": "completed", "To": "09000000009", "From": "09876543210",
		"PhoneNumberSid": "08047112233", "ConversationDuration": "300", "Direction": "outbound-api",
		"CustomField": "order-42", "Legs[0][Status]": "completed", "Legs[1][OnCallDuration]": "300",
	}
	for k, v := range want {
		if terminal.Get(k) != v {
			t.Errorf("terminal %s = %q, want %q", k, terminal.Get(k), v)
		}
	}
	for _, k := range []string{"DateCreated", "DateUpdated", "StartTime", "EndTime"} {
		if terminal.Get(k) == "" {
			t.Errorf("terminal has no %s", k)
		}
	}
	if _, err := time.Parse(timeLayout, terminal.Get("EndTime")); err != nil {
		t.Errorf("EndTime %q: %v", terminal.Get("EndTime"), err)
	}
	// Time is compressed, never ahead: the call ended when its callback
	// was made, whatever the conversation's Duration says.
	if s := terminal.Get("StartTime"); terminal.Get("EndTime") > terminal.Get("DateUpdated") || terminal.Get("EndTime") < s {
		t.Errorf("StartTime %s, EndTime %s, DateUpdated %s: the call ends after its callback, or before it started",
			s, terminal.Get("EndTime"), terminal.Get("DateUpdated"))
	}

	t.Run("not answered sends no answered event", func(t *testing.T) {
		rc2 := newReceiver(t)
		form := connectForm("09000000006")
		form.Set("StatusCallback", rc2.srv.URL)
		form["StatusCallbackEvents[0]"] = []string{"answered"}
		form["StatusCallbackEvents[1]"] = []string{"terminal"}
		h.do(t, http.MethodPost, "/v1/Accounts/acme/Calls/connect.json", form)
		got := rc2.wait(t, 1)
		// The terminal event is the last callback a call sends: once it is
		// in, none other is on its way.
		if len(got) != 1 || got[0].fields.Get("EventType") != "terminal" || got[0].fields.Get("Status") != "no-answer" {
			t.Errorf("callbacks %v", got)
		}
	})
}

func TestCallCallbackJSON(t *testing.T) {
	rc := newReceiver(t)
	h := newHarness(t, Config{})
	form := connectForm("09000000001")
	form.Set("StatusCallback", rc.srv.URL)
	form.Set("StatusCallbackContentType", "application/json")
	form["StatusCallbackEvents[]"] = []string{"terminal"}
	h.do(t, http.MethodPost, "/v1/Accounts/acme/Calls/connect.json", form)
	cb := rc.wait(t, 1)[0]
	if cb.contentType != "application/json" || cb.json == nil {
		t.Fatalf("Content-Type %q, body %v", cb.contentType, cb.json)
	}
	if cb.json["Status"] != "completed" || cb.json["EventType"] != "terminal" || cb.json["ConversationDuration"] != float64(30) {
		t.Errorf("body %v", cb.json)
	}
	legs, _ := cb.json["Legs"].([]any)
	if len(legs) != 2 || obj(t, legs[0], "Status") != "completed" || obj(t, legs[0], "OnCallDuration") != float64(30) {
		t.Errorf("Legs %v", cb.json["Legs"])
	}
}

func TestCloseStopsPendingCallbacks(t *testing.T) {
	rc := newReceiver(t)
	h := newHarness(t, Config{Ring: time.Hour})
	form := connectForm("09000000001")
	form.Set("StatusCallback", rc.srv.URL)
	h.do(t, http.MethodPost, "/v1/Accounts/acme/Calls/connect.json", form)
	h.sim.Close() // returns without waiting for the ring
	h.do(t, http.MethodPost, "/v1/Accounts/acme/Calls/connect.json", form)
	h.sim.Close()
	if got := rc.callbacks(); len(got) != 0 {
		t.Errorf("callbacks after Close: %v", got)
	}
}
