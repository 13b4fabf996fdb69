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
			u.protoBad.Add(1)
			_, _ = w.Write(respProto)
			_ = w.Flush()
			return
		}
		http10 := bytes.Contains(line, []byte(" HTTP/1.0"))
		nAuth, authOK, hostOK, closeConn, chunked := 0, false, false, http10, false
		contentLength := int64(0)
		headerBytes := 0
		bad := false
		for {
			h, err := r.ReadSlice('\n')
			if err != nil {
				return // includes bufio.ErrBufferFull: a header line over 8 KiB
			}
			headerBytes += len(h)
			if headerBytes > 64<<10 {
				bad = true
				break
			}
			h = bytes.TrimRight(h, "\r\n")
			if len(h) == 0 {
				break
			}
			i := bytes.IndexByte(h, ':')
			if i <= 0 {
				bad = true
				continue
			}
			name, value := h[:i], bytes.TrimSpace(h[i+1:])
			switch {
			case bytes.EqualFold(name, hAuth):
				nAuth++
				authOK = bytes.Equal(value, u.wantAuth)
			case bytes.EqualFold(name, hHost):
				hostOK = bytes.Equal(value, u.wantHost)
			case bytes.EqualFold(name, hCL):
				n, err := strconv.ParseInt(string(value), 10, 64)
				if err != nil || n < 0 {
					bad = true
				}
				contentLength = n
			case bytes.EqualFold(name, hTE):
				chunked = true
			case bytes.EqualFold(name, hConn):
				if bytes.EqualFold(value, hClose) {
					closeConn = true
				}
			}
		}
		u.requests.Add(1)
		if bad || chunked {
			u.protoBad.Add(1)
			_, _ = w.Write(respProto)
			_ = w.Flush()
			return
		}
		if contentLength > 0 {
			if _, err := r.Discard(int(contentLength)); err != nil {
				return
			}
		}
		if u.delay > 0 {
			time.Sleep(u.delay)
		}
		switch {
		case nAuth != 1 || !authOK:
			u.authBad.Add(1)
			_, _ = w.Write(respAuth)
		case !hostOK:
			u.hostBad.Add(1)
			_, _ = w.Write(respHost)
		default:
			_, _ = w.Write(respOK)
		}
		// Flush when no further request is already waiting (pipelining).
		if r.Buffered() == 0 || closeConn {
			if err := w.Flush(); err != nil {
				return
			}
		}
		if closeConn {
			return
		}
	}
}
