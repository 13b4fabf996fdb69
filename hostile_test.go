package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/exogate/exogate/internal/exotel"
	"github.com/exogate/exogate/internal/fakeexotel"
)

// hostileDeadline bounds every raw exchange: a server that neither answers
// nor closes within it has let a hostile client hold a connection.
const hostileDeadline = 10 * time.Second

// wire is one raw TCP connection to the gateway: bytes go out exactly as
// written, and every byte that comes back is kept.
type wire struct {
	t      *testing.T
	c      net.Conn
	raw    bytes.Buffer // every byte the server sent
	br     *bufio.Reader
	resps  []*http.Response
	bodies [][]byte
	closed bool // the server ended the connection (EOF or reset)
	err    error
}

func dialWire(t *testing.T, base string) *wire {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(hostileDeadline))
	w := &wire{t: t, c: c}
	w.br = bufio.NewReader(io.TeeReader(c, &w.raw))
	return w
}

func (w *wire) write(s string) {
	w.t.Helper()
	if _, err := io.WriteString(w.c, s); err != nil {
		w.t.Fatalf("write: %v", err)
	}
}

// next reads one response (1xx included) and its body; false when the
// connection ended or the deadline passed instead.
func (w *wire) next() bool {
	if w.err != nil {
		return false
	}
	resp, err := http.ReadResponse(w.br, nil)
	if err == nil {
		var body []byte
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		w.resps, w.bodies = append(w.resps, resp), append(w.bodies, body)
		if err == nil {
			return true
		}
	}
	w.err = err
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		w.closed = true
	case errors.As(err, &ne) && ne.Timeout():
	default:
		// Bytes that are not HTTP: keep reading to the end to see them all.
		_, rerr := io.Copy(io.Discard, w.br)
		w.closed = rerr == nil || errors.Is(rerr, syscall.ECONNRESET)
	}
	return false
}

// readAll reads responses until the server closes the connection or the
// deadline passes.
func (w *wire) readAll() {
	for w.next() {
	}
}

// final returns the last response that is not 1xx, or nil.
func (w *wire) final() (*http.Response, []byte) {
	for i := len(w.resps) - 1; i >= 0; i-- {
		if w.resps[i].StatusCode >= 200 {
			return w.resps[i], w.bodies[i]
		}
	}
	return nil, nil
}

// upstreamTotal is every request any fake Exotel host received, whole or cut off.
func upstreamTotal(farm *exotelFarm) int64 {
	var n int64
	for _, f := range farm.fakes {
		n += f.Count() + f.Aborted()
	}
	return n
}

// Exotel's error shapes, as a client would parse them.
type (
	hostileXML struct {
		XMLName       xml.Name `xml:"TwilioResponse"`
		RestException struct {
			Status  int    `xml:"Status"`
			Message string `xml:"Message"`
		} `xml:"RestException"`
	}
	hostileJSON struct {
		RestException *struct {
			Status  int    `json:"Status"`
			Message string `json:"Message"`
		} `json:"RestException"`
	}
	hostileV2 struct {
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
)

// assertGatewayError checks an answer exogate made itself: status, kind and
// Exotel's body shape.
func assertGatewayError(t *testing.T, resp *http.Response, body []byte, status int, kind string, shape exotel.Shape) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status %d, want %d; body %s", resp.StatusCode, status, body)
	}
	if got := resp.Header.Get("X-Exogate-Error"); got != kind {
		t.Errorf("X-Exogate-Error %q, want %q", got, kind)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id")
	}
	switch shape {
	case exotel.ShapeXML:
		var v hostileXML
		if err := xml.Unmarshal(body, &v); err != nil || v.RestException.Status != status || v.RestException.Message == "" {
			t.Errorf("not an Exotel XML RestException (%v): %s", err, body)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/xml" {
			t.Errorf("Content-Type %q", ct)
		}
	case exotel.ShapeJSON:
		var v hostileJSON
		if err := json.Unmarshal(body, &v); err != nil || v.RestException == nil || v.RestException.Status != status || v.RestException.Message == "" {
			t.Errorf("not an Exotel JSON RestException (%v): %s", err, body)
		}
	case exotel.ShapeV2:
		var v hostileV2
		if err := json.Unmarshal(body, &v); err != nil || v.HTTPCode != status || v.Response.Code != status ||
			v.Response.Status != "failure" || v.Response.ErrorData.Code != exotel.V2Code(status) ||
			v.Response.ErrorData.Message == "" || string(v.Response.Data) != "null" {
			t.Errorf("not an Exotel v2 envelope (%v): %s", err, body)
		}
		if v.RequestID == "" || v.RequestID != resp.Header.Get("X-Request-Id") {
			t.Errorf("request_id %q, X-Request-Id %q", v.RequestID, resp.Header.Get("X-Request-Id"))
		}
	}
	if shape != exotel.ShapeXML && !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
	}
}

// assertNoSecrets fails if any credential, plain or base64, is in raw.
func assertNoSecrets(t *testing.T, what string, raw []byte) {
	t.Helper()
	forms := []string{
		base64.StdEncoding.EncodeToString([]byte(acmeKey + ":" + acmeToken)),
		base64.StdEncoding.EncodeToString([]byte(mumKey + ":" + mumToken)),
	}
	for _, s := range secrets {
		forms = append(forms, s, base64.StdEncoding.EncodeToString([]byte(s)))
	}
	for _, f := range forms {
		if bytes.Contains(raw, []byte(f)) {
			t.Errorf("a credential (%s...) appears in %s", f[:4], what)
		}
	}
}

// hostileCase is one hostile exchange on a fresh connection.
type hostileCase struct {
	name string
	// req is written at once; drive, when set, talks to the gateway instead.
	req   string
	drive func(t *testing.T, w *wire)
	// The final answer: a gateway error (kind set, in shape), or Go's own
	// refusal (kind empty: plain text, connection closed). status 0: the
	// connection must close without any answer.
	status int
	kind   string
	shape  exotel.Shape
	// reaches, when set, checks what Exotel received; otherwise nothing may
	// reach any upstream host.
	reaches func(t *testing.T, got []fakeexotel.Request)
}

const (
	hostileV1   = "/v1/Accounts/acme/Calls/connect.json"
	hostileForm = "Content-Type: application/x-www-form-urlencoded\r\n"
)

// onlyOne checks that exactly one request reached Exotel, on server, with
// path, body and acme's credentials, reframed with a Content-Length.
func onlyOne(server, requestURI, body string) func(t *testing.T, got []fakeexotel.Request) {
	return func(t *testing.T, got []fakeexotel.Request) {
		t.Helper()
		if len(got) != 1 {
			for _, r := range got {
				t.Logf("upstream got %s %s %q on %s", r.Method, r.RequestURI, r.Body, r.Server)
			}
			t.Fatalf("upstream received %d requests, want exactly 1", len(got))
		}
		r := got[0]
		if r.Server != server || r.RequestURI != requestURI || string(r.Body) != body {
			t.Errorf("upstream got %s %q body %q on %s; want %q body %q on %s", r.Method, r.RequestURI, r.Body, r.Server, requestURI, body, server)
		}
		if a := r.Header.Values("Authorization"); len(a) != 1 || a[0] != basicOf(acmeKey, acmeToken) {
			t.Errorf("upstream Authorization is not acme's own (%d values)", len(a))
		}
		if te := r.Header.Get("Transfer-Encoding"); te != "" {
			t.Errorf("upstream saw Transfer-Encoding %q", te)
		}
	}
}

func TestHostileInput(t *testing.T) {
	t.Parallel()
	farm := newFarm(t)
	cfg := writeFile(t, "exogate.yaml", farm.config(`max_body: 1KiB
max_header_bytes: 8KiB
server: {read_header_timeout: 1s, read_timeout: 3s}
`))
	p := startBinary(t, cfg)

	big := strings.Repeat("a", 2000) // over max_body (1KiB)
	chunkedBig := fmt.Sprintf("%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n", 1000, big[:1000], 1000, big[:1000])
	// The smuggled request a CL-honouring front proxy would not see: a call
	// on the other account.
	smuggled := "POST /v1/Accounts/acme1m/Calls/connect.json HTTP/1.1\r\nHost: x\r\n" + hostileForm +
		"Content-Length: 6\r\nConnection: close\r\n\r\nFrom=2"
	clte := "6\r\nFrom=1\r\n0\r\n\r\n" + smuggled
	userinfo := acmeKey + ":" + acmeToken

	cases := []hostileCase{
		// 1. Request smuggling.
		{
			name: "smuggling/CL and TE together: TE wins, body forwarded once",
			req: "POST " + hostileV1 + " HTTP/1.1\r\nHost: x\r\n" + hostileForm +
				"Content-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n6\r\nFrom=1\r\n0\r\n\r\n",
			status:  200,
			reaches: onlyOne("singapore-api", hostileV1, "From=1"),
		},
		{
			// RFC 9112 §6.3: a server that processes a message with both
			// MUST close the connection after responding, so bytes a front
			// proxy counted as this request's body can't become a request.
			name: "smuggling/CL.TE desync: the request after the chunked body never reaches upstream",
			req: "POST " + hostileV1 + " HTTP/1.1\r\nHost: x\r\n" + hostileForm +
				"Content-Length: " + strconv.Itoa(len(clte)) + "\r\nTransfer-Encoding: chunked\r\n\r\n" + clte,
			status:  200,
			reaches: onlyOne("singapore-api", hostileV1, "From=1"),
		},
		{
			name:   "smuggling/two different Content-Length",
			req:    "POST " + hostileV1 + " HTTP/1.1\r\nHost: x\r\n" + hostileForm + "Content-Length: 6\r\nContent-Length: 12\r\n\r\nFrom=1From=2",
			status: 400,
		},
		{
			name:   "smuggling/Content-Length list",
			req:    "POST " + hostileV1 + " HTTP/1.1\r\nHost: x\r\n" + hostileForm + "Content-Length: 6, 12\r\n\r\nFrom=1From=2",
			status: 400,
		},
		{
			// RFC 9112 §6.1: an unknown transfer coding gets 501 (Go's own).
			name:   "smuggling/Transfer-Encoding chunked, identity",
			req:    "POST " + hostileV1 + " HTTP/1.1\r\nHost: x\r\n" + hostileForm + "Transfer-Encoding: chunked, identity\r\n\r\n6\r\nFrom=1\r\n0\r\n\r\n",
			status: 501,
		},
		{
			name:   "smuggling/two Transfer-Encoding headers",
			req:    "POST " + hostileV1 + " HTTP/1.1\r\nHost: x\r\n" + hostileForm + "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n6\r\nFrom=1\r\n0\r\n\r\n",
			status: 501,
		},
		{
			name:   "smuggling/space before colon in Transfer-Encoding",
			req:    "POST " + hostileV1 + " HTTP/1.1\r\nHost: x\r\n" + hostileForm + "Transfer-Encoding : chunked\r\nContent-Length: 6\r\n\r\nFrom=1",
			status: 400,
		},
		{
			// Bytes after the last chunk are never served: the gateway
			// answers a chunked request with Connection: close (RFC 9112
			// §6.3), so nothing pipelined behind it reaches Exotel.
			name: "smuggling/chunked body then a second request",
			req: "POST " + hostileV1 + " HTTP/1.1\r\nHost: x\r\n" + hostileForm + "Transfer-Encoding: chunked\r\n\r\n" +
				"6\r\nFrom=1\r\n0\r\n\r\n" +
				"POST /v1/Accounts/acme/Accounts/acme1m/Calls/connect.json HTTP/1.1\r\nHost: x\r\n" + hostileForm +
				"Content-Length: 6\r\nConnection: close\r\n\r\nFrom=2",
			status: 200,
			reaches: func(t *testing.T, got []fakeexotel.Request) {
				onlyOne("singapore-api", hostileV1, "From=1")(t, got)
				if n := len(got); n == 1 && got[0].Header.Get("Content-Length") != "" && got[0].Header.Get("Content-Length") != "6" {
					t.Errorf("upstream Content-Length %q", got[0].Header.Get("Content-Length"))
				}
			},
		},

		// 2. Sizes.
		{
			name:   "size/header block over max_header_bytes",
			req:    "GET /v1/Accounts/acme/Calls.json HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 16<<10) + "\r\n\r\n",
			status: 431,
		},
		{
			name:   "size/body over max_body by Content-Length, sent",
			req:    "POST " + hostileV1 + " HTTP/1.1\r\nHost: x\r\n" + hostileForm + "Content-Length: 2000\r\nConnection: close\r\n\r\n" + big,
			status: 413, kind: "body_too_large", shape: exotel.ShapeJSON,
		},
		{
			name:   "size/body over max_body by Content-Length, never sent",
			req:    "POST /v2/accounts/acme/calls HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n",
			status: 413, kind: "body_too_large", shape: exotel.ShapeV2,
		},
		{
			name:   "size/chunked body over max_body",
			req:    "POST /v1/Accounts/acme/Sms/send HTTP/1.1\r\nHost: x\r\n" + hostileForm + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunkedBig,
			status: 413, kind: "body_too_large", shape: exotel.ShapeXML,
		},

		// 3. Slowloris: headers trickled byte by byte never complete.
		{
			name: "slowloris/headers trickled past read_header_timeout",
			drive: func(t *testing.T, w *wire) {
				w.write("POST " + hostileV1 + " HTTP/1.1\r\nHost: x\r\nX-Slow: ")
				done := make(chan struct{})
				go func() { w.readAll(); close(done) }()
				start := time.Now()
				tick := time.NewTicker(200 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-done:
						t.Logf("connection closed %v after the first byte", time.Since(start).Round(100*time.Millisecond))
						return
					case <-tick.C:
						// Stall: one byte now and then, never the end of the headers.
						_, _ = w.c.Write([]byte("z"))
					}
				}
			},
			status: 0,
		},

		// 4. Control characters in header values.
		{
			name:   "header/bare CR in a value",
			req:    "GET /v1/Accounts/acme/Calls.json HTTP/1.1\r\nHost: x\r\nX-Foo: a\rb\r\n\r\n",
			status: 400,
		},
		{
			name:   "header/bare CR before a forged Authorization",
			req:    "GET /v1/Accounts/acme1m/Calls.json HTTP/1.1\r\nHost: x\r\nX-Foo: a\rAuthorization: " + basicOf(mumKey, "forged") + "\r\n\r\n",
			status: 400,
		},
		{
			name:   "header/NUL in a value",
			req:    "GET /v1/Accounts/acme/Calls.json HTTP/1.1\r\nHost: x\r\nX-Foo: a\x00b\r\n\r\n",
			status: 400,
		},
		{
			name:   "header/bare LF ends the request line",
			req:    "GET /v1/Accounts/acme/Calls.json HTTP/1.1\nHost: x\nX-Foo: a\rb\n\n",
			status: 400,
		},

		// 5. Paths that try to leave their account.
		{name: "path/dot dot", req: rawGet("/v1/Accounts/acme/Calls/../../acme1m/Calls.json"), status: 400, kind: "bad_request", shape: exotel.ShapeJSON},
		{name: "path/dot segment", req: rawGet("/v1/Accounts/acme/./Calls.json"), status: 400, kind: "bad_request", shape: exotel.ShapeJSON},
		{name: "path/encoded dot dot", req: rawGet("/v1/Accounts/acme/Calls/%2e%2e/%2E%2E/acme1m/Calls"), status: 400, kind: "bad_request", shape: exotel.ShapeXML},
		{name: "path/encoded slash", req: rawGet("/v1/Accounts/acme%2f..%2facme1m/Calls.json"), status: 400, kind: "bad_request", shape: exotel.ShapeJSON},
		{name: "path/encoded slash in resource", req: rawGet("/v2/accounts/acme/calls%2F..%2F..%2Facme1m%2Fcalls"), status: 400, kind: "bad_request", shape: exotel.ShapeV2},
		{name: "path/encoded NUL", req: rawGet("/v1/Accounts/acme/Calls%00.json"), status: 400, kind: "bad_request", shape: exotel.ShapeJSON},
		{name: "path/overlong UTF-8 dots", req: rawGet("/v1/Accounts/acme/%c0%ae%c0%ae/acme1m/Calls"), status: 400, kind: "bad_request", shape: exotel.ShapeXML},
		{name: "path/raw backslash", req: rawGet(`/v1/Accounts/acme/Calls\..\..\acme1m\Calls.json`), status: 400, kind: "bad_request", shape: exotel.ShapeJSON},
		{name: "path/encoded backslash", req: rawGet("/v1/Accounts/acme/Calls%5c..%5cacme1m.json"), status: 400, kind: "bad_request", shape: exotel.ShapeJSON},
		{name: "path/double-encoded dot dot", req: rawGet("/v3/accounts/acme/calls/%252e%252e/%252e%252e/acme1m/calls"), status: 400, kind: "bad_request", shape: exotel.ShapeV2},
		{name: "path/percent-encoded SID", req: rawGet("/v1/Accounts/%61cme1m/Calls.json"), status: 400, kind: "bad_request", shape: exotel.ShapeJSON},
		{name: "path/leading double slash", req: rawGet("//v1/Accounts/acme/Calls.json"), status: 400, kind: "bad_request", shape: exotel.ShapeJSON},

		// 6. A second account.
		{name: "account/second SID in the path", req: rawGet("/v1/Accounts/acme/Accounts/acme1m/Calls.json"), status: 400, kind: "bad_request", shape: exotel.ShapeJSON},
		{name: "account/second SID, encoded Accounts", req: rawGet("/v2/accounts/acme/calls/%41ccounts/acme1m"), status: 400, kind: "bad_request", shape: exotel.ShapeV2},
		{name: "account/second SID behind a matrix parameter", req: rawGet("/v1/Accounts/acme/accounts;x=1/acme1m/Calls.json"), status: 400, kind: "bad_request", shape: exotel.ShapeJSON},
		{
			// The query is forwarded byte for byte to the path's account's
			// host with that account's credentials: it cannot switch accounts.
			name:    "account/second SID in the query",
			req:     rawGet("/v1/Accounts/acme/Calls.json?AccountSid=acme1m&sid=acme1m&Sid=acme1m&next=/v1/Accounts/acme1m/Calls.json"),
			status:  200,
			reaches: onlyOne("singapore-api", "/v1/Accounts/acme/Calls.json?AccountSid=acme1m&sid=acme1m&Sid=acme1m&next=/v1/Accounts/acme1m/Calls.json", ""),
		},

		// 7. Targets that are not a path.
		{
			name:   "target/absolute-form to a foreign host",
			req:    "GET http://evil.example/v1/Accounts/acme/Calls.json HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
			status: 400, kind: "bad_request", shape: exotel.ShapeJSON,
		},
		{
			name:   "target/absolute-form https to Exotel's own host",
			req:    "GET https://api.exotel.com/v1/Accounts/acme/Calls.json HTTP/1.1\r\nHost: api.exotel.com\r\nConnection: close\r\n\r\n",
			status: 400, kind: "bad_request", shape: exotel.ShapeJSON,
		},
		{
			name:   "target/CONNECT",
			req:    "CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\nConnection: close\r\n\r\n",
			status: 405, kind: "method_not_allowed", shape: exotel.ShapeJSON,
		},
		{
			// net/http's bare 200 is disabled; "*" is not a path: 400.
			name:   "target/OPTIONS *",
			req:    "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			status: 400, kind: "bad_request", shape: exotel.ShapeJSON,
		},
		{name: "target/OPTIONS on an API path", req: rawMethod("OPTIONS", "/v2/accounts/acme/calls"), status: 405, kind: "method_not_allowed", shape: exotel.ShapeV2},
		{name: "target/TRACE", req: rawMethod("TRACE", "/v1/Accounts/acme/Calls.json"), status: 405, kind: "method_not_allowed", shape: exotel.ShapeJSON},

		// 8. Expect.
		{
			name: "expect/100-continue with Content-Length over max_body",
			drive: func(t *testing.T, w *wire) {
				w.write("POST " + hostileV1 + " HTTP/1.1\r\nHost: x\r\n" + hostileForm + "Content-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
				// The body is never sent: the answer must come without it.
				// A gateway that waited for it would be cut off by
				// read_timeout (3s) and answer a timeout, not the 413 below.
				start := time.Now()
				if !w.next() {
					t.Fatalf("no answer: %v", w.err)
				}
				if w.resps[0].StatusCode == 100 {
					t.Error("100 Continue sent for a body the gateway refuses")
				}
				w.readAll()
				t.Logf("answered at once; connection closed %v later", time.Since(start).Round(100*time.Millisecond))
			},
			status: 413, kind: "body_too_large", shape: exotel.ShapeJSON,
		},
		{
			name: "expect/100-continue with a valid body",
			drive: func(t *testing.T, w *wire) {
				w.write("POST " + hostileV1 + " HTTP/1.1\r\nHost: x\r\n" + hostileForm + "Content-Length: 6\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
				if !w.next() {
					t.Fatalf("no interim answer: %v; got %q", w.err, w.raw.String())
				}
				if w.resps[0].StatusCode != 100 {
					t.Fatalf("first answer %d, want 100 Continue", w.resps[0].StatusCode)
				}
				w.write("From=1")
				w.readAll()
			},
			status:  200,
			reaches: onlyOne("singapore-api", hostileV1, "From=1"),
		},
		{
			name:   "expect/something else",
			req:    "POST " + hostileV1 + " HTTP/1.1\r\nHost: x\r\n" + hostileForm + "Content-Length: 6\r\nExpect: something-else\r\n\r\nFrom=1",
			status: 417,
		},

		// 9. Accounts, methods, userinfo.
		{name: "refused/unknown account", req: rawGet("/v1/Accounts/stranger/Calls"), status: 404, kind: "unknown_account", shape: exotel.ShapeXML},
		{name: "refused/unknown account v2", req: rawMethod("POST", "/v2/accounts/stranger/calls"), status: 404, kind: "unknown_account", shape: exotel.ShapeV2},
		{name: "refused/unknown method BREW", req: rawMethod("BREW", "/v1/Accounts/acme/Calls.json"), status: 405, kind: "method_not_allowed", shape: exotel.ShapeJSON},
		{name: "refused/lowercase method get", req: rawMethod("get", "/v1/Accounts/acme/Calls.json"), status: 405, kind: "method_not_allowed", shape: exotel.ShapeJSON},
		{
			name:   "refused/absolute-form with userinfo",
			req:    "GET http://" + userinfo + "@api.exotel.com/v1/Accounts/acme/Calls.json HTTP/1.1\r\nHost: api.exotel.com\r\nConnection: close\r\n\r\n",
			status: 400, kind: "bad_request", shape: exotel.ShapeJSON,
		},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			farm.reset()
			if n := upstreamTotal(farm); n != 0 {
				t.Fatalf("upstream counters not reset: %d", n)
			}
			w := dialWire(t, p.base)
			if tc.drive != nil {
				tc.drive(t, w)
			} else {
				w.write(tc.req)
				w.readAll()
			}
			raw := w.raw.Bytes()
			assertNoSecrets(t, "the answer", raw)

			resp, body := w.final()
			switch {
			case tc.status == 0:
				if !w.closed {
					t.Errorf("connection still open after %v: %v", hostileDeadline, w.err)
				}
				if resp != nil && resp.StatusCode < 400 {
					t.Errorf("answered %d", resp.StatusCode)
				}
			case resp == nil:
				t.Errorf("no answer (closed %v, %v); got %q", w.closed, w.err, raw)
			case tc.kind != "":
				assertGatewayError(t, resp, body, tc.status, tc.kind, tc.shape)
			default:
				if resp.StatusCode != tc.status {
					t.Errorf("status %d, want %d; body %s", resp.StatusCode, tc.status, body)
				}
				if tc.reaches == nil && !w.closed {
					t.Errorf("connection left open after Go's own refusal: %v", w.err)
				}
			}
			if resp != nil {
				for k, vv := range resp.Header {
					assertNoSecrets(t, "header "+k, []byte(strings.Join(vv, " ")))
				}
			}

			got := farm.all()
			if tc.reaches != nil {
				tc.reaches(t, got)
			} else if n := upstreamTotal(farm); n != 0 {
				for _, r := range got {
					t.Logf("upstream got %s %s %q on %s", r.Method, r.RequestURI, r.Body, r.Server)
				}
				t.Errorf("%d requests reached Exotel, want none", n)
			}
			for _, r := range got {
				if r.Server != "singapore-api" {
					t.Errorf("a request for acme1m's host %s got through: %s %s %q", r.Server, r.Method, r.RequestURI, r.Body)
				}
			}
		})
	}

	// The userinfo case carried acme's real key and token in the request
	// line: no log line may repeat them (TestMain checks the whole suite too).
	logs := p.logs.String()
	for _, s := range []string{acmeToken, userinfo} {
		if strings.Contains(logs, s) {
			t.Error("a credential from a request's userinfo appears in the gateway's log")
		}
	}
}

// rawGet is a GET of target that asks the server to close after answering.
func rawGet(target string) string { return rawMethod("GET", target) }

func rawMethod(method, target string) string {
	return method + " " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
}
