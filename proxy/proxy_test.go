package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"

	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/exogate/exogate/credentials"
	"github.com/exogate/exogate/internal/callers"
	"github.com/exogate/exogate/internal/exotel"
	"github.com/exogate/exogate/internal/fakeexotel"
	"github.com/exogate/exogate/internal/testutil"
)

const (
	testKey   = "f81f2a5027e1463d812c4d2b36ea2d7a"
	testToken = "9c3e8a1b4f6d2e0a7c5b3d9f1e8a2c4d"
	mumKey    = "0123456789abcdef0123456789abcdef01234567"
	mumToken  = "fedcba9876543210fedcba9876543210fedcba98"
)

// fakeLimiter is a Limiter and Pauser made of function fields.
type fakeLimiter struct {
	admit     func(ctx context.Context, account, bucket string) (time.Duration, error)
	pause     func(account, bucket string, d time.Duration) time.Duration
	succeeded func(account, bucket string)
}

var (
	_ Limiter = (*fakeLimiter)(nil)
	_ Pauser  = (*fakeLimiter)(nil)
)

func (f *fakeLimiter) Admit(ctx context.Context, account, bucket string) (time.Duration, error) {
	return f.admit(ctx, account, bucket)
}

func (f *fakeLimiter) Pause(account, bucket string, d time.Duration) time.Duration {
	if f.pause == nil {
		return d
	}
	return f.pause(account, bucket, d)
}

func (f *fakeLimiter) Succeeded(account, bucket string) {
	if f.succeeded != nil {
		f.succeeded(account, bucket)
	}
}

type limited struct{ d time.Duration }

func (l limited) Error() string             { return "limited" }
func (l limited) RetryAfter() time.Duration { return l.d }

// rig is a gateway in front of four fake Exotel hosts: api and ccm of
// Singapore (account "acme") and Mumbai (account "acme1m").
type rig struct {
	t       *testing.T
	fakes   map[string]*fakeexotel.Server // by name: singapore-api ...
	servers map[string]*httptest.Server
	handler *Handler
	front   *httptest.Server
	logs    *testutil.SyncBuffer
	limiter *fakeLimiter
}

func newRig(t *testing.T, mod func(*Config)) *rig {
	t.Helper()
	r := &rig{t: t, fakes: map[string]*fakeexotel.Server{}, servers: map[string]*httptest.Server{}, logs: &testutil.SyncBuffer{}}
	pool := []*httptest.Server{}
	for _, name := range []string{"singapore-api", "singapore-ccm", "mumbai-api", "mumbai-ccm"} {
		f := fakeexotel.New(name,
			fakeexotel.Account{SID: "acme", Key: testKey, Token: testToken},
			fakeexotel.Account{SID: "acme1m", Key: mumKey, Token: mumToken})
		s := httptest.NewTLSServer(f)
		t.Cleanup(s.Close)
		r.fakes[name], r.servers[name] = f, s
		pool = append(pool, s)
	}
	// Trust the fakes' certificate the way upstream.ca_file would.
	tr := exogateTransport(t, pool[0])

	env := map[string]string{"A_KEY": testKey, "A_TOKEN": testToken, "M_KEY": mumKey, "M_TOKEN": mumToken}
	store, err := credentials.NewStore([]credentials.Spec{
		{Account: "acme", Source: "env", APIKeyEnv: "A_KEY", APITokenEnv: "A_TOKEN"},
		{Account: "acme1m", Source: "env", APIKeyEnv: "M_KEY", APITokenEnv: "M_TOKEN"},
	}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	u := func(name string) *url.URL {
		p, _ := url.Parse(r.servers[name].URL)
		return p
	}
	r.limiter = &fakeLimiter{admit: func(context.Context, string, string) (time.Duration, error) { return 0, nil }}
	cfg := Config{
		Accounts: []Account{
			{SID: "acme", API: u("singapore-api"), CCM: u("singapore-ccm")},
			{SID: "ACME1m", API: u("mumbai-api"), CCM: u("mumbai-ccm")},
		},
		Authorizer: store,
		Limiter:    r.limiter,
		Transport:  tr,
		Logger:     zerolog.New(r.logs),
	}
	if mod != nil {
		mod(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.handler = h
	r.front = httptest.NewServer(h)
	t.Cleanup(r.front.Close)
	return r
}

// rootsOf returns the pool that trusts an httptest TLS server.
func rootsOf(s *httptest.Server) *x509.CertPool {
	return s.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
}

// exogateTransport is the upstream transport as exogate builds it
// (internal/gateway's newTransport): Go's http.Transport, HTTP/1.1 only,
// here trusting s.
func exogateTransport(t *testing.T, s *httptest.Server) *http.Transport {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	tr := &http.Transport{Protocols: &protocols, TLSClientConfig: &tls.Config{RootCAs: rootsOf(s)}}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// withUpstream runs fn on a rig whose acme api upstream is s, reached
// through the upstream transport changed by mod.
func withUpstream(t *testing.T, s *httptest.Server, mod func(*http.Transport), fn func(t *testing.T, r *rig)) {
	withUpstreamConfig(t, s, mod, nil, fn)
}

func (r *rig) total() int64 {
	var n int64
	for _, f := range r.fakes {
		n += f.Count()
	}
	return n
}

// only returns the single request the fakes received, and which fake.
func (r *rig) only() fakeexotel.Request {
	r.t.Helper()
	var got []fakeexotel.Request
	for _, f := range r.fakes {
		got = append(got, f.Requests()...)
	}
	if len(got) != 1 {
		r.t.Fatalf("upstream received %d requests, want 1: %+v", len(got), got)
	}
	return got[0]
}

func (r *rig) reset() {
	for _, f := range r.fakes {
		f.Reset()
	}
}

func (r *rig) do(req *http.Request) (*http.Response, []byte) {
	r.t.Helper()
	resp, err := r.front.Client().Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatal(err)
	}
	return resp, body
}

// raw sends bytes on a fresh connection and returns the response.
func (r *rig) raw(request string) (*http.Response, []byte) {
	r.t.Helper()
	conn, err := net.Dial("tcp", r.front.Listener.Addr().String())
	if err != nil {
		r.t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, request); err != nil {
		r.t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func basic(key, token string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(key+":"+token))
}

func TestRouting(t *testing.T) {
	r := newRig(t, nil)
	tests := []struct {
		name, method, path string
		server             string
		key, token         string
	}{
		{"v1 calls connect json", "POST", "/v1/Accounts/acme/Calls/connect.json", "singapore-api", testKey, testToken},
		{"v1 calls connect xml", "POST", "/v1/Accounts/acme/Calls/connect", "singapore-api", testKey, testToken},
		{"v1 call details", "GET", "/v1/Accounts/acme/Calls/abc123.json", "singapore-api", testKey, testToken},
		{"v1 calls listing upper-case sid", "GET", "/v1/Accounts/ACME/Calls.json?PageSize=10&To=%2B919876543210", "singapore-api", testKey, testToken},
		{"v1 double slash", "POST", "/v1/Accounts/acme//Calls/connect.json", "singapore-api", testKey, testToken},
		{"v1 sms send", "POST", "/v1/Accounts/acme/Sms/send.json", "singapore-api", testKey, testToken},
		{"v1 SMS details", "GET", "/v1/Accounts/acme/SMS/Messages/sms1.json", "singapore-api", testKey, testToken},
		{"v1 numbers", "GET", "/v1/Accounts/acme/Numbers/%2B919876543210", "singapore-api", testKey, testToken},
		{"v2 calls ccm", "POST", "/v2/accounts/acme/calls", "singapore-ccm", testKey, testToken},
		{"v2 users ccm", "GET", "/v2/accounts/acme/users", "singapore-ccm", testKey, testToken},
		{"v3 calls ccm", "GET", "/v3/accounts/acme/calls/c1/legs", "singapore-ccm", testKey, testToken},
		{"v2 whatsapp api", "POST", "/v2/accounts/acme/messages", "singapore-api", testKey, testToken},
		{"v2 campaigns api", "GET", "/v2/accounts/acme/campaigns", "singapore-api", testKey, testToken},
		{"v2_beta exophones", "GET", "/v2_beta/Accounts/acme/IncomingPhoneNumbers", "singapore-api", testKey, testToken},
		{"mumbai v1", "POST", "/v1/Accounts/acme1m/Calls/connect.json", "mumbai-api", mumKey, mumToken},
		{"mumbai v2 ccm", "POST", "/v2/accounts/acme1m/calls", "mumbai-ccm", mumKey, mumToken},
		{"mumbai v2 whatsapp", "POST", "/v2/accounts/ACME1M/messages", "mumbai-api", mumKey, mumToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r.reset()
			req, _ := http.NewRequest(tc.method, r.front.URL+tc.path, nil)
			resp, _ := r.do(req)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200 (%s)", resp.StatusCode, resp.Header.Get(HeaderError))
			}
			got := r.only()
			if got.Server != tc.server {
				t.Errorf("reached %s, want %s", got.Server, tc.server)
			}
			if got.RequestURI != tc.path {
				t.Errorf("upstream path %q, want byte-identical %q", got.RequestURI, tc.path)
			}
			wantHost := strings.TrimPrefix(r.servers[tc.server].URL, "https://")
			if got.Host != wantHost {
				t.Errorf("upstream Host %q, want %q", got.Host, wantHost)
			}
			if a := got.Header.Values("Authorization"); len(a) != 1 || a[0] != basic(tc.key, tc.token) {
				t.Errorf("upstream Authorization %q, want Basic of the account's key:token", a)
			}
		})
	}
}

func TestClientAuthIsReplaced(t *testing.T) {
	r := newRig(t, nil)
	for name, hdr := range map[string][]string{
		"none":          nil,
		"stale key":     {basic(testKey, "oldtoken")},
		"legacy sid":    {basic("acme", testToken)},
		"bearer":        {"Bearer abc.def.ghi"},
		"junk":          {"!!!"},
		"two headers":   {basic("a", "b"), basic("c", "d")},
		"proxy auth":    nil,
		"idempotency":   nil,
		"forwarded for": nil,
	} {
		t.Run(name, func(t *testing.T) {
			r.reset()
			req, _ := http.NewRequest("POST", r.front.URL+"/v1/Accounts/acme/Sms/send.json", strings.NewReader("From=1&To=2&Body=hi"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for _, v := range hdr {
				req.Header.Add("Authorization", v)
			}
			req.Header.Set("Proxy-Authorization", basic("p", "q"))
			req.Header.Set("Idempotency-Key", "k1")
			req.Header.Set("X-Idempotency-Key", "k2")
			req.Header.Set("X-Forwarded-For", "10.1.2.3")
			req.Header.Set("Forwarded", "for=10.1.2.3")
			req.Header.Set("X-Real-Ip", "10.1.2.3")
			resp, _ := r.do(req)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			got := r.only()
			if a := got.Header.Values("Authorization"); len(a) != 1 || a[0] != basic(testKey, testToken) {
				t.Errorf("Authorization %q", a)
			}
			for _, h := range []string{"Proxy-Authorization", "Idempotency-Key", "X-Idempotency-Key", "X-Forwarded-For", "Forwarded", "X-Real-Ip", "X-Forwarded-Host", "X-Forwarded-Proto"} {
				if v := got.Header.Values(h); len(v) > 0 {
					t.Errorf("%s forwarded upstream: %q", h, v)
				}
			}
		})
	}
}

func TestURLUserinfoNeverForwarded(t *testing.T) {
	r := newRig(t, nil)
	// A client using the seed's "credentials in the URL" approach: its HTTP
	// library turns the userinfo into an Authorization header.
	u := strings.Replace(r.front.URL, "http://", "http://olduser:oldtoken@", 1)
	req, _ := http.NewRequest("GET", u+"/v1/Accounts/acme/Calls.json", nil)
	resp, _ := r.do(req)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := r.only()
	if a := got.Header.Values("Authorization"); len(a) != 1 || a[0] != basic(testKey, testToken) {
		t.Errorf("Authorization %q", a)
	}
}

func TestBodiesForwardedByteForByte(t *testing.T) {
	r := newRig(t, nil)
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	_ = mw.WriteField("From", "09876543210")
	_ = mw.WriteField("Messages[0][To]", "+919876543210")
	fw, _ := mw.CreateFormFile("file", "a.csv")
	_, _ = fw.Write([]byte("to,body\n1,\x00\xff binary"))
	_ = mw.Close()

	tests := []struct {
		name, path, ctype, query string
		body                     []byte
		chunked                  bool
	}{
		{"form", "/v1/Accounts/acme/Calls/connect.json", "application/x-www-form-urlencoded", "", []byte("From=0999&To=0888&CallerId=0777&StatusCallbackEvents%5B%5D=terminal&StatusCallbackEvents[]=answered&CustomField=a%20b%2Bc"), false},
		{"multipart", "/v1/Accounts/acme/Sms/bulksend.json", mw.FormDataContentType(), "", mp.Bytes(), false},
		{"json", "/v2/accounts/acme/calls", "application/json", "", []byte(`{"from":{"contact_uri":"+91999"},"to":{"contact_uri":"+91888"},"virtual_number":"080"}`), false},
		{"json chunked", "/v2/accounts/acme/messages", "application/json", "", []byte(`{"whatsapp":{"messages":[{"from":"x","to":"y"}]}}`), true},
		{"query only", "/v1/Accounts/acme/Calls/connect.json", "", "From=0999&To=0888&CallerId=0777&x=%26%3D", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r.reset()
			target := r.front.URL + tc.path
			if tc.query != "" {
				target += "?" + tc.query
			}
			var body io.Reader = http.NoBody
			if tc.body != nil {
				body = bytes.NewReader(tc.body)
				if tc.chunked {
					body = io.MultiReader(bytes.NewReader(tc.body)) // unknown length: chunked
				}
			}
			req, _ := http.NewRequest("POST", target, body)
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			resp, _ := r.do(req)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			got := r.only()
			if !bytes.Equal(got.Body, tc.body) {
				t.Errorf("body changed:\n got %q\nwant %q", got.Body, tc.body)
			}
			wantURI := tc.path
			if tc.query != "" {
				wantURI += "?" + tc.query
			}
			if got.RequestURI != wantURI {
				t.Errorf("URI %q, want %q", got.RequestURI, wantURI)
			}
			if got.Header.Get("Content-Type") != tc.ctype {
				t.Errorf("Content-Type %q, want %q", got.Header.Get("Content-Type"), tc.ctype)
			}
		})
	}
}

// exotelError decodes a gateway error body in the shape it claims.
type v1JSON struct {
	RestException struct {
		Status  int
		Message string
	}
}

type v1XML struct {
	XMLName       xml.Name `xml:"TwilioResponse"`
	RestException struct {
		Status  int
		Message string
	}
}

type v2Envelope struct {
	RequestID string `json:"request_id"`
	Method    string `json:"method"`
	HTTPCode  int    `json:"http_code"`
	Response  struct {
		Code      int `json:"code"`
		ErrorData struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error_data"`
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	} `json:"response"`
}

// assertShape checks that body is an Exotel error of the given shape and
// status, and returns its message.
func assertShape(t *testing.T, resp *http.Response, body []byte, shape exotel.Shape, status int, kind string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, body)
	}
	if got := resp.Header.Get(HeaderError); got != kind {
		t.Errorf("%s = %q, want %q", HeaderError, got, kind)
	}
	switch shape {
	case exotel.ShapeXML:
		var v v1XML
		if err := xml.Unmarshal(body, &v); err != nil || v.RestException.Status != status || v.RestException.Message == "" {
			t.Errorf("not an Exotel XML RestException (%v): %s", err, body)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/xml" {
			t.Errorf("Content-Type %q", ct)
		}
	case exotel.ShapeJSON:
		var v v1JSON
		if err := json.Unmarshal(body, &v); err != nil || v.RestException.Status != status || v.RestException.Message == "" {
			t.Errorf("not an Exotel JSON RestException (%v): %s", err, body)
		}
	case exotel.ShapeV2:
		var v v2Envelope
		if err := json.Unmarshal(body, &v); err != nil || v.HTTPCode != status || v.Response.Code != status ||
			v.Response.Status != "failure" || v.Response.ErrorData.Code != exotel.V2Code(status) ||
			v.Response.ErrorData.Message == "" || v.RequestID == "" || string(v.Response.Data) != "null" {
			t.Errorf("not an Exotel v2 envelope (%v): %s", err, body)
		}
		if v.RequestID != resp.Header.Get("X-Request-Id") {
			t.Errorf("request_id %q, X-Request-Id %q", v.RequestID, resp.Header.Get("X-Request-Id"))
		}
	}
}

func TestRefusedRequestsNeverReachUpstream(t *testing.T) {
	r := newRig(t, nil)
	tests := []struct {
		name, method, path string
		status             int
		kind               string
		shape              exotel.Shape
	}{
		{"unknown account xml", "GET", "/v1/Accounts/evil/Calls", 404, KindUnknownAccount, exotel.ShapeXML},
		{"unknown account json", "GET", "/v1/Accounts/evil/Calls.json", 404, KindUnknownAccount, exotel.ShapeJSON},
		{"unknown account v2", "POST", "/v2/accounts/evil/calls", 404, KindUnknownAccount, exotel.ShapeV2},
		{"unknown account v2_beta", "GET", "/v2_beta/Accounts/evil/IncomingPhoneNumbers", 404, KindUnknownAccount, exotel.ShapeJSON},
		{"outside families", "GET", "/v1/Accounts/acme/Secrets.json", 404, KindNotFound, exotel.ShapeJSON},
		{"root", "GET", "/", 404, KindNotFound, exotel.ShapeJSON},
		{"other version", "GET", "/v9/accounts/acme/calls", 404, KindNotFound, exotel.ShapeJSON},
		{"dot dot", "GET", "/v1/Accounts/acme/Calls/../../evil/Calls.json", 400, KindBadRequest, exotel.ShapeJSON},
		{"encoded dot dot", "GET", "/v1/Accounts/acme/Calls/%2e%2e/%2E%2E/evil/Calls.json", 400, KindBadRequest, exotel.ShapeJSON},
		{"encoded slash", "GET", "/v1/Accounts/acme%2F..%2Fevil/Calls.json", 400, KindBadRequest, exotel.ShapeJSON},
		{"encoded nul", "GET", "/v1/Accounts/acme/Calls%00.json", 400, KindBadRequest, exotel.ShapeJSON},
		{"overlong utf8 dot", "GET", "/v1/Accounts/acme/%c0%ae%c0%ae/Calls.json", 400, KindBadRequest, exotel.ShapeJSON},
		{"second account", "GET", "/v1/Accounts/acme/Accounts/evil/Calls.json", 400, KindBadRequest, exotel.ShapeJSON},
		{"leading double slash", "GET", "//v1/Accounts/acme/Calls.json", 400, KindBadRequest, exotel.ShapeJSON},
		{"trace", "TRACE", "/v1/Accounts/acme/Calls.json", 405, KindMethodNotAllowed, exotel.ShapeJSON},
		{"options v2", "OPTIONS", "/v2/accounts/acme/calls", 405, KindMethodNotAllowed, exotel.ShapeV2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r.reset()
			resp, body := r.raw(tc.method + " " + tc.path + " HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
			assertShape(t, resp, body, tc.shape, tc.status, tc.kind)
			if n := r.total(); n != 0 {
				t.Errorf("upstream received %d requests", n)
			}
		})
	}
	t.Run("absolute-form", func(t *testing.T) {
		r.reset()
		resp, body := r.raw("GET https://api.exotel.com/v1/Accounts/acme/Calls.json HTTP/1.1\r\nHost: api.exotel.com\r\nConnection: close\r\n\r\n")
		assertShape(t, resp, body, exotel.ShapeJSON, 400, KindBadRequest)
		if r.total() != 0 {
			t.Error("absolute-form request reached upstream")
		}
	})
	t.Run("connect", func(t *testing.T) {
		r.reset()
		resp, body := r.raw("CONNECT api.exotel.com:443 HTTP/1.1\r\nHost: api.exotel.com:443\r\n\r\n")
		assertShape(t, resp, body, exotel.ShapeJSON, 405, KindMethodNotAllowed)
		if r.total() != 0 {
			t.Error("CONNECT reached upstream")
		}
	})
	t.Run("inbound host plays no part", func(t *testing.T) {
		r.reset()
		resp, _ := r.raw("GET /v1/Accounts/acme/Calls.json HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if got := r.only(); got.Server != "singapore-api" || got.Host == "evil.example" {
			t.Errorf("routed to %s with Host %q", got.Server, got.Host)
		}
	})
}

func TestBodyTooLarge(t *testing.T) {
	r := newRig(t, func(c *Config) { c.MaxBody = 64 })
	t.Run("content-length", func(t *testing.T) {
		r.reset()
		req, _ := http.NewRequest("POST", r.front.URL+"/v1/Accounts/acme/Sms/send.json", strings.NewReader(strings.Repeat("a", 65)))
		resp, body := r.do(req)
		assertShape(t, resp, body, exotel.ShapeJSON, 413, KindBodyTooLarge)
		if r.total() != 0 {
			t.Error("oversized body reached upstream")
		}
		if !strings.Contains(string(body), "at most 64 bytes (max_body)") {
			t.Errorf("the message does not say the limit: %s", body)
		}
	})
	t.Run("chunked", func(t *testing.T) {
		r.reset()
		req, _ := http.NewRequest("POST", r.front.URL+"/v2/accounts/acme/calls", io.MultiReader(strings.NewReader(strings.Repeat("a", 200))))
		resp, body := r.do(req)
		assertShape(t, resp, body, exotel.ShapeV2, 413, KindBodyTooLarge)
		// Read whole before anything is sent: not a byte reaches Exotel.
		var aborted int64
		for _, f := range r.fakes {
			aborted += f.Aborted()
		}
		if n := r.total(); n != 0 || aborted != 0 {
			t.Errorf("upstream received %d complete and %d cut-off requests", n, aborted)
		}
	})
	t.Run("exactly max", func(t *testing.T) {
		r.reset()
		req, _ := http.NewRequest("POST", r.front.URL+"/v2/accounts/acme/calls", io.MultiReader(strings.NewReader(strings.Repeat("a", 64))))
		resp, _ := r.do(req)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if got := r.only(); len(got.Body) != 64 {
			t.Errorf("body %d bytes", len(got.Body))
		}
	})
}

func TestRateLimited(t *testing.T) {
	r := newRig(t, nil)
	var gotAccount, gotBucket string
	r.limiter.admit = func(_ context.Context, account, bucket string) (time.Duration, error) {
		gotAccount, gotBucket = account, bucket
		return 0, fmt.Errorf("wrapped: %w", limited{2500 * time.Millisecond})
	}
	for _, tc := range []struct {
		path   string
		shape  exotel.Shape
		bucket string
	}{
		{"/v1/Accounts/ACME/Sms/send", exotel.ShapeXML, "sms"},
		{"/v1/Accounts/acme/Calls/connect.json", exotel.ShapeJSON, "voice_v1"},
		{"/v2/accounts/acme/calls", exotel.ShapeV2, "voice_v2"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			r.reset()
			req, _ := http.NewRequest("POST", r.front.URL+tc.path, strings.NewReader("a=b"))
			resp, body := r.do(req)
			assertShape(t, resp, body, tc.shape, 429, KindRateLimited)
			if ra := resp.Header.Get("Retry-After"); ra != "3" {
				t.Errorf("Retry-After %q, want 3 (2.5s rounded up)", ra)
			}
			if gotAccount != "acme" || gotBucket != tc.bucket {
				t.Errorf("limiter asked for %s/%s, want acme/%s", gotAccount, gotBucket, tc.bucket)
			}
			if r.total() != 0 {
				t.Error("rate-limited request reached upstream")
			}
		})
	}
}

func TestBreakerOpensOnUpstream5xxAndNotOn4xx(t *testing.T) {
	r := newRig(t, func(c *Config) {
		c.Breaker = BreakerSettings{ConsecutiveFailures: 3, OpenFor: time.Hour}
	})
	api := r.fakes["singapore-api"]
	send := func(path string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", r.front.URL+path, nil)
		return r.do(req)
	}

	// 4xx, Exotel's 401 and 429 included, never trip it.
	api.SetOverride(func(fakeexotel.Request) (int, string, bool) { return 429, "", true })
	for i := 0; i < 10; i++ {
		resp, _ := send("/v1/Accounts/acme/Calls.json")
		if resp.StatusCode != 429 || resp.Header.Get(HeaderError) != "" {
			t.Fatalf("Exotel's 429 not passed through untouched: %d %q", resp.StatusCode, resp.Header.Get(HeaderError))
		}
	}
	if st, _ := r.handler.BreakerState("acme", exotel.HostAPI); st.String() != "closed" {
		t.Fatalf("breaker %s after 4xx", st)
	}

	api.SetOverride(func(fakeexotel.Request) (int, string, bool) { return 500, "", true })
	for i := 0; i < 3; i++ {
		resp, body := send("/v1/Accounts/acme/Calls.json")
		if resp.StatusCode != 500 || resp.Header.Get(HeaderError) != "" {
			t.Fatalf("Exotel's 500 not passed through: %d %s", resp.StatusCode, body)
		}
	}
	before := api.Count()
	resp, body := send("/v1/Accounts/acme/Calls.json")
	assertShape(t, resp, body, exotel.ShapeJSON, 503, KindCircuitOpen)
	ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	if ra < 3590 || ra > 3600 {
		t.Errorf("Retry-After %q, want about an hour", resp.Header.Get("Retry-After"))
	}
	if api.Count() != before {
		t.Error("open breaker let a request through")
	}
	// Per account and host: the ccm host and the other account still flow.
	if resp, _ := send("/v2/accounts/acme/calls"); resp.StatusCode != 200 {
		t.Errorf("ccm host affected by the api host's breaker: %d", resp.StatusCode)
	}
	if resp, _ := send("/v1/Accounts/acme1m/Calls.json"); resp.StatusCode != 200 {
		t.Errorf("other account affected: %d", resp.StatusCode)
	}
}

func TestUpstreamUnreachable(t *testing.T) {
	r := newRig(t, nil)
	dead := r.servers["singapore-ccm"]
	dead.Close()
	req, _ := http.NewRequest("POST", r.front.URL+"/v2/accounts/acme/calls", strings.NewReader("{}"))
	resp, body := r.do(req)
	assertShape(t, resp, body, exotel.ShapeV2, 502, KindUpstreamUnreachable)
	if !strings.Contains(r.logs.String(), `"cause":"`) {
		t.Errorf("access line does not say why the upstream failed: %s", r.logs.String())
	}
}

func TestUpstreamTimeout(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	defer slow.Close()
	defer close(release)
	withUpstream(t, slow, headerTimeout(50*time.Millisecond), func(t *testing.T, r *rig) {
		req, _ := http.NewRequest("GET", r.front.URL+"/v1/Accounts/acme/Calls", nil)
		resp, body := r.do(req)
		assertShape(t, resp, body, exotel.ShapeXML, 504, KindUpstreamTimeout)
	})
}

// A POST must never be sent twice, even when the client marks it with an
// idempotency key and the kept-alive connection breaks under it.
func TestPostNeverReplayedOnBrokenConnection(t *testing.T) {
	var mu sync.Mutex
	posts, seenKey := 0, false
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			mu.Lock()
			posts++
			seenKey = seenKey || r.Header.Get("Idempotency-Key") != "" || r.Header.Get("X-Idempotency-Key") != ""
			mu.Unlock()
			// Read the request, then drop the connection without answering:
			// to the transport this looks like a stale keep-alive connection.
			_, _ = io.ReadAll(r.Body)
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		_, _ = io.WriteString(w, `{"Calls":[]}`)
	}))
	srv.StartTLS()
	defer srv.Close()
	withUpstream(t, srv, nil, func(t *testing.T, r *rig) {
		postOnBrokenConnection(t, r, &mu, &posts, &seenKey)
	})
}

func postOnBrokenConnection(t *testing.T, r *rig, mu *sync.Mutex, posts *int, seenKey *bool) {
	for _, body := range []io.Reader{nil, strings.NewReader("From=1&To=2")} {
		// Warm a keep-alive connection so the POST rides a reused one.
		get, _ := http.NewRequest("GET", r.front.URL+"/v1/Accounts/acme/Calls.json", nil)
		if resp, _ := r.do(get); resp.StatusCode != 200 {
			t.Fatalf("warm-up status %d", resp.StatusCode)
		}
		mu.Lock()
		before := *posts
		mu.Unlock()
		req, _ := http.NewRequest("POST", r.front.URL+"/v1/Accounts/acme/Calls/connect.json", body)
		req.Header.Set("Idempotency-Key", "abc")
		req.Header.Set("X-Idempotency-Key", "abc")
		resp, b := r.do(req)
		// Exotel read the whole POST and said nothing: it may have acted.
		assertShape(t, resp, b, exotel.ShapeJSON, 502, KindUpstreamOutcomeUnknown)
		mu.Lock()
		if *posts-before != 1 {
			t.Errorf("upstream received the POST %d times, want exactly 1", *posts-before)
		}
		if *seenKey {
			t.Error("idempotency header forwarded upstream")
		}
		mu.Unlock()
	}
}

func TestHealthAndReadiness(t *testing.T) {
	r := newRig(t, nil)
	get := func(path string) int {
		req, _ := http.NewRequest("GET", r.front.URL+path, nil)
		resp, _ := r.do(req)
		return resp.StatusCode
	}
	if c := get("/healthz"); c != 200 {
		t.Errorf("/healthz %d", c)
	}
	if c := get("/readyz"); c != 200 {
		t.Errorf("/readyz %d", c)
	}
	r.handler.SetDraining()
	if c := get("/readyz"); c != 503 {
		t.Errorf("/readyz while draining %d, want 503", c)
	}
	if c := get("/healthz"); c != 200 {
		t.Errorf("/healthz while draining %d", c)
	}
	if c := get("/v1/Accounts/acme/Calls.json"); c != 200 {
		t.Errorf("requests must still be served while draining: %d", c)
	}
	if r.total() != 1 {
		t.Errorf("health checks reached upstream: %d", r.total())
	}
	for _, line := range strings.Split(r.logs.String(), "\n") {
		if strings.Contains(line, "/readyz") && !strings.Contains(line, `"level":"debug"`) {
			t.Errorf("probe logged above debug level: %s", line)
		}
	}
}

func TestAccessLog(t *testing.T) {
	r := newRig(t, nil)
	req, _ := http.NewRequest("POST", r.front.URL+"/v1/Accounts/acme/Calls/connect.json?From=09999999999&To=08888888888&Flag", strings.NewReader("From=0977777777"))
	req.Header.Set("Authorization", basic("clientkey", "clientsecret"))
	resp, _ := r.do(req)
	if resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	req, _ = http.NewRequest("GET", r.front.URL+"/v1/Accounts/nope/Calls.json", nil)
	r.do(req)

	lines := strings.Split(strings.TrimSpace(r.logs.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one access line per request, got %d: %s", len(lines), r.logs.String())
	}
	var ok, refused map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &ok); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal([]byte(lines[1]), &refused)
	want := map[string]any{"method": "POST", "status": float64(200), "account": "acme", "family": "v1", "bucket": "voice_v1", "operation": "calls.connect",
		"path": "/v1/Accounts/acme/Calls/connect.json?From=*&To=*&Flag", "breaker": "closed"}
	for k, v := range want {
		if ok[k] != v {
			t.Errorf("log %s = %v, want %v", k, ok[k], v)
		}
	}
	if ok["request_id"] == "" || ok["request_id"] != resp.Header.Get("X-Request-Id") {
		t.Errorf("request_id %v, header %q", ok["request_id"], resp.Header.Get("X-Request-Id"))
	}
	if _, has := ok["duration_ms"]; !has {
		t.Error("no duration")
	}
	if refused["error"] != KindUnknownAccount || refused["status"] != float64(404) {
		t.Errorf("refused line %v", refused)
	}
	all := r.logs.String()
	for _, secret := range []string{testKey, testToken, "09999999999", "0977777777", "clientsecret", base64.StdEncoding.EncodeToString([]byte("clientkey:clientsecret")), basic(testKey, testToken)[6:]} {
		if strings.Contains(all, secret) {
			t.Errorf("log contains %q", secret)
		}
	}
}

func TestRedactURI(t *testing.T) {
	for in, want := range map[string]string{
		"/v1/Accounts/a/Calls.json":          "/v1/Accounts/a/Calls.json",
		"/p?a=1&b=2":                         "/p?a=*&b=*",
		"/p?a&b=":                            "/p?a&b=*",
		"/p?":                                "/p?",
		"http://k:t@h/p?a=1":                 "[not a path]",
		"/p?To=%2B91&StatusCallbackEvents[]": "/p?To=*&StatusCallbackEvents[]",
	} {
		if got := redactURI(in); got != want {
			t.Errorf("redactURI(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	store, _ := credentials.NewStore(nil, func(string) string { return "" })
	good, _ := url.Parse("https://api.exotel.com")
	for name, cfg := range map[string]Config{
		"no authorizer": {Accounts: []Account{{SID: "a", API: good, CCM: good}}},
		"duplicate sid": {Authorizer: store, Accounts: []Account{{SID: "a", API: good, CCM: good}, {SID: "A", API: good, CCM: good}}},
		"missing host":  {Authorizer: store, Accounts: []Account{{SID: "a", API: good}}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(cfg); err == nil {
				t.Error("New accepted a bad config")
			}
		})
	}
}

// rotatingAuthorizer is an Authorizer and Reauthorizer made of function
// fields, standing in for a credentials store whose token was rotated.
type rotatingAuthorizer struct {
	authorize   func(h http.Header, account string) (string, error)
	reauthorize func(ctx context.Context, h http.Header, account, rejected string) bool
}

var (
	_ Authorizer   = (*rotatingAuthorizer)(nil)
	_ Reauthorizer = (*rotatingAuthorizer)(nil)
)

func (a *rotatingAuthorizer) Authorize(h http.Header, account string) (string, error) {
	return a.authorize(h, account)
}
func (a *rotatingAuthorizer) Ready() bool { return true }
func (a *rotatingAuthorizer) Reauthorize(ctx context.Context, h http.Header, account, rejected string) bool {
	return a.reauthorize(ctx, h, account, rejected)
}

func TestReplayAfterExotel401(t *testing.T) {
	var mu sync.Mutex
	offerNew, reauths := true, 0
	var rejectedSeen string
	auth := &rotatingAuthorizer{
		authorize: func(h http.Header, _ string) (string, error) {
			h.Set("Authorization", basic(testKey, "old-token"))
			return "v1", nil
		},
		reauthorize: func(_ context.Context, h http.Header, _ string, rejected string) bool {
			mu.Lock()
			defer mu.Unlock()
			reauths++
			rejectedSeen = rejected
			if !offerNew {
				return false
			}
			h.Set("Authorization", basic(testKey, testToken))
			return true
		},
	}
	r := newRig(t, func(c *Config) { c.Authorizer = auth })

	for _, tc := range []struct {
		name, method, path string
		body               []byte
		chunked            bool
	}{
		{"get", "GET", "/v1/Accounts/acme/Calls.json", nil, false},
		{"form post", "POST", "/v1/Accounts/acme/Calls/connect.json", []byte("From=0999&To=0888&CallerId=0777"), false},
		{"chunked json post", "POST", "/v2/accounts/acme/calls", []byte(`{"from":{"contact_uri":"+91999"}}`), true},
		{"query-only post", "POST", "/v1/Accounts/acme/Sms/send.json?From=1&To=2&Body=x", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r.reset()
			var body io.Reader
			if tc.body != nil {
				body = bytes.NewReader(tc.body)
				if tc.chunked {
					body = io.MultiReader(body)
				}
			}
			req, _ := http.NewRequest(tc.method, r.front.URL+tc.path, body)
			resp, got := r.do(req)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, got)
			}
			var reqs []fakeexotel.Request
			for _, f := range r.fakes {
				reqs = append(reqs, f.Requests()...)
			}
			if len(reqs) != 2 {
				t.Fatalf("Exotel saw %d requests, want the refused one and its replay", len(reqs))
			}
			for i, rq := range reqs {
				if !bytes.Equal(rq.Body, tc.body) || rq.RequestURI != tc.path {
					t.Errorf("attempt %d: %q %q, want %q %q", i, rq.RequestURI, rq.Body, tc.path, tc.body)
				}
			}
			if a := reqs[1].Header.Get("Authorization"); a != basic(testKey, testToken) {
				t.Errorf("replay carried %q", a)
			}
			mu.Lock()
			if rejectedSeen != "v1" {
				t.Errorf("Reauthorize told the rejected version %q", rejectedSeen)
			}
			mu.Unlock()
		})
	}

	t.Run("nothing newer: Exotel's 401 passes through", func(t *testing.T) {
		r.reset()
		mu.Lock()
		offerNew = false
		mu.Unlock()
		req, _ := http.NewRequest("POST", r.front.URL+"/v1/Accounts/acme/Calls/connect.json", strings.NewReader("From=1"))
		resp, body := r.do(req)
		if resp.StatusCode != 401 || resp.Header.Get(HeaderError) != "" || !strings.Contains(string(body), "Authentication failed") {
			t.Errorf("%d %q %s", resp.StatusCode, resp.Header.Get(HeaderError), body)
		}
		if n := r.total(); n != 1 {
			t.Errorf("Exotel saw %d requests", n)
		}
	})

	t.Run("a replay is tried once only", func(t *testing.T) {
		r.reset()
		mu.Lock()
		offerNew, reauths = true, 0
		mu.Unlock()
		r.fakes["singapore-api"].SetAccount(fakeexotel.Account{SID: "acme", Key: testKey, Token: "neither"})
		defer r.fakes["singapore-api"].SetAccount(fakeexotel.Account{SID: "acme", Key: testKey, Token: testToken})
		req, _ := http.NewRequest("GET", r.front.URL+"/v1/Accounts/acme/Calls.json", nil)
		resp, _ := r.do(req)
		if resp.StatusCode != 401 {
			t.Errorf("status %d", resp.StatusCode)
		}
		mu.Lock()
		defer mu.Unlock()
		if n := r.total(); n != 2 || reauths != 1 {
			t.Errorf("Exotel saw %d requests after %d reauthorizations; want 2 after 1", n, reauths)
		}
	})
}

func TestExotel429PausesTheBucketAndRetriesOnce(t *testing.T) {
	r := newRig(t, func(c *Config) { c.RetryWait = 2 * time.Second })
	var mu sync.Mutex
	var pauses []string
	admits, successes := 0, 0
	r.limiter.admit = func(_ context.Context, account, bucket string) (time.Duration, error) {
		mu.Lock()
		admits++
		mu.Unlock()
		return 0, nil
	}
	r.limiter.pause = func(account, bucket string, d time.Duration) time.Duration {
		mu.Lock()
		defer mu.Unlock()
		pauses = append(pauses, fmt.Sprintf("%s/%s/%s", account, bucket, d))
		if d == 0 {
			return time.Second // the limiter's own backoff
		}
		return d
	}
	r.limiter.succeeded = func(string, string) {
		mu.Lock()
		successes++
		mu.Unlock()
	}
	api := r.fakes["singapore-api"]
	for _, tc := range []struct {
		name       string
		retryAfter string // what Exotel sends
		wantPause  string
		wantStatus int
		wantExotel int
		everyTime  bool
	}{
		{"retry-after within the caller's wait", "1", "acme/sms/1s", 200, 2, false},
		{"no retry-after: backoff", "", "acme/sms/0s", 200, 2, false},
		{"retry-after too long: Exotel's 429 passed on", "30", "acme/sms/30s", 429, 1, false},
		{"second 429 is passed on", "1", "acme/sms/1s", 429, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r.reset()
			mu.Lock()
			pauses, admits, successes = nil, 0, 0
			mu.Unlock()
			n := 0
			api.SetOverride(func(fakeexotel.Request) (int, string, bool) {
				n++
				if n == 1 || tc.everyTime {
					return 429, `{"RestException":{"Status":429,"Message":"Too Many Requests"}}`, true
				}
				return 0, "", false
			})
			if tc.retryAfter != "" {
				api.SetHeader("Retry-After", tc.retryAfter)
			} else {
				api.SetHeader("Retry-After", "")
			}
			defer api.SetOverride(nil)
			req, _ := http.NewRequest("POST", r.front.URL+"/v1/Accounts/acme/Sms/send.json", strings.NewReader("From=1&To=2&Body=hi"))
			resp, body := r.do(req)
			if resp.StatusCode != tc.wantStatus || resp.Header.Get(HeaderError) != "" {
				t.Fatalf("status %d %q: %s", resp.StatusCode, resp.Header.Get(HeaderError), body)
			}
			if tc.wantStatus == 429 && !strings.Contains(string(body), "Too Many Requests") {
				t.Errorf("Exotel's 429 body not passed on: %s", body)
			}
			got := api.Requests()
			if len(got) != tc.wantExotel {
				t.Fatalf("Exotel saw %d requests, want %d", len(got), tc.wantExotel)
			}
			for _, g := range got {
				if string(g.Body) != "From=1&To=2&Body=hi" {
					t.Errorf("body %q", g.Body)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(pauses) == 0 || pauses[0] != tc.wantPause {
				t.Errorf("pauses %v, want first %s", pauses, tc.wantPause)
			}
			if tc.wantExotel == 2 && admits != 2 {
				t.Errorf("%d admissions, want 2: the replay must take a token of its own", admits)
			}
			if tc.wantStatus == 200 && successes != 1 {
				t.Errorf("%d successes reported", successes)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"5":                             5 * time.Second,
		" 12 ":                          12 * time.Second,
		"0":                             0,
		"-3":                            0,
		"junk":                          0,
		"999999":                        0,
		"Fri, 27 Nov 2026 12:00:30 GMT": 30 * time.Second,
		"Fri, 27 Nov 2026 11:59:00 GMT": 0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

// Exotel's answer breaking off mid-body: the client's connection is cut, and
// the access line and ReverseProxy's own message still land in the
// structured log.
func TestUpstreamBodyBreaksOff(t *testing.T) {
	broken := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(200)
		_, _ = io.WriteString(w, `{"Calls":[`)
		w.(http.Flusher).Flush()
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	}))
	defer broken.Close()
	withUpstream(t, broken, nil, func(t *testing.T, r *rig) {
		upstreamBodyBreaksOff(t, r)
	})
}

func upstreamBodyBreaksOff(t *testing.T, r *rig) {
	resp, err := r.front.Client().Get(r.front.URL + "/v1/Accounts/acme/Calls.json")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Error("the client got a complete answer from a broken upstream body")
	}
	waitUntil(t, func() bool { return strings.Contains(r.logs.String(), `"message":"request"`) })
	logs := r.logs.String()
	if !strings.Contains(logs, `"error":"upstream_unreachable"`) || !strings.Contains(logs, `"component":"proxy"`) {
		t.Errorf("log: %s", logs)
	}
}

// waitUntil polls cond for up to 10s.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, "condition not met", cond)
}

// An account whose credentials are not loaded yet (Vault still down at
// start-up) is answered 503 credentials_unavailable; nothing goes upstream.
func TestCredentialsUnavailable(t *testing.T) {
	auth := &rotatingAuthorizer{
		authorize: func(h http.Header, _ string) (string, error) {
			delete(h, "Authorization")
			return "", credentials.ErrUnavailable
		},
		reauthorize: func(context.Context, http.Header, string, string) bool { return false },
	}
	r := newRig(t, func(c *Config) { c.Authorizer = auth })
	req, _ := http.NewRequest("POST", r.front.URL+"/v2/accounts/acme/calls", strings.NewReader("{}"))
	resp, body := r.do(req)
	assertShape(t, resp, body, exotel.ShapeV2, 503, KindCredentialsUnavailable)
	if resp.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	if n := r.total(); n != 0 {
		t.Errorf("%d requests went upstream without credentials", n)
	}
}

// Exotel's side closes a keep-alive connection that sat idle (its own idle
// timeout, over TLS): the next call, a POST, goes out on a new connection,
// succeeds, and is placed exactly once, with either upstream client.
func TestUpstreamClosesIdleConnection(t *testing.T) {
	fake := fakeexotel.New("idle", fakeexotel.Account{SID: "acme", Key: testKey, Token: testToken})
	srv := httptest.NewUnstartedServer(fake)
	srv.Config.IdleTimeout = 20 * time.Millisecond
	srv.StartTLS()
	defer srv.Close()
	// The transport closes a connection once it has seen the server close
	// it (and marked it unusable first): count those closes, so that the
	// POST below is sent after the gateway knows, not in the instant
	// between Exotel's close and the gateway noticing it.
	var dropped atomic.Int32
	noticeCloses := func(tr *http.Transport) {
		var d net.Dialer
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &closeNotingConn{Conn: c, closed: &dropped}, nil
		}
	}
	withUpstream(t, srv, noticeCloses, func(t *testing.T, r *rig) {
		fake.Reset()
		before := dropped.Load()
		get, _ := http.NewRequest("GET", r.front.URL+"/v1/Accounts/acme/Calls.json", nil)
		if resp, _ := r.do(get); resp.StatusCode != 200 {
			t.Fatalf("first call: %d", resp.StatusCode)
		}
		waitUntil(t, func() bool { return dropped.Load() > before })
		post, _ := http.NewRequest("POST", r.front.URL+"/v1/Accounts/acme/Calls/connect.json", strings.NewReader("From=1&To=2"))
		post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if resp, body := r.do(post); resp.StatusCode != 200 {
			t.Fatalf("POST after Exotel closed the idle connection: %d %s", resp.StatusCode, body)
		}
		posts := 0
		for _, q := range fake.Requests() {
			if q.Method == "POST" {
				posts++
			}
		}
		if posts != 1 {
			t.Errorf("Exotel received the POST %d times, want 1", posts)
		}
	})
}

// closeNotingConn counts its Close calls.
type closeNotingConn struct {
	net.Conn
	closed *atomic.Int32
	once   sync.Once
}

func (c *closeNotingConn) Close() error {
	c.once.Do(func() { c.closed.Add(1) })
	return c.Conn.Close()
}

type fakeClientLimiter struct {
	admit func(ctx context.Context, client, account, bucket string) (time.Duration, error)
}

func (f *fakeClientLimiter) Admit(ctx context.Context, client, account, bucket string) (time.Duration, error) {
	return f.admit(ctx, client, account, bucket)
}

// A client with its own cap queues twice, for the cap and then for the
// account: both lines share one MaxWait, and running out of it at the
// account's line is a 429 with Retry-After, not an upstream timeout.
func TestClientAndAccountLinesShareMaxWait(t *testing.T) {
	const maxWait = 2 * time.Second
	cs, err := callers.New(callers.Config{
		Clients:        []callers.ClientConfig{{ID: "app", SecretSHA256: callers.HashSecret("app-secret"), Rights: callers.Rights{Accounts: []string{"*"}}}},
		AllowAnonymous: true, Anonymous: &callers.Rights{Accounts: []string{"*"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var clientCalls atomic.Int32
	r := newRig(t, func(c *Config) {
		c.Callers = cs
		c.MaxWait = maxWait
		c.ClientLimiter = &fakeClientLimiter{admit: func(ctx context.Context, client, account, bucket string) (time.Duration, error) {
			clientCalls.Add(1)
			return 1500 * time.Millisecond, nil // as if it had queued for its cap
		}}
	})
	type seen struct {
		deadline time.Time
		ok       bool
	}
	got := make(chan seen, 1)
	var exhaust atomic.Bool
	r.limiter.admit = func(ctx context.Context, account, bucket string) (time.Duration, error) {
		d, ok := ctx.Deadline()
		got <- seen{d, ok}
		if exhaust.Load() {
			return 0, context.DeadlineExceeded
		}
		return 0, nil
	}
	call := func(auth string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", r.front.URL+"/v1/Accounts/acme/Calls.json", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		return r.do(req)
	}
	app := "Basic " + base64.StdEncoding.EncodeToString([]byte("app:app-secret"))

	before := time.Now()
	if resp, body := call(app); resp.StatusCode != 200 {
		t.Fatalf("capped client: %d %s", resp.StatusCode, body)
	}
	s := <-got
	if !s.ok || s.deadline.Before(before) || s.deadline.After(time.Now().Add(maxWait)) {
		t.Errorf("account line's deadline %v (set %v), want within MaxWait of the request", s.deadline, s.ok)
	}
	if clientCalls.Load() != 1 {
		t.Errorf("client limiter asked %d times", clientCalls.Load())
	}

	exhaust.Store(true)
	resp, body := call(app)
	<-got
	assertShape(t, resp, body, exotel.ShapeJSON, 429, KindRateLimited)
	if resp.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After on a used-up wait")
	}

	// An anonymous caller has no cap: its one line keeps the limiter's own
	// bound and no deadline is imposed.
	exhaust.Store(false)
	if resp, body := call(""); resp.StatusCode != 200 {
		t.Fatalf("anonymous: %d %s", resp.StatusCode, body)
	}
	if s := <-got; s.ok {
		t.Errorf("anonymous caller's line got a deadline %v", s.deadline)
	}
}
