package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/exogate/exogate/internal/exotel"
)

// A request whose upstream answered before reading its body must not share
// anything with the next request: net/http's transport may still be reading
// the first body in its own goroutine after the handler returned.
func TestBodyNotSharedAfterEarlyAnswer(t *testing.T) {
	// Writes whose bodies stream (sms.write, calls.write): the bodies of
	// calls.connect and sms.send are read whole first, for their callbacks.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	got2 := make(chan struct{}, 1)
	release := make(chan struct{})
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/Sms/Messages/SM1.json") {
			// Refuse at once, without reading the body.
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		got2 <- struct{}{}
		<-release
		b, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, `{"len":%d}`, len(b))
	}))
	defer up.Close()
	withUpstreamConfig(t, up, nil, func(c *Config) { c.MaxBody = 1000 }, func(t *testing.T, r *rig) {
		for i := range 3 {
			conn, err := net.Dial("tcp", r.front.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "POST /v1/Accounts/acme/Sms/Messages/SM1.json HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n%s", strings.Repeat("a", 10))
			// net/http's transport hands the early 401 back while its
			// writer still waits for the rest of the body, and the
			// handler returns (its access line is written last).
			want := i + 1
			waitUntil(t, func() bool { return strings.Count(r.logs.String(), `"status":401`) >= want })
			done := make(chan struct{})
			var status int
			var body string
			go func() {
				defer close(done)
				req, _ := http.NewRequest("POST", r.front.URL+"/v1/Accounts/acme/Calls/CA1.json", strings.NewReader(strings.Repeat("b", 600)))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				resp, err := r.front.Client().Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				status, body = resp.StatusCode, string(b)
			}()
			<-got2
			// The rest of the first body arrives while the second request
			// is being sent.
			_, _ = io.WriteString(conn, strings.Repeat("a", 990))
			close(release)
			<-done
			release = make(chan struct{})
			if status != 200 || body != `{"len":600}` {
				t.Fatalf("round %d: second request: status %d, body %q; want 200 and all 600 bytes upstream", i, status, body)
			}
		}
	})
}

// withUpstreamConfig is withUpstream with a change to the handler's Config.
func withUpstreamConfig(t *testing.T, s *httptest.Server, mod func(*http.Transport), cfg func(*Config), fn func(t *testing.T, r *rig)) {
	tr := exogateTransport(t, s)
	if mod != nil {
		mod(tr)
	}
	fn(t, newRig(t, func(c *Config) {
		c.Transport = tr
		c.Accounts[0].API = mustURL(s.URL)
		if cfg != nil {
			cfg(c)
		}
	}))
}

// A 1xx is never a final status: an upstream that sends 100 Continue or 103
// Early Hints and then fails gets an Exotel-shaped error, never an empty 200.
func TestInformationalThenFailureIsAnError(t *testing.T) {
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</x>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer up.Close()
	withUpstream(t, up, nil, func(t *testing.T, r *rig) {
		for _, expect := range []bool{false, true} {
			req, _ := http.NewRequest("POST", r.front.URL+"/v1/Accounts/acme/Calls/connect.json", strings.NewReader("From=1&To=2"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if expect {
				req.Header.Set("Expect", "100-continue")
			}
			resp, body := r.do(req)
			if resp.StatusCode < 500 {
				t.Fatalf("expect=%v: status %d, body %q: a failed call looks like a success", expect, resp.StatusCode, body)
			}
			assertShape(t, resp, body, exotel.ShapeJSON, resp.StatusCode, resp.Header.Get(HeaderError))
		}
	})
}

// Expect is not forwarded: the gateway sends the body itself, so Exotel's
// 100 Continue would only be noise (and an early final status a hazard).
func TestExpectNotForwarded(t *testing.T) {
	r := newRig(t, nil)
	req, _ := http.NewRequest("POST", r.front.URL+"/v1/Accounts/acme/Sms/send.json", strings.NewReader("From=1&To=2&Body=hi"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Expect", "100-continue")
	resp, _ := r.do(req)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if v := r.only().Header.Values("Expect"); len(v) > 0 {
		t.Errorf("Expect forwarded: %q", v)
	}
}

// Only an allowlist of headers goes upstream.
func TestOnlyAllowedHeadersGoUpstream(t *testing.T) {
	r := newRig(t, nil)
	allowed := map[string]string{
		"Content-Type":    "application/x-www-form-urlencoded",
		"Accept":          "application/json",
		"Accept-Language": "en",
		"User-Agent":      "exotel-sdk/1.0",
		"X-Request-Id":    "req-42",
		"Traceparent":     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"Tracestate":      "vendor=x",
		"If-None-Match":   `"abc"`,
	}
	refused := map[string]string{
		"X-Http-Method-Override": "DELETE",
		"X-Http-Method":          "DELETE",
		"X-Method-Override":      "DELETE",
		"X-Original-Url":         "/v1/Accounts/other/Calls",
		"X-Rewrite-Url":          "/v1/Accounts/other/Calls",
		"X-Original-Uri":         "/v1/Accounts/other/Calls",
		"True-Client-Ip":         "10.0.0.1",
		"X-Client-Ip":            "10.0.0.1",
		"X-Cluster-Client-Ip":    "10.0.0.1",
		"Cf-Connecting-Ip":       "10.0.0.1",
		"X-Forwarded-Server":     "evil",
		"X-Host":                 "evil.example",
		"Cookie":                 "session=1",
		"Origin":                 "https://evil.example",
		"Referer":                "https://evil.example/",
		"X-Anything":             "1",
		"Expect":                 "100-continue",
		"Range":                  "bytes=0-1",
	}
	req, _ := http.NewRequest("POST", r.front.URL+"/v1/Accounts/acme/Sms/send.json", strings.NewReader("From=1&To=2&Body=hi"))
	for k, v := range allowed {
		req.Header.Set(k, v)
	}
	for k, v := range refused {
		req.Header.Set(k, v)
	}
	resp, _ := r.do(req)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := r.only().Header
	for k, v := range allowed {
		if got.Get(k) != v {
			t.Errorf("%s = %q upstream, want %q", k, got.Get(k), v)
		}
	}
	for k := range refused {
		if v := got.Values(k); len(v) > 0 {
			t.Errorf("%s forwarded upstream: %q", k, v)
		}
	}
	if got.Get("Content-Length") != strconv.Itoa(len("From=1&To=2&Body=hi")) {
		t.Errorf("Content-Length upstream %q", got.Get("Content-Length"))
	}
}

// A request id that is not a short token stays inside.
func TestRequestIDForwardedOnlyWhenSane(t *testing.T) {
	r := newRig(t, nil)
	for _, id := range []string{strings.Repeat("x", 200), "a b", "ü"} {
		r.reset()
		req, _ := http.NewRequest("GET", r.front.URL+"/v1/Accounts/acme/Calls.json", nil)
		req.Header.Set("X-Request-Id", id)
		resp, _ := r.do(req)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if v := r.only().Header.Values("X-Request-Id"); len(v) > 0 {
			t.Errorf("request id %q forwarded as %q", id, v)
		}
	}
}

func mustURL(s string) *url.URL { u, _ := url.Parse(s); return u }

// a request cut off after its body reached Exotel may have been carried out.
func TestOutcomeUnknownAfterRequestWritten(t *testing.T) {
	stuck := make(chan struct{})
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		if r.URL.Query().Get("slow") != "" {
			<-stuck // past the header timeout below
			return
		}
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	}))
	defer up.Close()
	defer close(stuck)
	withUpstream(t, up, headerTimeout(50*time.Millisecond), func(t *testing.T, r *rig) {
		for _, c := range []struct {
			query  string
			status int
		}{{"", 502}, {"?slow=1", 504}} {
			req, _ := http.NewRequest("POST", r.front.URL+"/v1/Accounts/acme/Calls/connect.json"+c.query, strings.NewReader("From=1&To=2"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, body := r.do(req)
			assertShape(t, resp, body, exotel.ShapeJSON, c.status, KindUpstreamOutcomeUnknown)
			if !strings.Contains(string(body), "may have been carried out") {
				t.Errorf("message does not warn that the request may have been carried out: %s", body)
			}
		}
		// A GET that timed out changed nothing: an ordinary timeout.
		req, _ := http.NewRequest("GET", r.front.URL+"/v1/Accounts/acme/Calls.json?slow=1", nil)
		resp, body := r.do(req)
		assertShape(t, resp, body, exotel.ShapeJSON, 504, KindUpstreamTimeout)
	})
}

// A request the gateway refuses is answered before its body is read: a
// chunked body that never ends does not hold the answer back.
func TestRefusedBeforeBodyIsRead(t *testing.T) {
	for name, mod := range map[string]func(*Config){
		"rate limited": func(c *Config) {},
		"breaker open": func(c *Config) { c.Breaker = BreakerSettings{ConsecutiveFailures: 1, OpenFor: time.Hour} },
	} {
		t.Run(name, func(t *testing.T) {
			r := newRig(t, mod)
			if name == "rate limited" {
				r.limiter.admit = func(context.Context, string, string) (time.Duration, error) { return 0, limited{time.Second} }
			} else {
				r.servers["singapore-api"].Close() // one failure opens the breaker
				req, _ := http.NewRequest("GET", r.front.URL+"/v1/Accounts/acme/Calls.json", nil)
				if resp, _ := r.do(req); resp.StatusCode != 502 {
					t.Fatalf("tripping request: status %d", resp.StatusCode)
				}
			}
			conn, err := net.Dial("tcp", r.front.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			// The first chunk, and never the end of the body.
			io.WriteString(conn, "POST /v1/Accounts/acme/Calls/connect.json HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nFrom=\r\n")
			got := make(chan int, 1)
			go func() {
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					got <- 0
					return
				}
				resp.Body.Close()
				got <- resp.StatusCode
			}()
			select {
			case status := <-got:
				if status != 429 && status != 503 {
					t.Errorf("status %d, want the refusal", status)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no answer while the body is unfinished: the body is read before the refusal")
			}
		})
	}
}

// Past MaxInFlight a request is answered 503 overloaded at once.
func TestMaxInFlight(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 8)
	r := newRig(t, func(c *Config) { c.MaxInFlight = 2 })
	r.limiter.admit = func(ctx context.Context, _, _ string) (time.Duration, error) {
		entered <- struct{}{}
		<-release
		return 0, nil
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", r.front.URL+"/v1/Accounts/acme/Calls.json", nil)
			if resp, _ := r.do(req); resp.StatusCode != 200 {
				t.Errorf("request in line: status %d", resp.StatusCode)
			}
		}()
	}
	<-entered
	<-entered
	req, _ := http.NewRequest("GET", r.front.URL+"/v1/Accounts/acme/Calls.json", nil)
	resp, body := r.do(req)
	assertShape(t, resp, body, exotel.ShapeJSON, 503, KindOverloaded)
	if resp.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	close(release)
	wg.Wait()
	// The bound is on requests at once, not in total.
	resp, _ = r.do(req)
	if resp.StatusCode != 200 {
		t.Errorf("after the line emptied: status %d", resp.StatusCode)
	}
}

// A connection past the listener's bound gets one Exotel-shaped 503, and is
// closed; the connections within it are served.
func TestConnLimit(t *testing.T) {
	r := newRig(t, nil)
	limit := &ConnLimit{Max: 2}
	front := httptest.NewUnstartedServer(r.handler)
	front.Config.ConnContext, front.Config.ConnState = limit.ConnContext, limit.ConnState
	front.Start()
	defer front.Close()
	get := func(conn net.Conn, br *bufio.Reader) (*http.Response, []byte) {
		t.Helper()
		io.WriteString(conn, "GET /v1/Accounts/acme/Calls HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	var conns []net.Conn
	var readers []*bufio.Reader
	for range 3 {
		c, err := net.Dial("tcp", front.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns, readers = append(conns, c), append(readers, bufio.NewReader(c))
	}
	for i := range 2 {
		if resp, _ := get(conns[i], readers[i]); resp.StatusCode != 200 {
			t.Fatalf("connection %d within the bound: status %d", i, resp.StatusCode)
		}
	}
	resp, body := get(conns[2], readers[2])
	assertShape(t, resp, body, exotel.ShapeXML, 503, KindOverloaded)
	if !resp.Close {
		t.Error("the connection past the bound is kept open")
	}
	conns[0].Close()
	waitUntil(t, func() bool { return limit.Open() == 1 })
	c, err := net.Dial("tcp", front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if resp, _ := get(c, bufio.NewReader(c)); resp.StatusCode != 200 {
		t.Errorf("after one closed: status %d", resp.StatusCode)
	}
}

// The write timeout cuts a caller that stops reading the answer, but never
// a request waiting in the limiter's line for longer than it.
func TestWriteTimeout(t *testing.T) {
	big := strings.Repeat("x", 32<<20)
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("big") == "" {
			io.WriteString(w, `{"Calls":[]}`)
			return
		}
		io.WriteString(w, big)
	}))
	defer up.Close()
	var wait atomic.Bool
	withUpstreamConfig(t, up, nil, func(c *Config) { c.WriteTimeout = 300 * time.Millisecond }, func(t *testing.T, r *rig) {
		r.limiter.admit = func(ctx context.Context, _, _ string) (time.Duration, error) {
			if wait.Load() {
				t := time.NewTimer(time.Second) // three write timeouts in line
				defer t.Stop()
				select {
				case <-t.C:
				case <-ctx.Done():
					return 0, ctx.Err()
				}
			}
			return 0, nil
		}
		wait.Store(true)
		resp, err := r.front.Client().Get(r.front.URL + "/v1/Accounts/acme/Calls.json")
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != int64(len(`{"Calls":[]}`)) || resp.StatusCode != 200 {
			t.Fatalf("request that waited in line: status %d, %d bytes, %v", resp.StatusCode, n, err)
		}
		wait.Store(false)

		resp, err = r.front.Client().Get(r.front.URL + "/v1/Accounts/acme/Calls.json?big=1")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		// Stop reading: the gateway must give up writing and end the request.
		waitUntil(t, func() bool { return strings.Count(r.logs.String(), `"message":"request"`) >= 2 })
	})
}

// A second attempt after Exotel's own 401 or 429 that reached Exotel whole
// and lost its answer may have placed the call: the caller is told so, not
// handed the first answer (which would invite a retry).
func TestOutcomeUnknownAfterReplay(t *testing.T) {
	for _, first := range []int{http.StatusUnauthorized, http.StatusTooManyRequests} {
		t.Run(strconv.Itoa(first), func(t *testing.T) {
			var n atomic.Int32
			up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.ReadAll(r.Body)
				if n.Add(1) == 1 {
					w.Header().Set("Retry-After", "1")
					w.WriteHeader(first)
					return
				}
				conn, _, _ := w.(http.Hijacker).Hijack()
				conn.Close()
			}))
			defer up.Close()
			mod := func(c *Config) {
				c.RetryWait = 2 * time.Second
				c.Authorizer = staleThenRotated()
			}
			withUpstreamConfig(t, up, nil, mod, func(t *testing.T, r *rig) {
				n.Store(0)
				resp, body := r.connect()
				if n.Load() != 2 {
					t.Fatalf("upstream saw %d attempts, want 2", n.Load())
				}
				assertShape(t, resp, body, exotel.ShapeJSON, 502, KindUpstreamOutcomeUnknown)
			})
		})
	}
}

// The write timeout starts with the answer: a slow Exotel and a replay
// after its 401 take longer than the write timeout, and the caller still
// gets the answer to the call Exotel placed.
func TestWriteTimeoutSparesASlowExotel(t *testing.T) {
	var n atomic.Int32
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		slow := time.NewTimer(300 * time.Millisecond) // a slow Exotel, each time
		<-slow.C
		if n.Add(1) == 1 {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		io.WriteString(w, `{"Call":{"Sid":"c1"}}`)
	}))
	defer up.Close()
	mod := func(c *Config) {
		c.WriteTimeout = 450 * time.Millisecond
		c.Authorizer = staleThenRotated()
	}
	withUpstreamConfig(t, up, nil, mod, func(t *testing.T, r *rig) {
		n.Store(0)
		resp, body := r.connect()
		if resp.StatusCode != 200 || string(body) != `{"Call":{"Sid":"c1"}}` {
			t.Fatalf("Exotel placed the call (%d attempts) but the caller got %d %q", n.Load(), resp.StatusCode, body)
		}
	})
}

// After an upstream 1xx, the final answer still carries the gateway's own
// headers: its request id, and Connection: close for a chunked request.
func TestGatewayHeadersSurviveInformational(t *testing.T) {
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		w.Header().Set("Link", "</x>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		io.WriteString(w, `{"ok":true}`)
	}))
	defer up.Close()
	withUpstream(t, up, nil, func(t *testing.T, r *rig) {
		conn, err := net.Dial("tcp", r.front.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		io.WriteString(conn, "POST /v1/Accounts/acme/Calls/connect.json HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nFrom=\r\n0\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: an early hint is not the answer", resp.StatusCode)
		}
		if resp.Header.Get("X-Request-Id") == "" {
			t.Errorf("no X-Request-Id after a 1xx: %v", resp.Header)
		}
		if !resp.Close {
			t.Errorf("a chunked request's answer keeps the connection open after a 1xx: %v", resp.Header)
		}
	})
}

// staleThenRotated authorizes with a stale token, and has the current one
// when Exotel's 401 asks for another.
func staleThenRotated() *rotatingAuthorizer {
	return &rotatingAuthorizer{
		authorize: func(h http.Header, _ string) (string, error) {
			h.Set("Authorization", basic(testKey, "old"))
			return "v1", nil
		},
		reauthorize: func(_ context.Context, h http.Header, _, _ string) bool {
			h.Set("Authorization", basic(testKey, testToken))
			return true
		},
	}
}

// headerTimeout sets the upstream transport's response header timeout.
func headerTimeout(d time.Duration) func(*http.Transport) {
	return func(tr *http.Transport) { tr.ResponseHeaderTimeout = d }
}

// connect places a call through the gateway: a v1 Calls/connect form post.
func (r *rig) connect() (*http.Response, []byte) {
	req, _ := http.NewRequest("POST", r.front.URL+"/v1/Accounts/acme/Calls/connect.json", strings.NewReader("From=1&To=2"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r.do(req)
}
