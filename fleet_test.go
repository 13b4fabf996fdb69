package main

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/exogate/exogate/internal/fakeexotel"
	"github.com/exogate/exogate/internal/redistest"
)

// fleet is three gateway replicas sharing one Redis, in front of a fake
// Exotel that enforces the account's limit itself.
type fleet struct {
	farm     *exotelFarm
	redis    *redistest.Server
	replicas []*process
}

const (
	fleetLimit  = 40
	fleetPeriod = 2 * time.Second
)

// The gateways' bucket allows limit in fleetPeriod with burst; Exotel
// enforces fleetLimit.
func startFleet(t *testing.T, limit, burst int, extra string) *fleet {
	t.Helper()
	f := &fleet{farm: newFarm(t), redis: redistest.Start(t)}
	f.farm.fakes["singapore-api"].SetLimit(fleetLimit, fleetPeriod)
	cfg := writeFile(t, "exogate.yaml", f.farm.config(fmt.Sprintf(`limits:
  backend: redis
  # A generous timeout: on a loaded machine a call can take over the
  # default 100ms, and the replica would switch to its local share, which
  # starts with full buckets. A stopped Redis refuses at once all the same.
  redis: {address: %q, key_prefix: "fleet:", timeout: 2s}
  replicas: 3
  max_wait: 3s
  buckets:
    voice_v1: {limit: %d, period: %s, burst: %d}
%s`, f.redis.Addr(), limit, fleetPeriod, burst, extra)))
	for range 3 {
		f.replicas = append(f.replicas, startBinary(t, cfg))
	}
	return f
}

// demand sends n requests, spread evenly over d, round robin over the
// replicas, each from its own goroutine, and returns the status counts.
func (f *fleet) demand(n int, d time.Duration) map[int]int {
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	tick := time.NewTicker(d / time.Duration(n))
	defer tick.Stop()
	for i := range n {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			code := -1
			resp, err := http.Get(f.replicas[i%len(f.replicas)].base + "/v1/Accounts/acme/Calls.json")
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				code = resp.StatusCode
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return codes
}

// Three replicas, one account, three times the demand the fleet allows:
// Exotel never sees its limit exceeded, and the fleet loses no token while
// callers wait.
//
// The fleet is configured below Exotel's limit. The limiter's guarantee is
// on the requests leaving the gateways; Exotel's clock stamps each one when
// it arrives, a trip later, and on a busy machine those trips vary: with the
// fleet at Exotel's exact limit and Burst 1 (a token every 51ms), a trip
// 51ms slower than the one before put 41 requests into one of Exotel's
// windows, and so did Burst 30 (a token every 200ms) once in 13 runs. The
// fleet's 30 leave Exotel's 40 ten requests for
// the trips; three replicas each spending the budget on their own would
// still send Exotel three times the fleet's limit.
//
// The bucket has Burst 20 because with Burst 1 every moment a replica is
// late for a token is lost for good, so how many get through would measure
// the machine as much as the gateway; with Burst 20 (a token every 200ms)
// a token is lost only when nobody takes any for nearly four seconds.
func TestFleetSharesOneBudget(t *testing.T) {
	// Serial: a Redis limiter routes go-redis's process-wide logger.
	const limit, burst = 30, 20
	f := startFleet(t, limit, burst, "")
	api := f.farm.fakes["singapore-api"]
	// 3x demand for two periods.
	codes := f.demand(3*2*limit, 2*fleetPeriod)
	if n := api.Excess(); n != 0 {
		t.Errorf("Exotel saw %d requests over its limit", n)
	}
	if w := api.MaxInWindow(fleetPeriod); w > fleetLimit {
		t.Errorf("Exotel saw %d requests in one %s window, limit %d", w, fleetPeriod, fleetLimit)
	}
	for code := range codes {
		if code != 200 && code != 429 {
			t.Errorf("status %d seen (%d times): only 200 and the gateway's 429 are expected", code, codes[code])
		}
	}
	// Callers wait in line from the first request to the last one that
	// got through: the first Burst go at once, then one every interval.
	// (Exotel may see the last one late by up to an interval; the floor
	// takes another.)
	reqs := api.Requests()
	if len(reqs) == 0 {
		t.Fatal("Exotel received nothing")
	}
	first, last := reqs[0].At, reqs[0].At
	for _, r := range reqs {
		if r.At.Before(first) {
			first = r.At
		}
		if r.At.After(last) {
			last = r.At
		}
	}
	iv := fleetPeriod / (limit - burst)
	span := last.Sub(first)
	got := len(reqs) - int(api.Excess())
	if want := burst + int(span/iv) - 1; got < want {
		t.Errorf("Exotel accepted %d requests over %v, want at least %d (Burst %d, then one every %v)", got, span, want, burst, iv)
	}
	if codes[200] != got {
		t.Errorf("%d callers answered 200, Exotel accepted %d", codes[200], got)
	}
	t.Logf("fleet of 3 limited to %d, 3x demand for 2 periods: statuses %v; Exotel accepted %d over %v; busiest window %d/%d; excess %d",
		limit, codes, got, span, api.MaxInWindow(fleetPeriod), fleetLimit, api.Excess())
}

// Exotel answers 429 once with Retry-After: every replica holds the bucket
// back until then, and the refused request is sent once more after it.
func TestFleetPausesOnExotel429(t *testing.T) {
	// Serial: a Redis limiter routes go-redis's process-wide logger.
	f := startFleet(t, fleetLimit, 1, "")
	api := f.farm.fakes["singapore-api"]
	var refusedAt atomic.Int64
	api.SetOverride(func(r fakeexotel.Request) (int, string, bool) {
		if refusedAt.CompareAndSwap(0, r.At.UnixNano()) {
			return 429, "", true
		}
		return 0, "", false
	})
	api.SetHeader("Retry-After", "2")

	first := make(chan int, 1)
	go func() {
		resp, err := http.Get(f.replicas[0].base + "/v1/Accounts/acme/Calls.json")
		if err != nil {
			first <- -1
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	waitFor(t, func() bool { return refusedAt.Load() != 0 })
	// The pause reaches the other replicas through Redis, a moment later
	// (longer on a busy machine); a request they admit before it arrives
	// can reach Exotel during the pause. Wait until each one reports it.
	for i, p := range f.replicas {
		admin := p.adminURL(t)
		waitFor(t, func() bool {
			left := value(scrape(t, admin), "exogate_limiter_pause_seconds", map[string]string{"account": "acme", "bucket": "voice_v1"})
			if left == 0 && refusedAt.Load() != 0 && time.Since(time.Unix(0, refusedAt.Load())) > 2*time.Second {
				t.Fatalf("replica %d never learned of the pause", i)
			}
			return left > 0
		})
	}
	// The other replicas are asked meanwhile.
	codes := f.demand(10, time.Second)
	if code := <-first; code != 200 {
		t.Errorf("the refused request ended %d, want 200 after its one retry", code)
	}
	pauseEnd := time.Unix(0, refusedAt.Load()).Add(2 * time.Second)
	early := 0
	for _, r := range api.Requests() {
		if r.At.After(time.Unix(0, refusedAt.Load())) && r.At.Before(pauseEnd.Add(-50*time.Millisecond)) {
			early++
		}
	}
	if early != 0 {
		t.Errorf("%d requests reached Exotel during the fleet-wide pause", early)
	}
	t.Logf("statuses of the other replicas' callers during the pause: %v", codes)
}

// Redis stops mid-run and comes back: no 5xx at any point, each replica
// falls back to its share of the budget, then all return to Redis.
//
// The limit is 11 in 2s, so that each replica's share (3 in 2s, Burst 1)
// spaces its tokens a second apart and the three shares leave two requests
// of the limit unused: Exotel stamps requests a trip after the replicas'
// decisions, and on a busy machine those trips vary by more than the 167ms
// between tokens a share of 40 would leave (with one request to spare; 42
// and 43 were seen), and once in 11 runs under heavy load by more than the
// 400ms a share of 20 would leave.
// Exotel enforces the limit only while the shares are measured: the switch
// itself is not seamless (the fallback starts with full buckets, as does an
// emptied Redis), and Exotel's 429s would pause the fleet.
func TestFleetSurvivesRedisOutage(t *testing.T) {
	// Serial: a Redis limiter routes go-redis's process-wide logger.
	const limit = 11
	f := startFleet(t, limit, 1, "  on_backend_failure: local\n")
	api := f.farm.fakes["singapore-api"]
	api.SetLimit(0, 0)
	before := f.demand(30, time.Second)
	f.redis.Stop()
	during := f.demand(3*limit, fleetPeriod)
	api.Reset()
	api.SetLimit(limit, fleetPeriod)
	during2 := f.demand(3*limit, fleetPeriod)
	api.SetLimit(0, 0)
	inFallback, fallbackExcess := api.MaxInWindow(fleetPeriod), api.Excess()
	f.redis.Restart()
	waitFor(t, func() bool {
		for _, p := range f.replicas {
			if !strings.Contains(p.logs.String(), "Redis available again") {
				return false
			}
		}
		return true
	})
	after := f.demand(30, time.Second)
	for name, codes := range map[string]map[int]int{"before": before, "during": during, "during2": during2, "after": after} {
		for code, n := range codes {
			if code != 200 && code != 429 {
				t.Errorf("%s the outage: status %d seen %d times", name, code, n)
			}
		}
	}
	// Each replica holds a third of the budget: together no more than the limit.
	if inFallback > limit || fallbackExcess != 0 {
		t.Errorf("Exotel received %d in one period while Redis was down (%d over its limit), limit %d", inFallback, fallbackExcess, limit)
	}
	if inFallback == 0 {
		t.Error("nothing was admitted while Redis was down")
	}
	for i, p := range f.replicas {
		if n := strings.Count(p.logs.String(), "Redis unavailable, limiting without it"); n != 1 {
			t.Errorf("replica %d logged the switch to the local fallback %d times, want once", i, n)
		}
	}
	t.Logf("Redis outage: before %v, during %v / %v, after %v; busiest period of fallback %d/%d", before, during, during2, after, inFallback, limit)
}

// Anyone who can write to Redis can publish on the pause channel: on the
// built binary a 48-hour pause is cut to 24 hours (the most exogate honours
// of Exotel's own Retry-After) and a malformed message is ignored and
// counted in /metrics.
func TestFleetPauseChannelIsBounded(t *testing.T) {
	// Serial: a Redis limiter routes go-redis's process-wide logger.
	farm := newFarm(t)
	srv := redistest.Start(t)
	cfg := writeFile(t, "exogate.yaml", farm.config(fmt.Sprintf(`limits:
  backend: redis
  redis: {address: %q, key_prefix: "pc:"}
  buckets:
    voice_v1: {limit: 100, period: 1s, burst: 10}
`, srv.Addr())))
	p := startBinary(t, cfg)
	admin := p.adminURL(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { rdb.Close() })
	// The gateway subscribes once it is up; publish until it has heard.
	waitFor(t, func() bool {
		if err := rdb.Publish(t.Context(), "pc:pauses", "acme voice_v1 not-a-number").Err(); err != nil {
			t.Fatal(err)
		}
		return value(scrape(t, admin), "exogate_limiter_malformed_pause_messages_total", nil) > 0
	})
	if err := rdb.Publish(t.Context(), "pc:pauses", fmt.Sprintf("acme voice_v1 %d", (48*time.Hour).Milliseconds())).Err(); err != nil {
		t.Fatal(err)
	}
	var left float64
	waitFor(t, func() bool {
		left = value(scrape(t, admin), "exogate_limiter_pause_seconds", map[string]string{"account": "acme", "bucket": "voice_v1"})
		return left > 0
	})
	if left > (24 * time.Hour).Seconds() {
		t.Errorf("pause from a 48h message: %vs left, want at most 24h", left)
	}
	resp, _ := send(t, "GET", p.base+"/v1/Accounts/acme/Calls.json", "", nil)
	if resp.StatusCode != 429 {
		t.Errorf("during the pause: %d, want 429", resp.StatusCode)
	}
	if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); ra <= 0 || ra > 24*3600 {
		t.Errorf("Retry-After %q, want at most a day", resp.Header.Get("Retry-After"))
	}
}
