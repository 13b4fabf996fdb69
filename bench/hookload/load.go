package main

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// result is one load's outcome: n requests, errs of them not answered 200,
// over elapsed.
type result struct {
	n, errs  int
	firstErr string
	lat      []time.Duration // sorted
	elapsed  time.Duration
}

// rate is 200s per second.
func (r result) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.n-r.errs) / r.elapsed.Seconds()
}

// pct is the q-th quantile of the latencies (1 = the largest).
func (r result) pct(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(q*float64(len(r.lat))+0.5) - 1
	return r.lat[min(max(i, 0), len(r.lat)-1)]
}

// recorder collects latencies and errors from many goroutines.
type recorder struct {
	mu       sync.Mutex
	lat      []time.Duration
	errs     int
	firstErr string
}

func (rec *recorder) add(d time.Duration, err error) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.lat = append(rec.lat, d)
	if err != nil {
		if rec.errs == 0 {
			rec.firstErr = err.Error()
		}
		rec.errs++
	}
}

func (rec *recorder) result(elapsed time.Duration) result {
	slices.Sort(rec.lat)
	return result{n: len(rec.lat), errs: rec.errs, firstErr: rec.firstErr, lat: rec.lat, elapsed: elapsed}
}

func client(conns int) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true,
	}}
}

// send sends a GET when body is nil, else a form POST of body(). Anything but 200 is an error.
func send(c *http.Client, url string, body func() string) error {
	var resp *http.Response
	var err error
	if body == nil {
		resp, err = c.Get(url)
	} else {
		resp, err = c.Post(url, "application/x-www-form-urlencoded", strings.NewReader(body()))
	}
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// paced sends rate requests per second for d, each on time whether or
// not earlier ones were answered (at most 1024 in flight), and times each
// from the moment it was due.
func paced(url string, body func() string, rate float64, d time.Duration) result {
	const inFlight = 1024
	c := client(inFlight)
	defer c.CloseIdleConnections()
	var rec recorder
	var wg sync.WaitGroup
	sem := make(chan struct{}, inFlight)
	n := int64(rate * d.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for i := range n {
		due := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(due))
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			err := send(c, url, body)
			rec.add(time.Since(due), err)
		}()
	}
	wg.Wait()
	return rec.result(time.Since(start))
}

// closed runs conns clients back to back, for d or, when d is 0, until
// count requests have been sent.
func closed(url string, body func() string, conns int, d time.Duration, count int) result {
	c := client(conns)
	defer c.CloseIdleConnections()
	var rec recorder
	var wg sync.WaitGroup
	var sent atomic.Int64
	start := time.Now()
	deadline := start.Add(d)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if d > 0 && time.Now().After(deadline) {
					return
				}
				if d == 0 && sent.Add(1) > int64(count) {
					return
				}
				t := time.Now()
				err := send(c, url, body)
				rec.add(time.Since(t), err)
			}
		}()
	}
	wg.Wait()
	return rec.result(time.Since(start))
}
