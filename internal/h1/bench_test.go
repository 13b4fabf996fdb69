package h1

import (
	"io"
	"net"
	"net/http"
	"testing"
)

// BenchmarkRoundTrip sends GETs from 64 concurrent callers over keep-alive
// connections to a loopback net/http server in the same process, with this
// package's transport and with net/http's, the body read to its end: the
// client side of every proxied request. Compare the two lines of one run
// (benchstat-friendly names); the server's share of the time is the same in
// both.
func BenchmarkRoundTrip(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"Call":{"Sid":"abc","Status":"completed"}}`)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/v1/Accounts/acme/Calls/abc.json"

	for _, c := range []struct {
		name string
		tr   http.RoundTripper
	}{
		{"client=http1", &Transport{MaxIdleConnsPerHost: 64}},
		{"client=net-http", &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			// 64 callers at once, as a busy gateway has: the cost per request
			// when the CPU, not the round trip, is the limit.
			b.SetParallelism(32)
			b.RunParallel(func(pb *testing.PB) {
				req, _ := http.NewRequest("GET", url, nil)
				req.Header.Set("Authorization", "Basic a2V5OnRva2Vu")
				for pb.Next() {
					resp, err := c.tr.RoundTrip(req)
					if err != nil {
						b.Error(err)
						return
					}
					if _, err := io.Copy(io.Discard, resp.Body); err != nil {
						b.Error(err)
					}
					resp.Body.Close()
				}
			})
		})
	}
}
