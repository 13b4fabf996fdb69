package webhooks

import (
	"bytes"
	"errors"
	"mime/multipart"
	"net/url"
	"testing"
)

// multipartBody encodes fields as Exotel's default call callback does.
func multipartBody(t testing.TB, fields [][2]string) (string, []byte) {
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for _, f := range fields {
		if err := w.WriteField(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	return w.FormDataContentType(), b.Bytes()
}

const (
	callSid = "b6cfaf5f5ae3b7a9e7c1e0a1b2c3d4e5"
	smsSid  = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
)

var (
	callJSON = `{"CallSid":"` + callSid + `","Status":"completed","RecordingUrl":"https://recordings.exotel.com/x.mp3",` +
		`"DateUpdated":"2026-12-05 08:00:00","EventType":"terminal","To":"09876543210","From":"08012345678",` +
		`"ConversationDuration":42,"Legs":[{"OnCallDuration":40,"Status":"completed"}]}`
	callForm = url.Values{"CallSid": {callSid}, "Status": {"busy"}, "RecordingUrl": {""},
		"DateUpdated": {"2026-12-05 08:00:00"}}.Encode()
	smsForm = url.Values{"SmsSid": {smsSid}, "To": {"09876543210"}, "Status": {"sent"}, "SmsUnits": {"1"},
		"DetailedStatus": {"DELIVERED_TO_HANDSET"}, "DetailedStatusCode": {"20005"},
		"DateSent": {"2026-12-05 08:00:00"}, "CustomField": {"order-17"}}.Encode()
)

const formType = "application/x-www-form-urlencoded"

func TestParseCallback(t *testing.T) {
	mpType, mpBody := multipartBody(t, [][2]string{{"CallSid", callSid}, {"Status", "no-answer"},
		{"RecordingUrl", ""}, {"DateUpdated", "2026-12-05 08:00:00"}})
	answeredType, answeredBody := multipartBody(t, [][2]string{{"CallSid", callSid}, {"Status", "in-progress"},
		{"EventType", "answered"}})
	tests := []struct {
		name       string
		kind       Kind
		ct, body   string
		want       Callback
		wantErr    bool
		wantKeyEnd string
	}{
		{name: "call multipart", kind: KindCall, ct: mpType, body: string(mpBody),
			want: Callback{Kind: KindCall, Sid: callSid, Status: "no-answer"}, wantKeyEnd: "|no-answer|terminal"},
		{name: "call answered", kind: KindCall, ct: answeredType, body: string(answeredBody),
			want: Callback{Kind: KindCall, Sid: callSid, Status: "in-progress", EventType: "answered"}, wantKeyEnd: "|in-progress|answered"},
		{name: "call json", kind: KindCall, ct: "application/json; charset=utf-8", body: callJSON,
			want: Callback{Kind: KindCall, Sid: callSid, Status: "completed", EventType: "terminal"}, wantKeyEnd: "|completed|terminal"},
		{name: "call urlencoded", kind: KindCall, ct: formType, body: callForm,
			want: Callback{Kind: KindCall, Sid: callSid, Status: "busy"}, wantKeyEnd: "|busy|terminal"},
		{name: "sms urlencoded", kind: KindSMS, ct: formType, body: smsForm,
			want: Callback{Kind: KindSMS, Sid: smsSid, Status: "sent", DetailedStatusCode: "20005"}, wantKeyEnd: "|sent|20005"},
		{name: "sms json number code", kind: KindSMS, ct: "application/json",
			body: `{"SmsSid":"` + smsSid + `","Status":"failed","DetailedStatusCode":20003}`,
			want: Callback{Kind: KindSMS, Sid: smsSid, Status: "failed", DetailedStatusCode: "20003"}, wantKeyEnd: "|failed|20003"},
		{name: "sms sent to a call route", kind: KindCall, ct: formType, body: smsForm, wantErr: true},
		{name: "call sent to an sms route", kind: KindSMS, ct: formType, body: callForm, wantErr: true},
		{name: "unknown status", kind: KindCall, ct: formType, body: "CallSid=" + callSid + "&Status=exploded", wantErr: true},
		{name: "no status", kind: KindCall, ct: formType, body: "CallSid=" + callSid, wantErr: true},
		{name: "unknown event", kind: KindCall, ct: formType, body: "CallSid=" + callSid + "&Status=completed&EventType=x", wantErr: true},
		{name: "sid with separator", kind: KindCall, ct: formType, body: "CallSid=a%7Cb&Status=completed", wantErr: true},
		{name: "code with separator", kind: KindSMS, ct: formType, body: "SmsSid=" + smsSid + "&Status=sent&DetailedStatusCode=1%7C2", wantErr: true},
		{name: "no content type", kind: KindCall, ct: "", body: callForm, wantErr: true},
		{name: "text", kind: KindCall, ct: "text/plain", body: callForm, wantErr: true},
		{name: "multipart without boundary", kind: KindCall, ct: "multipart/form-data", body: string(mpBody), wantErr: true},
		{name: "multipart wrong boundary", kind: KindCall, ct: "multipart/form-data; boundary=nope", body: string(mpBody), wantErr: true},
		{name: "json array", kind: KindCall, ct: "application/json", body: `[1,2]`, wantErr: true},
		{name: "json sid not a string", kind: KindCall, ct: "application/json", body: `{"CallSid":{"a":1},"Status":"completed"}`, wantErr: true},
		{name: "bad urlencoding", kind: KindCall, ct: formType, body: "CallSid=%zz&Status=completed", wantErr: true},
		{name: "unknown kind", kind: "fax", ct: formType, body: callForm, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCallback(tt.kind, tt.ct, []byte(tt.body))
			if tt.wantErr {
				if !errors.Is(err, ErrPayload) {
					t.Fatalf("ParseCallback = %+v, %v; want an ErrPayload", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseCallback = %+v, %v; want %+v", got, err, tt.want)
			}
			if key := got.DedupeKey("r"); key != "r|"+string(tt.kind)+"|"+tt.want.Sid+tt.wantKeyEnd {
				t.Fatalf("DedupeKey = %q", key)
			}
		})
	}
}

// TestDedupeKeyTerminal checks that Exotel's default terminal callback
// (no EventType) and one that names the event share a key.
func TestDedupeKeyTerminal(t *testing.T) {
	a := Callback{Kind: KindCall, Sid: callSid, Status: "completed"}
	b := Callback{Kind: KindCall, Sid: callSid, Status: "completed", EventType: "terminal"}
	if a.DedupeKey("calls") != b.DedupeKey("calls") || !a.Terminal() || !b.Terminal() {
		t.Fatalf("keys %q and %q", a.DedupeKey("calls"), b.DedupeKey("calls"))
	}
	c := Callback{Kind: KindCall, Sid: callSid, Status: "in-progress", EventType: "answered"}
	if c.Terminal() || c.DedupeKey("calls") == a.DedupeKey("calls") {
		t.Fatal("an answered callback taken for the terminal one")
	}
}

func FuzzParseCallback(f *testing.F) {
	mpType, mpBody := multipartBody(f, [][2]string{{"CallSid", callSid}, {"Status", "completed"},
		{"RecordingUrl", "https://recordings.exotel.com/x.mp3"}, {"DateUpdated", "2026-12-05 08:00:00"},
		{"EventType", "terminal"}, {"Legs[0][Status]", "completed"}})
	f.Add("call", mpType, mpBody)
	f.Add("call", "application/json", []byte(callJSON))
	f.Add("call", formType, []byte(callForm))
	f.Add("sms", formType, []byte(smsForm))
	f.Add("sms", "application/json", []byte(`{"SmsSid":"x","Status":"sent","DetailedStatusCode":20005}`))
	f.Add("call", "multipart/form-data; boundary=x", []byte("--x\r\nContent-Disposition: form-data; name=\"CallSid\"\r\n\r\nab\r\n--x--\r\n"))
	f.Fuzz(func(t *testing.T, kind, ct string, body []byte) {
		c, err := ParseCallback(Kind(kind), ct, body)
		if err != nil {
			if !errors.Is(err, ErrPayload) {
				t.Fatalf("error %v does not wrap ErrPayload", err)
			}
			return
		}
		if c.Kind != Kind(kind) || !validSid(c.Sid) {
			t.Fatalf("accepted %+v", c)
		}
		known := callStatuses
		if c.Kind == KindSMS {
			known = smsStatuses
		}
		if _, ok := known[c.Status]; !ok {
			t.Fatalf("accepted status %q", c.Status)
		}
		again, err := ParseCallback(Kind(kind), ct, body)
		if err != nil || again != c {
			t.Fatalf("second parse %+v, %v", again, err)
		}
	})
}
