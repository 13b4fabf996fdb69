// Package h1 is exogate's upstream HTTP/1.1 client: an http.RoundTripper
// that runs each exchange on the goroutine that asked for it.
//
// Go's http.Transport gives every connection a reader and a writer goroutine
// and hands each request and response between them and the caller over
// channels: three goroutines and two hand-offs per request. On a busy gateway
// those hand-offs, and the scheduler work behind them, cost more CPU than
// anything else exogate does. Here the caller takes an idle keep-alive
// connection, writes the request, reads the answer's header and returns; the
// body reads straight from the connection, which goes back to the pool when
// the body has been read to its end.
//
// It speaks HTTP/1.1 only (over TLS too), does not use proxies, and resends a
// request on a fresh connection only when it is safe: a GET, HEAD or OPTIONS
// without a body whose reused connection failed before a byte of the answer
// arrived. A request with a body is never sent twice.
package h1

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"syscall"
	"time"
)

// Transport is an HTTP/1.1 http.RoundTripper with a keep-alive pool per
// host. Its fields must not change after first use. Safe for concurrent use.
type Transport struct {
	// DialContext opens TCP connections (default: a net.Dialer with a 10 s
	// timeout and 30 s keep-alive).
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLSClientConfig is used for https hosts; ServerName is set per host
	// and NextProtos to http/1.1.
	TLSClientConfig *tls.Config
	// TLSHandshakeTimeout bounds the TLS handshake (0: only the request's
	// context does).
	TLSHandshakeTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for the answer's header after the
	// request was written (0: none).
	ResponseHeaderTimeout time.Duration
	// IdleConnTimeout closes a keep-alive connection idle this long (default
	// 90 s).
	IdleConnTimeout time.Duration
	// MaxIdleConnsPerHost is how many idle connections are kept per host
	// (default 2, as net/http).
	MaxIdleConnsPerHost int

	mu      sync.Mutex
	idle    map[key][]*conn
	sweeper *time.Timer
	closed  bool
}

// key names a pool: scheme and host[:port] exactly as in the request URL.
type key struct {
	https bool
	host  string
}

const max1xx = 5 // informational answers tolerated before the final one

var (
	errClosed    = errors.New("h1: transport closed")
	errUpgrade   = errors.New("h1: the upstream switched protocols; exogate does not proxy upgrades")
	errTooMany1  = errors.New("h1: too many 1xx informational answers")
	aLongTimeAgo = time.Unix(1, 0)
)

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	u := req.URL
	if u == nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		closeBody(req)
		return nil, fmt.Errorf("h1: unsupported request URL %q", u)
	}
	if req.Method == http.MethodConnect {
		closeBody(req)
		return nil, errors.New("h1: CONNECT is not supported")
	}
	k := key{https: u.Scheme == "https", host: u.Host}
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		// The caller is gone: send nothing (a POST would still place its
		// call). The cancellation trap below acts too late for a request
		// written at once on an idle connection.
		closeBody(req)
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		var pc *conn
		var err error
		if attempt == 0 {
			pc, err = t.conn(ctx, k)
		} else {
			// The resend goes out on a new connection: the other idle ones
			// may be just as stale.
			pc, err = t.dial(ctx, k)
		}
		if err != nil {
			closeBody(req)
			return nil, err
		}
		resp, err := pc.roundTrip(req)
		if err == nil {
			return resp, nil
		}
		pc.close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// A kept-alive connection the server had closed: nothing of the
		// request was acted on. Send it once more, on a new connection, if
		// resending is harmless. A timeout is no such failure: the upstream
		// is slow, and a resend would double the wait ResponseHeaderTimeout
		// bounds.
		if attempt == 0 && pc.reused && !pc.gotBytes && !isTimeout(err) && resendable(req) {
			continue
		}
		return nil, err
	}
}

// resendable reports whether sending req twice cannot do anything twice.
func resendable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody {
		return false
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// conn returns an idle connection to k's host that is still open, or a new
// one.
func (t *Transport) conn(ctx context.Context, k key) (*conn, error) {
	for {
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			return nil, errClosed
		}
		list := t.idle[k]
		if len(list) == 0 {
			t.mu.Unlock()
			break
		}
		pc := list[len(list)-1]
		list[len(list)-1] = nil
		t.idle[k] = list[:len(list)-1]
		t.mu.Unlock()
		if time.Now().Sub(pc.idleAt) < t.idleTimeout() && pc.alive() {
			pc.reused = true
			return pc, nil
		}
		pc.close()
	}
	return t.dial(ctx, k)
}

func (t *Transport) idleTimeout() time.Duration {
	if t.IdleConnTimeout > 0 {
		return t.IdleConnTimeout
	}
	return 90 * time.Second
}

func (t *Transport) maxIdle() int {
	if t.MaxIdleConnsPerHost > 0 {
		return t.MaxIdleConnsPerHost
	}
	return 2
}

var defaultDialer = &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}

func (t *Transport) dial(ctx context.Context, k key) (*conn, error) {
	host, port, err := net.SplitHostPort(k.host)
	if err != nil {
		// No port: the scheme's. A bracketed IPv6 literal keeps its brackets
		// out of the name.
		host, port = k.host, "80"
		if k.https {
			port = "443"
		}
		if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
			host = host[1 : len(host)-1]
		}
	}
	dial := t.DialContext
	if dial == nil {
		dial = defaultDialer.DialContext
	}
	nc, err := dial(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, err
	}
	pc := &conn{t: t, key: k}
	if sc, ok := nc.(syscall.Conn); ok {
		pc.raw, _ = sc.SyscallConn()
	}
	if k.https {
		cfg := t.TLSClientConfig.Clone()
		if cfg == nil {
			cfg = &tls.Config{}
		}
		if cfg.ServerName == "" {
			cfg.ServerName = host
		}
		cfg.NextProtos = []string{"http/1.1"}
		tc := tls.Client(nc, cfg)
		hctx := ctx
		if t.TLSHandshakeTimeout > 0 {
			var cancel context.CancelFunc
			hctx, cancel = context.WithTimeout(ctx, t.TLSHandshakeTimeout)
			defer cancel()
		}
		if err := tc.HandshakeContext(hctx); err != nil {
			nc.Close()
			return nil, err
		}
		nc = tc
	}
	pc.nc = nc
	pc.br = bufio.NewReaderSize(&pc.counter, 4<<10)
	pc.counter.r = nc
	return pc, nil
}

// put returns a connection whose exchange ended cleanly to the pool.
func (t *Transport) put(pc *conn) {
	pc.idleAt = time.Now()
	pc.gotBytes = false
	t.mu.Lock()
	if t.closed || len(t.idle[pc.key]) >= t.maxIdle() {
		t.mu.Unlock()
		pc.close()
		return
	}
	if t.idle == nil {
		t.idle = make(map[key][]*conn)
	}
	t.idle[pc.key] = append(t.idle[pc.key], pc)
	if t.sweeper == nil {
		t.sweeper = time.AfterFunc(t.idleTimeout(), t.sweep)
	}
	t.mu.Unlock()
}

// sweep closes connections idle longer than IdleConnTimeout, and runs again
// while any connection is idle.
func (t *Transport) sweep() {
	var stale []*conn
	t.mu.Lock()
	now, limit := time.Now(), t.idleTimeout()
	for k, list := range t.idle {
		// Oldest first: put appends, conn takes from the end.
		n := 0
		for n < len(list) && now.Sub(list[n].idleAt) >= limit {
			n++
		}
		if n > 0 {
			stale = append(stale, list[:n]...)
			clear(list[:n])
			t.idle[k] = append(list[:0], list[n:]...)
		}
	}
	if t.idleLocked() > 0 && !t.closed {
		t.sweeper.Reset(limit / 2)
	} else {
		t.sweeper = nil
	}
	t.mu.Unlock()
	for _, pc := range stale {
		pc.close()
	}
}

// CloseIdleConnections closes every idle connection; connections in use
// close when their exchange ends.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, list := range idle {
		for _, pc := range list {
			pc.close()
		}
	}
}

// Close closes every idle connection and keeps no more: connections in use
// close when their exchange ends, and new requests fail.
func (t *Transport) Close() {
	t.mu.Lock()
	t.closed = true
	if t.sweeper != nil {
		t.sweeper.Stop()
	}
	t.mu.Unlock()
	t.CloseIdleConnections()
}

// IdleConns returns the number of idle connections in the pool.
func (t *Transport) IdleConns() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.idleLocked()
}

func (t *Transport) idleLocked() int {
	n := 0
	for _, list := range t.idle {
		n += len(list)
	}
	return n
}

// conn is one upstream connection. Only one exchange uses it at a time.
type conn struct {
	t        *Transport
	key      key
	nc       net.Conn
	raw      syscall.RawConn // the TCP socket, for the liveness check
	br       *bufio.Reader
	counter  countingReader
	idleAt   time.Time
	reused   bool // it served an exchange before this one
	gotBytes bool // some of this exchange's answer arrived
}

var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}

// countingReader counts what the connection delivered, to tell a
// connection that died before answering from one that died mid-answer.
type countingReader struct {
	r     net.Conn
	n     int64
	limit int64 // while reading a header: the count not to pass (0: none)
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.limit > 0 {
		left := c.limit - c.n
		if left <= 0 {
			return 0, errHeaderTooLarge
		}
		if int64(len(p)) > left {
			p = p[:left]
		}
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (pc *conn) close() { pc.nc.Close() }

// roundTrip writes req and reads the answer's header. On error the caller
// closes the connection.
func (pc *conn) roundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	var stop func() bool
	if ctx.Done() != nil {
		// The caller went away: unblock whatever read or write is under way.
		stop = context.AfterFunc(ctx, func() { pc.nc.SetDeadline(aLongTimeAgo) })
	}
	resp, err := pc.exchange(req)
	if err != nil {
		if stop != nil {
			stop()
		}
		return nil, err
	}
	if resp.Body == http.NoBody {
		pc.done(resp, req, stop, true)
		return resp, nil
	}
	resp.Body = &body{pc: pc, rc: resp.Body, resp: resp, req: req, stop: stop}
	return resp, nil
}

func (pc *conn) exchange(req *http.Request) (*http.Response, error) {
	start := pc.counter.n
	// Written without the caller's trace: Request.Write would report
	// WroteRequest before the buffer is flushed; it is reported below, once
	// the whole request reached the connection.
	wreq := req.WithContext(context.Background())
	var br *bodyReader
	if req.Body != nil && req.Body != http.NoBody {
		// Tell the body's own errors (too large, the caller went away) from
		// the connection's.
		br = &bodyReader{rc: req.Body}
		wreq.Body = br
	}
	// Writers are shared through a pool: a request is written in one go, so
	// an idle or waiting connection holds no write buffer.
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(pc.nc)
	werr := wreq.Write(bw)
	if werr == nil {
		werr = bw.Flush()
	}
	bw.Reset(nil)
	writers.Put(bw)
	if werr != nil {
		if br != nil && br.err != nil {
			return nil, br.err
		}
		// The server may have answered and closed before taking the whole
		// request (an early 401 or 413): that answer is worth more than the
		// write error. Give it a moment to be readable.
		pc.setReadDeadline(req, time.Now().Add(100*time.Millisecond))
		pc.counter.limit = pc.counter.n + maxHeaderBytes
		resp, err := http.ReadResponse(pc.br, req)
		pc.gotBytes = pc.counter.n > start
		if err != nil || resp.StatusCode < 200 {
			return nil, werr
		}
		pc.counter.limit = 0
		pc.setReadDeadline(req, time.Time{})
		resp.Close = true
		return resp, nil
	}
	// The whole request reached the connection: tell whoever traces it (a
	// lost answer from here on does not mean the server did nothing).
	trace := httptrace.ContextClientTrace(req.Context())
	if trace != nil && trace.WroteRequest != nil {
		trace.WroteRequest(httptrace.WroteRequestInfo{})
	}
	if d := pc.t.ResponseHeaderTimeout; d > 0 {
		pc.setReadDeadline(req, time.Now().Add(d))
	}
	// The whole header, 1xx answers included, is bounded (as net/http's).
	pc.counter.limit = pc.counter.n + maxHeaderBytes
	for n := 0; ; n++ {
		resp, err := http.ReadResponse(pc.br, req)
		pc.gotBytes = pc.counter.n > start
		if err != nil {
			if pc.t.ResponseHeaderTimeout > 0 && isTimeout(err) && req.Context().Err() == nil {
				return nil, errHeaderTimeout
			}
			return nil, err
		}
		code := resp.StatusCode
		if code >= 200 || code < 100 {
			pc.counter.limit = 0
			if pc.t.ResponseHeaderTimeout > 0 {
				pc.setReadDeadline(req, time.Time{})
			}
			return resp, nil
		}
		if code == http.StatusSwitchingProtocols {
			return nil, errUpgrade
		}
		if n >= max1xx {
			return nil, errTooMany1
		}
		// 100 Continue, 103 Early Hints: pass them to whoever traces the
		// request (httputil.ReverseProxy forwards them to its client).
		if trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(code, textproto.MIMEHeader(resp.Header)); err != nil {
				return nil, err
			}
		}
	}
}

// setReadDeadline sets the connection's read deadline without undoing the
// cancellation trap: if the caller went away before (the trap may already
// have fired), the deadline stays in the past. A cancellation after the
// check fires the trap after this deadline was set.
func (pc *conn) setReadDeadline(req *http.Request, d time.Time) {
	_ = pc.nc.SetReadDeadline(d)
	if req.Context().Err() != nil {
		_ = pc.nc.SetDeadline(aLongTimeAgo)
	}
}

// maxHeaderBytes bounds an answer's header (net/http's default).
const maxHeaderBytes = 10 << 20

var errHeaderTooLarge = errors.New("h1: answer header too large")

// errHeaderTimeout is a timeout, like net/http's own.
var errHeaderTimeout = timeoutError{"h1: timeout awaiting response headers"}

type timeoutError struct{ s string }

func (e timeoutError) Error() string   { return e.s }
func (e timeoutError) Timeout() bool   { return true }
func (e timeoutError) Temporary() bool { return true }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// done ends an exchange: the connection goes back to the pool if the answer
// was read to its end and both sides keep the connection alive.
func (pc *conn) done(resp *http.Response, req *http.Request, stop func() bool, clean bool) {
	if stop != nil && !stop() {
		clean = false // the deadline trap fired
	}
	if clean && !resp.Close && !req.Close && pc.br.Buffered() == 0 && pc.tlsQuiet() {
		pc.t.put(pc)
		return
	}
	pc.close()
}

// tlsQuiet reports whether crypto/tls holds nothing of what the server sent
// past the answer: decrypted bytes (a stray answer in the answer's last
// record) or a close_notify read with the answer's last bytes. The peek at
// the socket cannot see either. A read with a deadline in the past takes
// only what crypto/tls already has, without a system call (crypto/tls keeps
// no error from it: net's deadline errors are temporary).
func (pc *conn) tlsQuiet() bool {
	if !pc.key.https {
		return true
	}
	_ = pc.nc.SetReadDeadline(aLongTimeAgo)
	_, err := pc.br.Peek(1)
	_ = pc.nc.SetReadDeadline(time.Time{})
	return isTimeout(err)
}

// body is an answer's body; it gives the connection back at its end.
type body struct {
	pc   *conn
	rc   io.ReadCloser
	resp *http.Response
	req  *http.Request
	stop func() bool
	done bool
	err  error // what ended the body: io.EOF, a read error, or errBodyClosed
}

var errBodyClosed = errors.New("h1: read on closed body")

func (b *body) Read(p []byte) (int, error) {
	if b.done {
		// As net/http's: io.EOF stays io.EOF until Close.
		return 0, b.err
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.done, b.err = true, err
		b.pc.done(b.resp, b.req, b.stop, true)
	} else if err != nil {
		if ctxErr := b.req.Context().Err(); ctxErr != nil {
			err = ctxErr
		}
		b.done, b.err = true, err
		b.pc.done(b.resp, b.req, b.stop, false)
	}
	return n, err
}

func (b *body) Close() error {
	if !b.done {
		b.done = true
		b.pc.done(b.resp, b.req, b.stop, false)
	}
	b.err = errBodyClosed
	return nil
}

// bodyReader passes the request's body to the writer and keeps its error
// (net/http hides it behind its own wrapping).
type bodyReader struct {
	rc  io.ReadCloser
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

func (b *bodyReader) Close() error { return b.rc.Close() }
