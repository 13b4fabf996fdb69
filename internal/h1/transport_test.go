package h1

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/exogate/exogate/internal/testutil"
)

// rawServer is an HTTP/1.1 server on loopback whose every connection is
// handled by a script, to produce exactly the upstream behaviour a test needs.
type rawServer struct {
	ln       net.Listener
	accepted atomic.Int32
	requests atomic.Int32
	wg       sync.WaitGroup
}

// newRawServer serves each connection with script, which reads requests
// with next (nil at the end of the connection) and writes raw answers.
func newRawServer(t *testing.T, script func(s *rawServer, c net.Conn, next func() *http.Request)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				script(s, c, s.reader(c))
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

// reader returns the next function scripts read requests with: the next
// request on c, its body read whole and counted, or nil at the end.
func (s *rawServer) reader(c io.Reader) func() *http.Request {
	br := bufio.NewReader(c)
	return func() *http.Request {
		req, err := http.ReadRequest(br)
		if err != nil {
			return nil
		}
		body, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(strings.NewReader(string(body)))
		s.requests.Add(1)
		return req
	}
}

// idleDeadSeen reports whether the liveness peek now finds one of tr's
// idle connections dead.
func idleDeadSeen(tr *Transport) bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, l := range tr.idle {
		for _, pc := range l {
			if !pc.alive() {
				return true
			}
		}
	}
	return false
}

func (s *rawServer) url(path string) string { return "http://" + s.ln.Addr().String() + path }

const okAnswer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}"

// keepAlive answers every request on the connection with okAnswer.
func keepAlive(_ *rawServer, c net.Conn, next func() *http.Request) {
	for next() != nil {
		if _, err := io.WriteString(c, okAnswer); err != nil {
			return
		}
	}
}

func do(t *testing.T, tr *Transport, method, url string, body io.Reader) (*http.Response, string, error) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}

// get sends a GET and returns the answer with its body unread.
func get(t *testing.T, tr *Transport, url string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, "waiting for "+what, cond)
}

func TestKeepAliveReusesOneConnection(t *testing.T) {
	s := newRawServer(t, keepAlive)
	tr := &Transport{}
	defer tr.Close()
	for i := 0; i < 5; i++ {
		resp, body, err := do(t, tr, "GET", s.url("/v1/Accounts/a/Calls.json"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || body != `{"ok":true}` {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
	}
	if n := s.accepted.Load(); n != 1 {
		t.Errorf("%d connections for 5 sequential requests, want 1", n)
	}
	if n := tr.IdleConns(); n != 1 {
		t.Errorf("%d idle connections, want 1", n)
	}
}

func TestRequestIsWrittenAsGiven(t *testing.T) {
	got := make(chan *http.Request, 1)
	s := newRawServer(t, func(_ *rawServer, c net.Conn, next func() *http.Request) {
		for r := next(); r != nil; r = next() {
			got <- r
			io.WriteString(c, okAnswer)
		}
	})
	tr := &Transport{}
	defer tr.Close()
	req, _ := http.NewRequest("POST", s.url("/v1/Accounts/a/Calls/connect.json?x=1"), strings.NewReader("From=1&To=2"))
	req.URL.Opaque = "/v1/Accounts/a//Calls/connect.json" // the exact bytes exogate forwards
	req.Host = "api.exotel.com"
	req.Header.Set("Authorization", "Basic a2V5OnRva2Vu")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	r := <-got
	body, _ := io.ReadAll(r.Body)
	switch {
	case r.RequestURI != "/v1/Accounts/a//Calls/connect.json?x=1":
		t.Errorf("request target %q", r.RequestURI)
	case r.Host != "api.exotel.com":
		t.Errorf("Host %q", r.Host)
	case r.Header.Get("Authorization") != "Basic a2V5OnRva2Vu":
		t.Errorf("Authorization %q", r.Header.Get("Authorization"))
	case string(body) != "From=1&To=2" || r.ContentLength != 11:
		t.Errorf("body %q length %d", body, r.ContentLength)
	case r.Header.Get("Accept-Encoding") != "":
		t.Errorf("the transport added Accept-Encoding %q", r.Header.Get("Accept-Encoding"))
	}
}

func TestTLSIsHTTP11WithServerName(t *testing.T) {
	var proto atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(r.Proto)
		io.WriteString(w, "ok")
	}))
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusting client's handshake below fails
	srv.StartTLS()
	defer srv.Close()
	roots := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	tr := &Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, TLSHandshakeTimeout: 5 * time.Second}
	defer tr.Close()
	for i := 0; i < 2; i++ {
		resp, body, err := do(t, tr, "GET", srv.URL+"/x", nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || body != "ok" || proto.Load() != "HTTP/1.1" {
			t.Fatalf("status %d body %q proto %v", resp.StatusCode, body, proto.Load())
		}
	}
	if tr.IdleConns() != 1 {
		t.Errorf("%d idle TLS connections, want 1", tr.IdleConns())
	}
	// The certificate is checked: without the test CA the handshake fails.
	strict := &Transport{TLSClientConfig: &tls.Config{}}
	defer strict.Close()
	if _, _, err := do(t, strict, "GET", srv.URL+"/x", nil); err == nil {
		t.Error("an untrusted certificate was accepted")
	}
}

// A server that closes its keep-alive connection while it is idle: the next
// request, a POST included, goes out on a new connection and is delivered
// exactly once.
func TestIdleConnectionClosedByServer(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the idle-close check peeks at the socket on Linux only")
	}
	s := newRawServer(t, func(_ *rawServer, c net.Conn, next func() *http.Request) {
		if next() != nil {
			io.WriteString(c, okAnswer) // keep-alive, then close
		}
	})
	tr := &Transport{}
	defer tr.Close()
	if _, _, err := do(t, tr, "GET", s.url("/a"), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the server to close", func() bool { return s.accepted.Load() == 1 && s.requests.Load() == 1 })
	// The FIN may take a moment to reach this side.
	waitFor(t, "the close to be seen", func() bool { return idleDeadSeen(tr) })
	resp, body, err := do(t, tr, "POST", s.url("/a"), strings.NewReader("x=1"))
	if err != nil {
		t.Fatalf("POST after an idle close: %v", err)
	}
	if resp.StatusCode != 200 || body != `{"ok":true}` {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if s.requests.Load() != 2 || s.accepted.Load() != 2 {
		t.Errorf("server saw %d requests on %d connections, want 2 on 2", s.requests.Load(), s.accepted.Load())
	}
}

// A reused connection that dies after taking the request, before answering:
// a GET is sent once more on a new connection; a POST is not (it may have
// been acted on) and fails.
func TestStaleConnectionResendsOnlySafeRequests(t *testing.T) {
	s := newRawServer(t, func(_ *rawServer, c net.Conn, next func() *http.Request) {
		if next() == nil {
			return
		}
		io.WriteString(c, okAnswer)
		next() // the second request on this connection: taken, never answered
	})
	tr := &Transport{}
	defer tr.Close()
	warm := func() {
		t.Helper()
		if _, _, err := do(t, tr, "GET", s.url("/warm"), nil); err != nil {
			t.Fatal(err)
		}
	}
	warm()
	before := s.requests.Load()
	resp, body, err := do(t, tr, "GET", s.url("/get"), nil)
	if err != nil || resp.StatusCode != 200 || body != `{"ok":true}` {
		t.Fatalf("GET on a stale connection: %v", err)
	}
	if n := s.requests.Load() - before; n != 2 {
		t.Errorf("GET reached the server %d times, want 2 (the lost one and the resend)", n)
	}

	tr.CloseIdleConnections()
	warm()
	before = s.requests.Load()
	_, _, err = do(t, tr, "POST", s.url("/post"), strings.NewReader("From=1"))
	if err == nil {
		t.Fatal("POST on a connection that died before answering succeeded")
	}
	waitFor(t, "the server to count the POST", func() bool { return s.requests.Load()-before >= 1 })
	if n := s.requests.Load() - before; n != 1 {
		t.Errorf("POST reached the server %d times, want exactly 1", n)
	}
}

func TestResponseHeaderTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	s := newRawServer(t, func(_ *rawServer, c net.Conn, next func() *http.Request) {
		if next() != nil {
			<-release
		}
	})
	tr := &Transport{ResponseHeaderTimeout: 30 * time.Millisecond}
	defer tr.Close()
	_, _, err := do(t, tr, "GET", s.url("/slow"), nil)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("got %v, want a timeout", err)
	}
	if tr.IdleConns() != 0 {
		t.Error("a timed-out connection went back to the pool")
	}
}

func TestCallerCancelUnblocks(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	s := newRawServer(t, func(_ *rawServer, c net.Conn, next func() *http.Request) {
		if next() != nil {
			<-release
		}
	})
	tr := &Transport{}
	defer tr.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", s.url("/slow"), nil)
	errc := make(chan error, 1)
	go func() {
		_, err := tr.RoundTrip(req)
		errc <- err
	}()
	waitFor(t, "the request to arrive", func() bool { return s.requests.Load() == 1 })
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RoundTrip did not return after its context was cancelled")
	}
	if s.requests.Load() != 1 {
		t.Errorf("a cancelled GET was resent: %d requests", s.requests.Load())
	}
}

// An answer whose body is not read to the end leaves its connection closed,
// not in the pool where the rest of the body would be read as the next
// answer.
func TestUnfinishedBodyClosesConnection(t *testing.T) {
	s := newRawServer(t, func(_ *rawServer, c net.Conn, next func() *http.Request) {
		for next() != nil {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n0123456789abcdefghij")
		}
	})
	tr := &Transport{}
	defer tr.Close()
	resp := get(t, tr, s.url("/a"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if tr.IdleConns() != 0 {
		t.Fatal("a connection with unread body went back to the pool")
	}
	_, body, err := do(t, tr, "GET", s.url("/b"), nil)
	if err != nil || body != "0123456789abcdefghij" {
		t.Fatalf("next request: %q %v", body, err)
	}
	if s.accepted.Load() != 2 {
		t.Errorf("%d connections, want 2", s.accepted.Load())
	}
}

func TestBodyFramings(t *testing.T) {
	answers := map[string]struct {
		raw   string
		body  string
		reuse bool
	}{
		"chunked":          {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world", true},
		"content-length":   {"HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nhello", "hello", true},
		"empty 204":        {"HTTP/1.1 204 No Content\r\n\r\n", "", true},
		"connection close": {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", "ok", false},
		"until close":      {"HTTP/1.1 200 OK\r\n\r\nread until the end", "read until the end", false},
		"HTTP/1.0":         {"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n1.0", "1.0", false},
	}
	for name, a := range answers {
		t.Run(name, func(t *testing.T) {
			s := newRawServer(t, func(_ *rawServer, c net.Conn, next func() *http.Request) {
				for next() != nil {
					io.WriteString(c, a.raw)
					if !a.reuse {
						return
					}
				}
			})
			tr := &Transport{}
			defer tr.Close()
			for i := 0; i < 2; i++ {
				_, body, err := do(t, tr, "GET", s.url("/"), nil)
				if err != nil || body != a.body {
					t.Fatalf("request %d: body %q, error %v", i, body, err)
				}
			}
			want := int32(2)
			if a.reuse {
				want = 1
			}
			if n := s.accepted.Load(); n != want {
				t.Errorf("%d connections, want %d", n, want)
			}
		})
	}
}

func TestHeadKeepsConnection(t *testing.T) {
	s := newRawServer(t, func(_ *rawServer, c net.Conn, next func() *http.Request) {
		for r := next(); r != nil; r = next() {
			if r.Method == "HEAD" {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n")
				continue
			}
			io.WriteString(c, okAnswer)
		}
	})
	tr := &Transport{}
	defer tr.Close()
	resp, body, err := do(t, tr, "HEAD", s.url("/"), nil)
	if err != nil || body != "" || resp.ContentLength != 11 {
		t.Fatalf("HEAD: %v %q %d", err, body, resp.ContentLength)
	}
	if _, body, err = do(t, tr, "GET", s.url("/"), nil); err != nil || body != `{"ok":true}` {
		t.Fatalf("GET after HEAD: %q %v", body, err)
	}
	if s.accepted.Load() != 1 {
		t.Errorf("%d connections, want 1", s.accepted.Load())
	}
}

func TestInformationalAnswers(t *testing.T) {
	s := newRawServer(t, func(_ *rawServer, c net.Conn, next func() *http.Request) {
		for r := next(); r != nil; r = next() {
			if r.URL.Path == "/upgrade" {
				io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
				return
			}
			if r.URL.Path == "/many" {
				for i := 0; i < 10; i++ {
					io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n")
				}
			}
			io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"+okAnswer)
		}
	})
	tr := &Transport{}
	defer tr.Close()
	var seen []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		seen = append(seen, fmt.Sprint(code, h.Get("Link")))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", s.url("/"), nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != `{"ok":true}` {
		t.Fatalf("final answer %d %q", resp.StatusCode, body)
	}
	if strings.Join(seen, ",") != "100,103</a.css>" {
		t.Errorf("1xx seen %q", seen)
	}
	if _, _, err := do(t, tr, "GET", s.url("/many"), nil); err == nil {
		t.Error("an endless run of 1xx answers was accepted")
	}
	if _, _, err := do(t, tr, "GET", s.url("/upgrade"), nil); !errors.Is(err, errUpgrade) {
		t.Errorf("101: got %v, want errUpgrade", err)
	}
}

// An error reading the caller's body is returned as it is (exogate maps its
// own "body too large"), and the half-sent request's connection is closed.
func TestRequestBodyError(t *testing.T) {
	s := newRawServer(t, keepAlive)
	tr := &Transport{}
	defer tr.Close()
	tooLarge := errors.New("body too large")
	body := io.MultiReader(strings.NewReader("From=1&"), errReader{tooLarge})
	req, _ := http.NewRequest("POST", s.url("/a"), body)
	req.ContentLength = 100
	_, err := tr.RoundTrip(req)
	if !errors.Is(err, tooLarge) {
		t.Fatalf("got %v, want the body's own error", err)
	}
	if tr.IdleConns() != 0 {
		t.Error("the connection of a half-sent request went back to the pool")
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// The server answers early (here 413) and closes without reading a body
// too large for the socket buffers: its answer is returned, not the write
// error.
func TestEarlyAnswerWins(t *testing.T) {
	s := newRawServer(t, func(_ *rawServer, c net.Conn, next func() *http.Request) {
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 413 Request Entity Too Large\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbig!")
		// Return without reading the body: the deferred Close resets.
	})
	tr := &Transport{}
	defer tr.Close()
	big := strings.Repeat("x", 64<<20)
	resp, body, err := do(t, tr, "POST", s.url("/a"), strings.NewReader(big))
	if err != nil {
		t.Fatalf("got %v, want the server's 413", err)
	}
	if resp.StatusCode != 413 || body != "big!" {
		t.Errorf("got %d %q", resp.StatusCode, body)
	}
}

func TestIdleTimeoutAndClose(t *testing.T) {
	s := newRawServer(t, keepAlive)
	tr := &Transport{IdleConnTimeout: 20 * time.Millisecond}
	if _, _, err := do(t, tr, "GET", s.url("/a"), nil); err != nil {
		t.Fatal(err)
	}
	if tr.IdleConns() != 1 {
		t.Fatalf("%d idle, want 1", tr.IdleConns())
	}
	waitFor(t, "the idle connection to be swept", func() bool { return tr.IdleConns() == 0 })

	if _, _, err := do(t, tr, "GET", s.url("/b"), nil); err != nil {
		t.Fatal(err)
	}
	tr.Close()
	if tr.IdleConns() != 0 {
		t.Error("Close left idle connections")
	}
	if _, _, err := do(t, tr, "GET", s.url("/c"), nil); !errors.Is(err, errClosed) {
		t.Errorf("after Close: got %v, want errClosed", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	for _, maxIdle := range []int{8, 3} {
		t.Run(fmt.Sprint("max idle ", maxIdle), func(t *testing.T) {
			s := newRawServer(t, keepAlive)
			tr := &Transport{MaxIdleConnsPerHost: maxIdle}
			defer tr.Close()
			var wg sync.WaitGroup
			var failed atomic.Int32
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 50; i++ {
						_, body, err := do(t, tr, "GET", s.url("/c"), nil)
						if err != nil || body != `{"ok":true}` {
							failed.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			if failed.Load() != 0 {
				t.Fatalf("%d of 400 concurrent requests failed", failed.Load())
			}
			if s.requests.Load() != 400 {
				t.Errorf("server saw %d requests, want 400", s.requests.Load())
			}
			if n := tr.IdleConns(); n > maxIdle {
				t.Errorf("%d idle connections kept, MaxIdleConnsPerHost is %d", n, maxIdle)
			}
			// With room for all 8 callers' connections, none is ever closed
			// and redialled.
			if maxIdle >= 8 && s.accepted.Load() > 8 {
				t.Errorf("%d connections for 8 concurrent callers", s.accepted.Load())
			}
		})
	}
}

func TestRefusesWhatItCannotCarry(t *testing.T) {
	tr := &Transport{}
	defer tr.Close()
	for _, u := range []string{"ftp://example.com/", "/relative"} {
		req, _ := http.NewRequest("GET", u, nil)
		if _, err := tr.RoundTrip(req); err == nil {
			t.Errorf("%s: no error", u)
		}
	}
	req, _ := http.NewRequest("CONNECT", "http://127.0.0.1:1/", nil)
	if _, err := tr.RoundTrip(req); err == nil {
		t.Error("CONNECT: no error")
	}
}

// newRawTLSServer is newRawServer over TLS 1.3: script gets the TLS
// connection and, under it, the TCP one wrapped so that several TLS records
// can be sent in one TCP segment. It returns the roots that trust it.
func newRawTLSServer(t *testing.T, script func(s *rawServer, c *tls.Conn, raw *heldConn, next func() *http.Request)) (*rawServer, *x509.CertPool) {
	t.Helper()
	cert := httptest.NewUnstartedServer(http.NotFoundHandler())
	cert.StartTLS()
	cfg := cert.TLS.Clone()
	roots := x509.NewCertPool()
	roots.AddCert(cert.Certificate())
	cert.Close()
	// One Write, one record: what a script writes arrives as it was written.
	cfg.DynamicRecordSizingDisabled = true
	cfg.MinVersion = tls.VersionTLS13
	s := newRawServer(t, func(s *rawServer, c net.Conn, next func() *http.Request) {
		raw := &heldConn{Conn: c}
		tc := tls.Server(raw, cfg)
		if err := tc.Handshake(); err != nil {
			return
		}
		script(s, tc, raw, s.reader(tc))
	})
	return s, roots
}

func (s *rawServer) tlsURL(path string) string { return "https://" + s.ln.Addr().String() + path }

// heldConn is a server's TCP connection whose writes can be held back and
// sent together, in one segment.
type heldConn struct {
	net.Conn
	mu   sync.Mutex
	held bool
	buf  []byte
}

func (h *heldConn) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.held {
		h.buf = append(h.buf, p...)
		return len(p), nil
	}
	return h.Conn.Write(p)
}

func (h *heldConn) hold() {
	h.mu.Lock()
	h.held = true
	h.mu.Unlock()
}

// release sends what was held in one write.
func (h *heldConn) release() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.held = false
	// crypto/tls leaves the write deadline in the past after a close_notify.
	_ = h.Conn.SetWriteDeadline(time.Time{})
	_, err := h.Conn.Write(h.buf)
	h.buf = nil
	return err
}

// An upstream that ends a keep-alive exchange with a TLS close_notify right
// behind the answer (in the same segment) and keeps the TCP connection open
// a while: crypto/tls reads the alert with the answer's last bytes, so the
// socket looks quiet to the liveness peek. The connection must not be used
// again: a POST written on it is answered by EOF and cannot be resent.
func TestTLSCloseNotifyBehindAnswer(t *testing.T) {
	var conns atomic.Int32
	s, roots := newRawTLSServer(t, func(_ *rawServer, c *tls.Conn, raw *heldConn, next func() *http.Request) {
		first := conns.Add(1) == 1
		for next() != nil {
			if first {
				raw.hold()
				io.WriteString(c, okAnswer)
				c.CloseWrite() // close_notify, the TCP connection stays open
				raw.release()
				continue // anything more on this connection goes unanswered
			}
			io.WriteString(c, okAnswer)
		}
	})
	tr := &Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	defer tr.Close()
	if _, body, err := do(t, tr, "GET", s.tlsURL("/a"), nil); err != nil || body != `{"ok":true}` {
		t.Fatalf("first GET: %q %v", body, err)
	}
	resp, body, err := do(t, tr, "POST", s.tlsURL("/Calls/connect.json"), strings.NewReader("From=1&To=2"))
	if err != nil {
		t.Fatalf("POST after a close_notify: %v (the closed connection was reused)", err)
	}
	if resp.StatusCode != 200 || body != `{"ok":true}` {
		t.Fatalf("POST: %d %q", resp.StatusCode, body)
	}
	if n := s.accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// Bytes past the end of an answer that crypto/tls has already decrypted
// (here: a stray answer in the same TLS record as the real one) are invisible
// to the peek at the socket. They must not be read as the next request's
// answer.
func TestTLSBytesPastAnswerAreNotTheNextAnswer(t *testing.T) {
	var conns atomic.Int32
	const real = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreal"
	s, roots := newRawTLSServer(t, func(_ *rawServer, c *tls.Conn, _ *heldConn, next func() *http.Request) {
		first := conns.Add(1) == 1
		for n := 0; next() != nil; n++ {
			if first && n == 0 {
				// Long enough that the end of the body is read straight into
				// the caller's buffer, past bufio's.
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n"+strings.Repeat("x", 10000)+
					"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray")
				continue
			}
			io.WriteString(c, real)
		}
	})
	tr := &Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	defer tr.Close()
	resp := get(t, tr, s.tlsURL("/a"))
	// Read as httputil.ReverseProxy does, with a 32 KiB buffer.
	buf, total := make([]byte, 32<<10), 0
	for {
		n, err := resp.Body.Read(buf)
		total += n
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	resp.Body.Close()
	if total != 10000 {
		t.Fatalf("first body: %d bytes", total)
	}
	_, body, err := do(t, tr, "GET", s.tlsURL("/b"), nil)
	if err != nil || body != "real" {
		t.Fatalf("second GET got %q, %v: bytes of the previous exchange were read as its answer", body, err)
	}
}

// cancelAfterWrite cancels the request's context once the request is
// written, and lets the write return only when the transport's
// cancellation trap has set its deadline.
type cancelAfterWrite struct {
	net.Conn
	cancel            context.CancelFunc
	trapped           chan struct{}
	wrote, trapClosed sync.Once
}

func (c *cancelAfterWrite) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.wrote.Do(func() {
		c.cancel()
		<-c.trapped
	})
	return n, err
}

func (c *cancelAfterWrite) SetDeadline(d time.Time) error {
	err := c.Conn.SetDeadline(d)
	if !d.IsZero() && d.Before(time.Unix(2, 0)) {
		c.trapClosed.Do(func() { close(c.trapped) })
	}
	return err
}

// A caller that goes away between the end of the write and the start of the
// wait for the answer: setting the ResponseHeaderTimeout deadline must not
// undo the cancellation's deadline, or the caller's exchange waits out the
// whole timeout (and a body read after the header would never be unblocked).
func TestCancelIsNotUndoneByHeaderTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	s := newRawServer(t, func(_ *rawServer, c net.Conn, next func() *http.Request) {
		if next() != nil {
			<-release
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr := &Transport{
		ResponseHeaderTimeout: time.Hour,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &cancelAfterWrite{Conn: c, cancel: cancel, trapped: make(chan struct{})}, nil
		},
	}
	defer tr.Close()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.url("/slow"), nil)
	errc := make(chan error, 1)
	go func() {
		_, err := tr.RoundTrip(req)
		errc <- err
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RoundTrip did not return after its context was cancelled")
	}
}

// A request whose caller has already gone away is not sent: a POST places a
// call, and nobody is left to hear that it did.
func TestCancelledRequestIsNotSent(t *testing.T) {
	var mu sync.Mutex
	var methods []string
	var ended atomic.Int32
	s := newRawServer(t, func(_ *rawServer, c net.Conn, next func() *http.Request) {
		defer ended.Add(1)
		for r := next(); r != nil; r = next() {
			mu.Lock()
			methods = append(methods, r.Method)
			mu.Unlock()
			io.WriteString(c, okAnswer)
		}
	})
	tr := &Transport{}
	if _, _, err := do(t, tr, "GET", s.url("/warm"), nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", s.url("/Calls/connect.json"), strings.NewReader("From=1&To=2"))
	if _, err := tr.RoundTrip(req); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	tr.Close()
	waitFor(t, "the server to see every connection end", func() bool { return ended.Load() == s.accepted.Load() })
	mu.Lock()
	defer mu.Unlock()
	for _, m := range methods {
		if m == "POST" {
			t.Fatalf("the server received %v: a cancelled POST was sent", methods)
		}
	}
}

// ResponseHeaderTimeout bounds the wait for an answer: a GET the upstream is
// slow to answer on a reused connection is not sent again (the upstream got
// it, it is slow, not gone), which would double both the wait and the load.
func TestHeaderTimeoutIsNotResent(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	s := newRawServer(t, func(_ *rawServer, c net.Conn, next func() *http.Request) {
		if next() == nil {
			return
		}
		io.WriteString(c, okAnswer)
		if next() != nil {
			<-release // the second request on a connection is never answered
		}
	})
	var dials atomic.Int32
	tr := &Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	defer tr.Close()
	if _, _, err := do(t, tr, "GET", s.url("/warm"), nil); err != nil {
		t.Fatal(err)
	}
	tr.ResponseHeaderTimeout = 50 * time.Millisecond // set after the warm-up, which must not time out
	_, _, err := do(t, tr, "GET", s.url("/slow"), nil)
	if !isTimeout(err) {
		t.Errorf("got %v, want a timeout", err)
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("%d dials: the timed-out GET was sent again", n)
	}
}

// The one resend of a GET whose reused connection died goes out on a new
// connection, not on another idle one that may be just as stale.
func TestResendUsesANewConnection(t *testing.T) {
	s := newRawServer(t, func(_ *rawServer, c net.Conn, next func() *http.Request) {
		if next() == nil {
			return
		}
		io.WriteString(c, okAnswer)
		next() // the second request on a connection: taken, never answered
	})
	tr := &Transport{MaxIdleConnsPerHost: 4}
	defer tr.Close()
	// Two connections in the pool.
	var resps []*http.Response
	for i := 0; i < 2; i++ {
		req, _ := http.NewRequest("GET", s.url("/warm"), nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resps = append(resps, resp)
	}
	for _, resp := range resps {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if tr.IdleConns() != 2 {
		t.Fatalf("%d idle connections, want 2", tr.IdleConns())
	}
	_, body, err := do(t, tr, "GET", s.url("/get"), nil)
	if err != nil || body != `{"ok":true}` {
		t.Fatalf("GET: %q %v (resent on a second stale connection?)", body, err)
	}
	if n := s.accepted.Load(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}
}

// An answer header without end is refused once it passes a bound (as
// net/http's 10 MiB) instead of growing in memory as long as the upstream
// sends.
func TestHugeAnswerHeaderIsRefused(t *testing.T) {
	s := newRawServer(t, func(_ *rawServer, c net.Conn, next func() *http.Request) {
		if next() == nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Big: "+strings.Repeat("a", 11<<20)+"\r\nContent-Length: 2\r\n\r\nok")
	})
	tr := &Transport{}
	defer tr.Close()
	resp, _, err := do(t, tr, "GET", s.url("/"), nil)
	if err == nil {
		t.Fatalf("an 11 MiB answer header was accepted (%d header bytes)", len(resp.Header.Get("X-Big")))
	}
}

// Like net/http's, an answer's body keeps saying io.EOF once it has, and
// refuses reads after Close.
func TestBodyReadAfterEOF(t *testing.T) {
	s := newRawServer(t, keepAlive)
	tr := &Transport{}
	defer tr.Close()
	resp := get(t, tr, s.url("/"))
	if b, err := io.ReadAll(resp.Body); err != nil || string(b) != `{"ok":true}` {
		t.Fatalf("body %q %v", b, err)
	}
	if n, err := resp.Body.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Errorf("read after EOF: %d, %v; want 0, io.EOF", n, err)
	}
	resp.Body.Close()
	if n, err := resp.Body.Read(make([]byte, 8)); n != 0 || err == nil || err == io.EOF {
		t.Errorf("read after Close: %d, %v; want an error", n, err)
	}
	if tr.IdleConns() != 1 {
		t.Errorf("%d idle connections, want 1", tr.IdleConns())
	}
}

// TLS 1.3 session tickets, sent by the server after the handshake, are read
// with the first answer and do not make the pooled connection look dead.
func TestTLS13ConnectionIsReused(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	tr := &Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13,
		ClientSessionCache: tls.NewLRUClientSessionCache(4)}}
	defer tr.Close()
	for i := 0; i < 3; i++ {
		resp, body, err := do(t, tr, "GET", srv.URL+"/", nil)
		if err != nil || body != "ok" {
			t.Fatalf("request %d: %q %v", i, body, err)
		}
		if resp.TLS != nil && resp.TLS.Version != tls.VersionTLS13 {
			t.Fatalf("TLS version %x", resp.TLS.Version)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d TLS connections for 3 sequential requests, want 1", n)
	}
}

// An https URL with a bracketed IPv6 literal: the certificate is checked
// against the address without brackets.
func TestTLSIPv6LiteralServerName(t *testing.T) {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback:", err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.StartTLS()
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	tr := &Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	defer tr.Close()
	if !strings.HasPrefix(srv.URL, "https://[::1]:") {
		t.Fatalf("server URL %s", srv.URL)
	}
	if _, body, err := do(t, tr, "GET", srv.URL+"/", nil); err != nil || body != "ok" {
		t.Fatalf("%q %v", body, err)
	}
}

// Chunked trailers reach the caller after the body's end (ReverseProxy
// copies them then), resp.Request is the caller's request, and the
// connection is kept.
func TestTrailersAndRequest(t *testing.T) {
	s := newRawServer(t, func(_ *rawServer, c net.Conn, next func() *http.Request) {
		for next() != nil {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n"+
				"5\r\nhello\r\n0\r\nX-Sum: 42\r\n\r\n")
		}
	})
	tr := &Transport{}
	defer tr.Close()
	for i := 0; i < 2; i++ {
		req, _ := http.NewRequest("GET", s.url("/"), nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Request != req {
			t.Error("resp.Request is not the caller's request")
		}
		if _, ok := resp.Trailer["X-Sum"]; !ok || resp.Trailer.Get("X-Sum") != "" {
			t.Errorf("announced trailer before the body: %v", resp.Trailer)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != "hello" || resp.Trailer.Get("X-Sum") != "42" {
			t.Fatalf("body %q %v trailer %v", b, err, resp.Trailer)
		}
	}
	if n := s.accepted.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// A server that sends something unasked on an idle plain connection (a
// stray answer): the connection is dropped, and the next request gets its
// own answer.
func TestStrayBytesOnIdleConnection(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the idle check peeks at the socket on Linux only")
	}
	sent := make(chan struct{})
	var conns atomic.Int32
	s := newRawServer(t, func(_ *rawServer, c net.Conn, next func() *http.Request) {
		first := conns.Add(1) == 1
		for next() != nil {
			io.WriteString(c, okAnswer)
			if first {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray")
				close(sent)
				first = false
			}
		}
	})
	tr := &Transport{}
	defer tr.Close()
	resp := get(t, tr, s.url("/a"))
	// Read exactly the body, without reading ahead into the stray bytes.
	b := make([]byte, 11)
	if _, err := io.ReadFull(resp.Body, b); err != nil {
		t.Fatal(err)
	}
	if n, err := resp.Body.Read(b); n != 0 || err != io.EOF {
		t.Fatalf("body end: %d %v", n, err)
	}
	resp.Body.Close()
	<-sent
	if tr.IdleConns() == 1 {
		waitFor(t, "the stray bytes to be seen", func() bool { return idleDeadSeen(tr) })
	}
	if _, body, err := do(t, tr, "GET", s.url("/b"), nil); err != nil || body != `{"ok":true}` {
		t.Fatalf("next GET: %q %v", body, err)
	}
	if n := s.accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// A caller that goes away while reading the body: the read ends with the
// context's error and the connection is not kept.
func TestCancelDuringBody(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	s := newRawServer(t, func(_ *rawServer, c net.Conn, next func() *http.Request) {
		if next() != nil {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
			<-release
		}
	})
	tr := &Transport{}
	defer tr.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.url("/"), nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	if _, err := io.ReadFull(resp.Body, b); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	resp.Body.Close()
	if tr.IdleConns() != 0 {
		t.Error("a connection with half a body went back to the pool")
	}
}

// The early answer of TestEarlyAnswerWins, over TLS: the server answers 413
// after the request's header and closes without reading the body.
func TestEarlyAnswerWinsOverTLS(t *testing.T) {
	s, roots := newRawTLSServer(t, func(_ *rawServer, c *tls.Conn, _ *heldConn, _ func() *http.Request) {
		// The header comes in a record of its own (the body is flushed
		// after it): take it, leave the body unread.
		if _, err := c.Read(make([]byte, 4096)); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 413 Request Entity Too Large\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbig!")
		c.Close()
	})
	tr := &Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	defer tr.Close()
	resp, body, err := do(t, tr, "POST", s.tlsURL("/a"), strings.NewReader(strings.Repeat("x", 64<<20)))
	if err != nil {
		t.Fatalf("got %v, want the server's 413", err)
	}
	if resp.StatusCode != 413 || body != "big!" {
		t.Errorf("got %d %q", resp.StatusCode, body)
	}
}

// deadlineConn records the read deadline last set on a connection.
type deadlineConn struct {
	net.Conn
	mu sync.Mutex
	rd time.Time
}

func (d *deadlineConn) SetReadDeadline(t time.Time) error {
	d.mu.Lock()
	d.rd = t
	d.mu.Unlock()
	return d.Conn.SetReadDeadline(t)
}

func (d *deadlineConn) SetDeadline(t time.Time) error {
	d.mu.Lock()
	d.rd = t
	d.mu.Unlock()
	return d.Conn.SetDeadline(t)
}

// A connection goes back to the pool with no read deadline left on it, from
// ResponseHeaderTimeout or from the TLS check at the end of an answer:
// a deadline left behind would fail a later exchange on it.
func TestPooledConnectionHasNoDeadline(t *testing.T) {
	s, roots := newRawTLSServer(t, func(_ *rawServer, c *tls.Conn, _ *heldConn, next func() *http.Request) {
		for next() != nil {
			io.WriteString(c, okAnswer)
		}
	})
	var conns []*deadlineConn
	tr := &Transport{
		TLSClientConfig:       &tls.Config{RootCAs: roots},
		ResponseHeaderTimeout: time.Minute,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			dc := &deadlineConn{Conn: c}
			conns = append(conns, dc)
			return dc, nil
		},
	}
	defer tr.Close()
	ctx, cancel := context.WithCancel(context.Background()) // arms the cancellation trap
	defer cancel()
	for i := 0; i < 2; i++ {
		req, _ := http.NewRequestWithContext(ctx, "GET", s.tlsURL("/"), nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if len(conns) != 1 || tr.IdleConns() != 1 {
			t.Fatalf("%d connections, %d idle; want 1, 1", len(conns), tr.IdleConns())
		}
		conns[0].mu.Lock()
		rd := conns[0].rd
		conns[0].mu.Unlock()
		if !rd.IsZero() {
			t.Fatalf("exchange %d: idle connection left with read deadline %v", i, rd)
		}
	}
}

// Many callers, an idle timeout short enough that the sweeper runs all the
// time, CloseIdleConnections from the side, then Close: no race, and every
// connection the transport opened ends up closed.
func TestSweeperCloseIdleAndCloseNoLeak(t *testing.T) {
	var ended atomic.Int32
	s := newRawServer(t, func(s *rawServer, c net.Conn, next func() *http.Request) {
		defer ended.Add(1)
		keepAlive(s, c, next)
	})
	tr := &Transport{IdleConnTimeout: time.Millisecond, MaxIdleConnsPerHost: 4}
	var wg sync.WaitGroup
	var failed atomic.Int32
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				tr.CloseIdleConnections()
				runtime.Gosched()
			}
		}
	}()
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				if _, body, err := do(t, tr, "GET", s.url("/"), nil); err != nil || body != `{"ok":true}` {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of 240 requests failed", n)
	}
	tr.Close()
	if tr.IdleConns() != 0 {
		t.Errorf("%d idle connections after Close", tr.IdleConns())
	}
	waitFor(t, "every connection to be closed", func() bool { return ended.Load() == s.accepted.Load() })
}

// WroteRequest is traced once the whole request reached the connection, and
// not for a request whose body failed part-way (its server saw no whole
// request).
func TestWroteRequestTraced(t *testing.T) {
	s := newRawServer(t, keepAlive)
	tr := &Transport{}
	defer tr.Close()
	send := func(body io.Reader, length int64) (wrote int, err error) {
		trace := &httptrace.ClientTrace{WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				wrote++
			}
		}}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "POST", s.url("/a"), body)
		req.ContentLength = length
		resp, err := tr.RoundTrip(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return wrote, err
	}
	if wrote, err := send(strings.NewReader("From=1&To=2"), 11); err != nil || wrote != 1 {
		t.Errorf("whole request: WroteRequest seen %d times, err %v; want once", wrote, err)
	}
	broken := io.MultiReader(strings.NewReader("From=1&"), errReader{errors.New("caller went away")})
	if wrote, err := send(broken, 100); err == nil || wrote != 0 {
		t.Errorf("half-sent request: WroteRequest seen %d times, err %v; want none and an error", wrote, err)
	}
}
