package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// The reference contender: the obvious Go implementation of the same job —
// net/http's server and httputil.ReverseProxy, Authorization replaced, Host
// set, a keep-alive pool of 64, one JSON access line per request on stderr —
// and nothing else (no classification, limiter, breaker or metrics). It runs
// as a separate process (this binary, first argument "goproxy") and tells how
// much of exogate's cost is Go's net/http and how much is exogate's own.

func goproxyMain(args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("usage: compare goproxy LISTEN UPSTREAM AUTHORIZATION")
	}
	listen, upstream, auth := args[0], args[1], args[2]
	target, err := url.Parse("http://" + upstream)
	if err != nil {
		return err
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = target.Host
			pr.Out.Header["Authorization"] = []string{auth}
			pr.Out.Header.Del("Proxy-Authorization")
		},
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
		},
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: 200}
		rp.ServeHTTP(sw, r)
		line := make([]byte, 0, 256)
		line = append(line, `{"level":"info","time":"`...)
		line = start.UTC().AppendFormat(line, time.RFC3339)
		line = append(line, `","method":`...)
		line = strconv.AppendQuote(line, r.Method)
		line = append(line, `,"path":`...)
		line = strconv.AppendQuote(line, r.URL.Path)
		line = append(line, `,"status":`...)
		line = strconv.AppendInt(line, int64(sw.status), 10)
		line = append(line, `,"duration_ms":`...)
		line = strconv.AppendFloat(line, float64(time.Since(start).Microseconds())/1000, 'f', 3, 64)
		line = append(line, `,"message":"request"}`+"\n"...)
		_, _ = os.Stderr.Write(line)
	})
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	return srv.Serve(ln)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func newGoProxy(up, auth string) (*contender, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	base := "http://" + listen
	return &contender{
		name: "Go ReverseProxy", base: base, auth: staleAuth, proxy: true, reference: true,
		config:   "bench/compare/goproxy.go: net/http server + httputil.ReverseProxy (Rewrite: SetURL, Host, Authorization, drop Proxy-Authorization), MaxIdleConnsPerHost 64, one JSON access line per request to stderr (/dev/null)",
		readyURL: base + path, stopSig: syscall.SIGTERM,
		newCmd: func() *exec.Cmd {
			return exec.Command(self, "goproxy", listen, up, auth)
		},
	}, nil
}
