package h1

import (
	"io"
	"net"
	"net/http"
	"testing"
)

// BenchmarkRoundTrip sends GETs over one keep-alive connection to a loopback
// server, with this package's transport and with net/http's, the body read
// to its end: the client side of every proxied request. Compare the two
// lines of one run (benchstat-friendly names).
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
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("Authorization", "Basic a2V5OnRva2Vu")
			buf := make([]byte, 512)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				resp, err := c.tr.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.CopyBuffer(io.Discard, resp.Body, buf); err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
		})
	}
}
