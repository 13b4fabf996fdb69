package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// limitedBody passes the request body on and fails once more than MaxBody
// bytes have been read, whatever Content-Length said. When record is set it
// keeps a copy of what it passed on, so that a request Exotel refused with
// 401 or 429 can be sent again. A preloaded body (chunked on the way in) is
// held whole in rec from the start.
type limitedBody struct {
	rc        io.ReadCloser
	left      int64
	record    bool
	rec       []byte
	preloaded bool
	pre       bytes.Reader
	exceeded  atomic.Bool
	eof       atomic.Bool // the whole body was read: rec is complete
}

// preload reads the whole body, up to max bytes, into rec.
func (b *limitedBody) preload(rc io.Reader, max int64) error {
	buf := bytes.NewBuffer(b.rec[:0])
	n, err := buf.ReadFrom(io.LimitReader(rc, max+1))
	b.rec = buf.Bytes()
	switch {
	case n > max:
		return errBodyTooLarge
	case err != nil:
		return fmt.Errorf("reading the request body: %w", context.Canceled)
	}
	b.preloaded, b.record = true, true
	b.pre.Reset(b.rec)
	b.eof.Store(true)
	return nil
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.preloaded {
		return b.pre.Read(p)
	}
	if b.left <= 0 {
		// Read one byte more to tell "exactly MaxBody" from "more".
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			b.exceeded.Store(true)
			return 0, errBodyTooLarge
		}
		if err == io.EOF {
			b.eof.Store(true)
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	// Only a read that brought bytes touches rec: the transport may read
	// again after the end while a replay is already copying rec.
	if b.record && n > 0 {
		b.rec = append(b.rec, p[:n]...)
	}
	if err == io.EOF {
		b.eof.Store(true)
	}
	return n, err
}

// Close does nothing: the server closes the client's body when the handler
// returns, and the transport must not close it before a replay.
func (b *limitedBody) Close() error { return nil }

// replay returns a fresh copy of the whole body, or false if it was not read
// to the end (Exotel answered before it was sent) or not recorded.
func (b *limitedBody) replay() (io.ReadCloser, bool) {
	if !b.record || !b.eof.Load() {
		return nil, false
	}
	return io.NopCloser(bytes.NewReader(b.rec)), true
}

// bufferPool lends the ReverseProxy its copy buffers.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 8<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }
