package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"time"
)

// clientsMain is `compare clients`: exogate's own HTTP/1.1 upstream client
// (upstream.client: http1) against net/http's Transport (upstream.client:
// net/http), the two gateways differing only in that key, in front of the
// stand-in served over TLS and answering each request after a delay (as
// Exotel's round trip). Fixed rate (open loop) and saturated (wrk), the two
// interleaved over rounds; CPU per request, p50/p99 and peak RSS, medians.
func clientsMain(args []string) error {
	fs := flag.NewFlagSet("compare clients", flag.ExitOnError)
	bin := fs.String("exogate", "", "path to the exogate binary")
	delay := fs.Duration("upstream-delay", 20*time.Millisecond, "the stand-in answers each request this long after reading it")
	rounds := fs.Int("rounds", 5, "rounds, the two clients interleaved")
	rate := fs.Float64("rate", 2000, "fixed rate, requests per second")
	rateFor := fs.Duration("rate-duration", 5*time.Second, "each fixed-rate run")
	conns := fs.Int("conns", 256, "wrk connections (saturated)")
	dur := fs.Duration("duration", 10*time.Second, "each saturated wrk run (whole seconds)")
	_ = fs.Parse(args)
	if *bin == "" || *rounds < 1 || *rounds > 50 || *rate <= 0 || *rate > 20000 || *dur < time.Second {
		return fmt.Errorf("usage: compare clients -exogate PATH [-rounds 1..50] [-rate ≤ 20000] [-duration ≥ 1s]")
	}
	dir, err := os.MkdirTemp("", "exogate-clients")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte(key+":"+token))
	srvConf, caFile, err := selfSigned(dir)
	if err != nil {
		return err
	}
	up, err := startUpstreamWith(wantAuth, srvConf, *delay)
	if err != nil {
		return err
	}
	defer up.close()
	var cs []*contender
	for _, client := range []string{"http1", "net/http"} {
		c, err := newExogateClient(dir, *bin, up.addr(), caFile, client)
		if err != nil {
			return err
		}
		if _, _, err := c.start(); err != nil {
			return err
		}
		defer c.stop()
		cs = append(cs, c)
	}
	res := map[string]*clientStats{}
	for _, c := range cs {
		res[c.name] = &clientStats{}
		if _, err := runWrk(c.url(), c.auth, 2, *conns, 2*time.Second); err != nil { // warm-up, not recorded
			return err
		}
	}
	for r := 0; r < *rounds; r++ {
		for i := range cs {
			c := cs[(i+r)%len(cs)]
			if err := clientRound(c, up, res[c.name], r, *rate, *rateFor, *conns, *dur); err != nil {
				return err
			}
		}
	}
	printClients(cs, res, *delay, *rate, *conns)
	return nil
}

// clientStats are one client's rounds.
type clientStats struct {
	rateCPU, satCPU     []float64 // µs of exogate CPU per request
	rateP50, rateP99    []time.Duration
	satP50, satP99      []time.Duration
	satRPS              []float64
	rateRSS, satRSS     []int64 // peak KiB during the run
	errors, bad, non2xx int64
}

// clientRound is one fixed-rate and one saturated run of c.
func clientRound(c *contender, up *upstream, s *clientStats, r int, rate float64, rateFor time.Duration, conns int, dur time.Duration) error {
	pids := c.pids()
	stop, cpu0, before := sampleRSS(pids, 100*time.Millisecond), cpuTime(pids), up.snapshot()
	ol := openLoop(c.url(), c.auth, rate, 500*time.Millisecond, rateFor)
	d := up.snapshot().sub(before)
	cpu := cpuTime(pids) - cpu0
	s.rateRSS = append(s.rateRSS, stop())
	s.rateCPU = append(s.rateCPU, perReq(cpu, d.requests))
	s.rateP50, s.rateP99 = append(s.rateP50, pct(ol.lat, 0.5)), append(s.rateP99, pct(ol.lat, 0.99))
	s.errors += ol.errors
	s.bad += d.bad()
	progress("round %d %-8s rate %.0f/s: p50 %s p99 %s cpu %.1f µs/req errors %d late p99 %s", r+1, c.name, rate,
		fmtDur(pct(ol.lat, 0.5)), fmtDur(pct(ol.lat, 0.99)), perReq(cpu, d.requests), ol.errors, fmtDur(ol.lateP99))

	stop, cpu0, before = sampleRSS(pids, 100*time.Millisecond), cpuTime(pids), up.snapshot()
	w, err := runWrk(c.url(), c.auth, 2, conns, dur)
	d = up.snapshot().sub(before)
	cpu = cpuTime(pids) - cpu0
	s.satRSS = append(s.satRSS, stop())
	if err != nil {
		return fmt.Errorf("%s: %w", c.name, err)
	}
	s.satCPU = append(s.satCPU, perReq(cpu, d.requests))
	s.satP50, s.satP99, s.satRPS = append(s.satP50, w.p50), append(s.satP99, w.p99), append(s.satRPS, w.rps)
	s.non2xx += w.non2xx + w.socketErrors
	s.bad += d.bad()
	progress("round %d %-8s saturated -c %d: %.0f req/s p50 %s p99 %s cpu %.1f µs/req non-2xx+socket errors %d", r+1, c.name, conns,
		w.rps, fmtDur(w.p50), fmtDur(w.p99), perReq(cpu, d.requests), w.non2xx+w.socketErrors)
	return nil
}

func perReq(cpu time.Duration, n int64) float64 {
	if n == 0 {
		return 0
	}
	return float64(cpu.Microseconds()) / float64(n)
}

// spread is "median (min–max)" of xs formatted by f.
func spread[T int64 | float64 | time.Duration](xs []T, f func(T) string) (string, T) {
	s := append([]T(nil), xs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return fmt.Sprintf("%s (%s–%s)", f(m), f(s[0]), f(s[len(s)-1])), m
}

// printClients prints the Markdown table: medians (min–max) and h1 ÷ net/http.
func printClients(cs []*contender, res map[string]*clientStats, delay time.Duration, rate float64, conns int) {
	us := func(v float64) string { return fmt.Sprintf("%.1f µs", v) }
	rps := func(v float64) string { return fmt.Sprintf("%.0f", v) }
	kib := func(v int64) string { return mib(v) }
	a, b := res[cs[0].name], res[cs[1].name]
	fmt.Printf("TLS stand-in, %s added per response; fixed rate %.0f req/s (open loop) and saturated (wrk -t2 -c%d); %d rounds interleaved; median (min–max)\n\n",
		delay, rate, conns, len(a.satRPS))
	fmt.Printf("| measure | %s | %s | %s ÷ %s |\n|---|---|---|---|\n", cs[0].name, cs[1].name, cs[0].name, cs[1].name)
	row := func(name string, x, y string, mx, my float64) {
		fmt.Printf("| %s | %s | %s | %.2f |\n", name, x, y, mx/my)
	}
	durRow := func(name string, xs, ys []time.Duration) {
		x, mx := spread(xs, fmtDur)
		y, my := spread(ys, fmtDur)
		row(name, x, y, float64(mx), float64(my))
	}
	fRow := func(name string, xs, ys []float64, f func(float64) string) {
		x, mx := spread(xs, f)
		y, my := spread(ys, f)
		row(name, x, y, mx, my)
	}
	kRow := func(name string, xs, ys []int64) {
		x, mx := spread(xs, kib)
		y, my := spread(ys, kib)
		row(name, x, y, float64(mx), float64(my))
	}
	fRow(fmt.Sprintf("CPU per request at %.0f/s", rate), a.rateCPU, b.rateCPU, us)
	durRow(fmt.Sprintf("p50 at %.0f/s", rate), a.rateP50, b.rateP50)
	durRow(fmt.Sprintf("p99 at %.0f/s", rate), a.rateP99, b.rateP99)
	kRow(fmt.Sprintf("peak RSS at %.0f/s", rate), a.rateRSS, b.rateRSS)
	fRow("saturated req/s", a.satRPS, b.satRPS, rps)
	fRow("CPU per request, saturated", a.satCPU, b.satCPU, us)
	durRow("p50 saturated", a.satP50, b.satP50)
	durRow("p99 saturated", a.satP99, b.satP99)
	kRow("peak RSS saturated", a.satRSS, b.satRSS)
	for _, c := range cs {
		s := res[c.name]
		fmt.Printf("\n%s: fixed-rate errors %d, wrk non-2xx + socket errors %d, upstream mismatches %d", c.name, s.errors, s.non2xx, s.bad)
	}
	fmt.Println()
}

// newExogateClient is exogate in front of the TLS stand-in with the given
// upstream.client; everything else as newExogate, with a pool wide enough
// for the saturated runs.
func newExogateClient(dir, bin, up, caFile, client string) (*contender, error) {
	cfg, port, err := exogateConfig(fmt.Sprintf(`  client: %s
  ca_file: %s
  max_idle_conns_per_host: 512
  regions: {singapore: {api: "https://%s", ccm: "https://%s"}}`, client, caFile, up, up))
	if err != nil {
		return nil, err
	}
	file, err := writeFile(dir, strings.ReplaceAll(client, "/", "")+".yaml", cfg)
	if err != nil {
		return nil, err
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	return &contender{
		name: client, base: base, auth: staleAuth, config: cfg, proxy: true,
		readyURL: base + path, stopSig: syscall.SIGINT,
		newCmd: func() *exec.Cmd {
			cmd := exec.Command(bin, "-config", file)
			cmd.Env = []string{"K=" + key, "T=" + token}
			return cmd
		},
	}, nil
}

// selfSigned is a TLS server configuration for 127.0.0.1 with a fresh
// self-signed certificate, and the path of that certificate's PEM file.
func selfSigned(dir string) (*tls.Config, string, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "stand-in"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return nil, "", err
	}
	file, err := writeFile(dir, "stand-in.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	if err != nil {
		return nil, "", err
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, file, nil
}
