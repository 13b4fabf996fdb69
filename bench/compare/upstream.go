package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// upstream is the stand-in for Exotel: plain HTTP/1.1 on loopback, keep-alive,
// one small fixed JSON body for every request. It is written on raw
// connections rather than net/http so that it costs the machine as little as
// possible and the contenders, not the upstream, decide the numbers.
//
// Every request's Authorization header must be exactly the configured
// "Basic base64(key:token)", present once, and its Host the upstream's own
// address; anything else is counted (and answered 401 / 400), and a run with
// any such request is invalid.
type upstream struct {
	ln       net.Listener
	wantAuth []byte
	wantHost []byte
	delay    time.Duration // added before each answer, as Exotel's own round trip

	requests atomic.Int64
	authBad  atomic.Int64 // missing, wrong or repeated Authorization
	hostBad  atomic.Int64 // Host other than the upstream's address
	protoBad atomic.Int64 // unparsable request, chunked body, oversized header

	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// counts is a snapshot of the upstream's counters.
type counts struct{ requests, authBad, hostBad, protoBad int64 }

func (a counts) sub(b counts) counts {
	return counts{a.requests - b.requests, a.authBad - b.authBad, a.hostBad - b.hostBad, a.protoBad - b.protoBad}
}

func (c counts) bad() int64 { return c.authBad + c.hostBad + c.protoBad }

const body = `{"Call":{"Sid":"x","Status":"queued"}}`

var (
	respOK = []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	respAuth  = []byte("HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nbad auth\n")
	respHost  = []byte("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nbad host\n")
	respProto = []byte("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 10\r\n\r\nbad proto\n")
)

func startUpstream(wantAuth string) (*upstream, error) {
	return startUpstreamWith(wantAuth, nil, 0)
}

// startUpstreamWith is the stand-in over TLS when tlsConf is not nil, and
// answering each request delay after reading it when delay > 0.
func startUpstreamWith(wantAuth string, tlsConf *tls.Config, delay time.Duration) (*upstream, error) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ln := tcp
	if tlsConf != nil {
		ln = tls.NewListener(tcp, tlsConf)
	}
	u := &upstream{ln: ln, wantAuth: []byte(wantAuth), wantHost: []byte(tcp.Addr().String()), delay: delay, conns: map[net.Conn]struct{}{}}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.mu.Lock()
			u.conns[c] = struct{}{}
			u.mu.Unlock()
			u.wg.Add(1)
			go func() {
				defer u.wg.Done()
				u.serve(c)
				u.mu.Lock()
				delete(u.conns, c)
				u.mu.Unlock()
				c.Close()
			}()
		}
	}()
	return u, nil
}

func (u *upstream) addr() string { return u.ln.Addr().String() }

func (u *upstream) snapshot() counts {
	return counts{u.requests.Load(), u.authBad.Load(), u.hostBad.Load(), u.protoBad.Load()}
}

func (u *upstream) close() {
	u.ln.Close()
	u.mu.Lock()
	for c := range u.conns {
		c.Close()
	}
	u.mu.Unlock()
	u.wg.Wait()
}

var (
	hAuth  = []byte("authorization")
	hHost  = []byte("host")
	hCL    = []byte("content-length")
	hTE    = []byte("transfer-encoding")
	hConn  = []byte("connection")
	hClose = []byte("close")
)

// serve answers the requests of one connection until it closes.
func (u *upstream) serve(c net.Conn) {
	r := bufio.NewReaderSize(c, 8192)
	w := bufio.NewWriterSize(c, 8192)
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue // tolerated empty line between requests
		}
		if bytes.Count(line, []byte(" ")) < 2 || !bytes.Contains(line, []byte(" HTTP/1.")) {
			u.refuse(w)
			return
		}
		h := head{closeConn: bytes.Contains(line, []byte(" HTTP/1.0"))}
		if !u.readHead(r, &h) {
			return
		}
		u.requests.Add(1)
		if h.bad || h.chunked {
			u.refuse(w)
			return
		}
		if h.contentLength > 0 {
			if _, err := r.Discard(int(h.contentLength)); err != nil {
				return
			}
		}
		if !u.answer(r, w, &h) || h.closeConn {
			return
		}
	}
}

// head is what the stand-in checks in a request's header block.
type head struct {
	nAuth                   int
	authOK, hostOK          bool
	closeConn, chunked, bad bool
	contentLength           int64
}

// readHead reads the header lines up to the empty one into h; false when
// the connection broke or a line is over the buffer (8 KiB).
func (u *upstream) readHead(r *bufio.Reader, h *head) bool {
	headerBytes := 0
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return false
		}
		headerBytes += len(line)
		if headerBytes > 64<<10 {
			h.bad = true
			return true
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			return true
		}
		i := bytes.IndexByte(line, ':')
		if i <= 0 {
			h.bad = true
			continue
		}
		u.field(h, line[:i], bytes.TrimSpace(line[i+1:]))
	}
}

// field checks one header field (value is only valid until the next read).
func (u *upstream) field(h *head, name, value []byte) {
	switch {
	case bytes.EqualFold(name, hAuth):
		h.nAuth++
		h.authOK = bytes.Equal(value, u.wantAuth)
	case bytes.EqualFold(name, hHost):
		h.hostOK = bytes.Equal(value, u.wantHost)
	case bytes.EqualFold(name, hCL):
		n, err := strconv.ParseInt(string(value), 10, 64)
		if err != nil || n < 0 {
			h.bad = true
		}
		h.contentLength = n
	case bytes.EqualFold(name, hTE):
		h.chunked = true
	case bytes.EqualFold(name, hConn):
		if bytes.EqualFold(value, hClose) {
			h.closeConn = true
		}
	}
}

// refuse answers a request the stand-in cannot parse, before the
// connection is closed.
func (u *upstream) refuse(w *bufio.Writer) {
	u.protoBad.Add(1)
	_, _ = w.Write(respProto)
	_ = w.Flush()
}

// answer writes the answer to a parsed request, after the delay, flushing
// when no further request is already waiting (pipelining); false when the
// connection broke.
func (u *upstream) answer(r *bufio.Reader, w *bufio.Writer, h *head) bool {
	if u.delay > 0 {
		time.Sleep(u.delay)
	}
	switch {
	case h.nAuth != 1 || !h.authOK:
		u.authBad.Add(1)
		_, _ = w.Write(respAuth)
	case !h.hostOK:
		u.hostBad.Add(1)
		_, _ = w.Write(respHost)
	default:
		_, _ = w.Write(respOK)
	}
	if r.Buffered() == 0 || h.closeConn {
		return w.Flush() == nil
	}
	return true
}
