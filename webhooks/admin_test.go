package webhooks

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func (e *env) admin(method, target, body string) (int, string) {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	w := httptest.NewRecorder()
	e.svc.Admin().ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

// TestReplayFromDead: a message dead after 410 is listed (without its
// body), replayed, and delivered under the same webhook-id.
func TestReplayFromDead(t *testing.T) {
	e := newEnv(t, nil)
	e.target.answer(func(n int, w http.ResponseWriter) {
		if n == 1 {
			w.WriteHeader(http.StatusGone)
		}
	})
	e.post("sms", formType, smsForm)
	e.deliverDue("sms")
	dead := e.only("sms", StateDead)
	first := e.target.wait(t)

	code, body := e.admin("GET", "/webhooks/messages?route=sms&state=dead", "")
	if code != 200 || !strings.Contains(body, dead.ID) || strings.Contains(body, "09876543210") || strings.Contains(body, "DELIVERED") {
		t.Fatalf("list: %d %s", code, body)
	}
	var list struct{ Messages []messageView }
	if err := json.Unmarshal([]byte(body), &list); err != nil || len(list.Messages) != 1 ||
		list.Messages[0].Size != len(smsForm) || list.Messages[0].LastError != "410 Gone" {
		t.Fatalf("list %+v, %v", list, err)
	}
	code, body = e.admin("GET", "/webhooks", "")
	if code != 200 || !strings.Contains(body, `"sms":{"pending":0,"delivered":0,"dead":1`) {
		t.Fatalf("stats: %d %s", code, body)
	}

	code, body = e.admin("POST", "/webhooks/replay", `{"route":"sms","id":"`+dead.ID+`"}`)
	if code != 200 || strings.TrimSpace(body) != `{"replayed":1}` {
		t.Fatalf("replay: %d %s", code, body)
	}
	e.deliverDue("sms")
	again := e.target.wait(t)
	if again.header.Get("webhook-id") != first.header.Get("webhook-id") || again.header.Get("webhook-id") != dead.ID {
		t.Fatal("a replay changed the webhook-id")
	}
	e.only("sms", StateDelivered)

	// Every dead message of a route at once.
	e.target.answer(func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusGone) })
	e.post("calls", formType, callForm)
	e.post("calls", formType, "CallSid=other1&Status=failed")
	e.deliverDue("calls")
	e.target.answer(nil)
	code, body = e.admin("POST", "/webhooks/replay", `{"route":"calls","state":"dead"}`)
	if code != 200 || strings.TrimSpace(body) != `{"replayed":2}` {
		t.Fatalf("replay state: %d %s", code, body)
	}
	if n := e.deliverDue("calls"); n != 2 {
		t.Fatalf("%d due after replay", n)
	}
}

func TestAdminRefusals(t *testing.T) {
	e := newEnv(t, nil)
	for _, tt := range []struct {
		method, target, body string
		code                 int
	}{
		{"GET", "/webhooks/messages?state=lost", "", 400},
		{"GET", "/webhooks/messages?state=dead&limit=0", "", 400},
		{"POST", "/webhooks/replay", `{"route":"calls"}`, 400},
		{"POST", "/webhooks/replay", `{"id":"msg_x"}`, 400},
		{"POST", "/webhooks/replay", `{"route":"calls","state":"pending"}`, 400},
		{"POST", "/webhooks/replay", `{"route":"calls","id":"msg_x","extra":1}`, 400},
		{"POST", "/webhooks/replay", `{"route":"calls","id":"msg_nope"}`, 404},
		{"DELETE", "/webhooks", "", 405},
	} {
		if code, body := e.admin(tt.method, tt.target, tt.body); code != tt.code {
			t.Errorf("%s %s %s: %d %s, want %d", tt.method, tt.target, tt.body, code, body, tt.code)
		}
	}
}

// TestOldestPendingAge: GET /webhooks reports how long the oldest pending
// callback has waited.
func TestOldestPendingAge(t *testing.T) {
	e := newEnv(t, nil)
	e.post("calls", formType, callForm)
	e.advance(90 * time.Second)
	code, body := e.admin("GET", "/webhooks", "")
	if code != 200 || !strings.Contains(body, `"calls":{"pending":1,"delivered":0,"dead":0,"oldest_pending_age_seconds":90}`) {
		t.Fatalf("%d %s", code, body)
	}
}
