package exotel

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"strconv"
	"strings"
	"testing"
)

// twilioResponse is the XML error body as a v1 client decodes it.
type twilioResponse struct {
	XMLName       xml.Name `xml:"TwilioResponse"`
	RestException struct {
		Status  int    `xml:"Status"`
		Message string `xml:"Message"`
	} `xml:"RestException"`
}

// restException is the JSON error body as a v1 .json or v2_beta client
// decodes it.
type restException struct {
	RestException struct {
		Status  int    `json:"Status"`
		Message string `json:"Message"`
	} `json:"RestException"`
}

// v2Envelope is the v2/v3 error body.
type v2Envelope struct {
	RequestID string `json:"request_id"`
	Method    string `json:"method"`
	HTTPCode  int    `json:"http_code"`
	Response  struct {
		Code      int `json:"code"`
		ErrorData struct {
			Code        int    `json:"code"`
			Message     string `json:"message"`
			Description string `json:"description"`
		} `json:"error_data"`
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	} `json:"response"`
}

func decodeStrict(t *testing.T, body []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	if dec.More() {
		t.Fatalf("trailing data after JSON in %s", body)
	}
}

func TestAppendError(t *testing.T) {
	messages := []struct {
		name string
		msg  string
	}{
		{"plain", "Too many requests"},
		{"markup", `Bad <input> & "quotes" and 'apostrophes'`},
		{"markup only", `<&">`},
		{"control", "line one\nline two\r\n\ttabbed\x00nul\x1f"},
		{"unicode", "नमस्ते — ₹100 \u2028 sep \U0001F4DE"},
		{"empty", ""},
	}
	statuses := []int{400, 401, 403, 404, 405, 413, 429, 502, 503, 504}
	const prefix = "prefix:"

	for _, m := range messages {
		for _, status := range statuses {
			name := m.name + "/" + strconv.Itoa(status)

			t.Run("json/"+name, func(t *testing.T) {
				body, ct := AppendError([]byte(prefix), ShapeJSON, status, m.msg, "POST", "req-1")
				if ct != "application/json" {
					t.Errorf("content type = %q", ct)
				}
				body = trimPrefix(t, body, prefix)
				var got restException
				decodeStrict(t, body, &got)
				if got.RestException.Status != status || got.RestException.Message != m.msg {
					t.Errorf("decoded %+v from %s, want status %d message %q", got, body, status, m.msg)
				}
			})

			t.Run("xml/"+name, func(t *testing.T) {
				body, ct := AppendError([]byte(prefix), ShapeXML, status, m.msg, "POST", "req-1")
				if ct != "application/xml" {
					t.Errorf("content type = %q", ct)
				}
				body = trimPrefix(t, body, prefix)
				if !bytes.HasPrefix(body, []byte("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<TwilioResponse><RestException><Status>")) {
					t.Errorf("body does not start like Exotel's: %s", body)
				}
				var got twilioResponse
				if err := xml.Unmarshal(body, &got); err != nil {
					t.Fatalf("xml.Unmarshal(%s): %v", body, err)
				}
				want := xmlSafe(m.msg)
				if got.RestException.Status != status || got.RestException.Message != want {
					t.Errorf("decoded %+v from %s, want status %d message %q", got, body, status, want)
				}
			})

			t.Run("v2/"+name, func(t *testing.T) {
				body, ct := AppendError([]byte(prefix), ShapeV2, status, m.msg, "PATCH", `req-"1"<2>`)
				if ct != "application/json" {
					t.Errorf("content type = %q", ct)
				}
				body = trimPrefix(t, body, prefix)
				var got v2Envelope
				decodeStrict(t, body, &got)
				if got.RequestID != `req-"1"<2>` || got.Method != "PATCH" || got.HTTPCode != status {
					t.Errorf("envelope %+v from %s", got, body)
				}
				r := got.Response
				if r.Code != status || r.Status != "failure" || string(r.Data) != "null" {
					t.Errorf("response %+v from %s", r, body)
				}
				if r.ErrorData.Code != V2Code(status) || r.ErrorData.Message != m.msg || r.ErrorData.Description != m.msg {
					t.Errorf("error_data %+v from %s, want code %d message %q", r.ErrorData, body, V2Code(status), m.msg)
				}
			})
		}
	}
}

// xmlSafe is what an XML parser reads back for s: characters XML cannot
// carry become U+FFFD.
func xmlSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if !xmlChar(r) {
			return '\uFFFD'
		}
		return r
	}, s)
}

func trimPrefix(t *testing.T, body []byte, prefix string) []byte {
	t.Helper()
	rest, ok := bytes.CutPrefix(body, []byte(prefix))
	if !ok {
		t.Fatalf("AppendError lost dst: %q", body)
	}
	return rest
}

func TestAppendErrorExact(t *testing.T) {
	for _, tc := range []struct {
		name  string
		shape Shape
		want  string
		ct    string
	}{
		{
			"json", ShapeJSON,
			`{"RestException":{"Status":429,"Message":"Slow \u003cdown\u003e \u0026 \"wait\""}}`,
			"application/json",
		},
		{
			"xml", ShapeXML,
			"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<TwilioResponse><RestException><Status>429</Status>" +
				"<Message>Slow &lt;down&gt; &amp; &#34;wait&#34;</Message></RestException></TwilioResponse>",
			"application/xml",
		},
		{
			"v2", ShapeV2,
			`{"request_id":"r1","method":"POST","http_code":429,"response":{"code":429,"error_data":` +
				`{"code":10724,"message":"Slow \u003cdown\u003e \u0026 \"wait\"","description":"Slow \u003cdown\u003e \u0026 \"wait\""},` +
				`"status":"failure","data":null}}`,
			"application/json",
		},
		{
			"unknown shape is json", Shape(9),
			`{"RestException":{"Status":429,"Message":"Slow \u003cdown\u003e \u0026 \"wait\""}}`,
			"application/json",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, ct := AppendError(nil, tc.shape, 429, `Slow <down> & "wait"`, "POST", "r1")
			if string(body) != tc.want || ct != tc.ct {
				t.Errorf("AppendError = %s, %q\nwant         %s, %q", body, ct, tc.want, tc.ct)
			}
		})
	}
}

func TestAppendErrorInvalidUTF8(t *testing.T) {
	const msg = "bad \xff byte"
	for _, tc := range []struct {
		name  string
		shape Shape
	}{
		{"json", ShapeJSON},
		{"xml", ShapeXML},
		{"v2", ShapeV2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, _ := AppendError(nil, tc.shape, 400, msg, "GET", "r")
			if !bytes.Contains(body, []byte("bad \uFFFD byte")) && !bytes.Contains(body, []byte(`bad \ufffd byte`)) {
				t.Errorf("invalid UTF-8 not replaced: %q", body)
			}
		})
	}
}

func TestV2Code(t *testing.T) {
	for _, tc := range []struct {
		status, want int
	}{
		{400, 1001},
		{401, 1010},
		{403, 1003},
		{404, 1000},
		{415, 1011},
		{429, 10724},
		{405, 405},
		{413, 413},
		{500, 500},
		{502, 502},
		{503, 503},
		{504, 504},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			if got := V2Code(tc.status); got != tc.want {
				t.Errorf("V2Code(%d) = %d, want %d", tc.status, got, tc.want)
			}
		})
	}
}

func BenchmarkAppendError(b *testing.B) {
	for _, tc := range []struct {
		name  string
		shape Shape
	}{
		{"json", ShapeJSON},
		{"xml", ShapeXML},
		{"v2", ShapeV2},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, 512)
			for b.Loop() {
				buf, _ = AppendError(buf[:0], tc.shape, 429, "Rate limit exceeded for account <exotel> & bucket \"sms\"", "POST", "0123456789abcdef")
			}
		})
	}
}
