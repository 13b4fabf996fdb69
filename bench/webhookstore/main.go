// Command webhookstore measures the webhook store on the acknowledgement
// path, on this machine's disk with an fsync per commit: the bbolt store
// the webhooks package uses (group commit through bbolt's DB.Batch, at
// several batch delays) against the same work in SQLite in pure Go
// (modernc.org/sqlite, WAL, synchronous=FULL). It reports, as Markdown:
//
//   - acknowledgements per second and p50/p99 latency with 1, 16 and 64
//     concurrent accepters (closed loop);
//   - p50/p99/max latency at a paced 200 callbacks/s (open loop, latency
//     measured from each callback's scheduled time);
//   - the Go heap with 1,000 and with 100,000 pending messages (bbolt).
//
// Each run writes a fresh file under -dir (which must be on a real disk:
// tmpfs makes fsync free) and removes it. Every load loop is bounded in
// count and time. Run it with bench/webhookstore.sh, which also reports
// what each backend adds to a binary's size.
package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/exogate/exogate/webhooks"
)

// backend is one store on the acknowledgement path.
type backend interface {
	accept(m webhooks.Message) (webhooks.Outcome, error)
	close() error
}

// contender names a way to open a backend in a file.
type contender struct {
	name string
	open func(path string) (backend, error)
}

func main() {
	dir := flag.String("dir", os.TempDir(), "directory for the store files (a real disk, not tmpfs)")
	ops := flag.Int("ops", 2000, "acknowledgements per closed-loop run (a quarter of it with 1 accepter)")
	maxDur := flag.Duration("max", 20*time.Second, "time bound of one run")
	rate := flag.Int("rate", 200, "paced callbacks per second")
	paced := flag.Duration("paced", 5*time.Second, "length of the paced run")
	rounds := flag.Int("rounds", 3, "rounds; the contenders take turns in each, the tables give medians")
	heapN := flag.Int("heap", 100000, "pending messages for the heap measure (0 = skip)")
	delays := flag.String("delays", "1ms,2ms,10ms", "bbolt batch delays to measure")
	only := flag.String("only", "", "measure only contenders whose name contains this")
	flag.Parse()
	work, err := os.MkdirTemp(*dir, "webhookstore-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(work)
	cs := []contender{fsyncContender()}
	for _, d := range strings.Split(*delays, ",") {
		delay, err := time.ParseDuration(d)
		if err != nil {
			fatal(err)
		}
		cs = append(cs, bboltContender(delay))
	}
	cs = slices.DeleteFunc(append(cs, extraContenders()...), func(c contender) bool { return !strings.Contains(c.name, *only) })
	fmt.Printf("%s, GOMAXPROCS=%d, %d rounds, body %d B, load average before: %s\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtimeProcs(), *rounds, len(body(0)), loadavg())
	res := map[string][]result{} // contender|accepters → one per round
	for r := range *rounds {
		fmt.Fprintf(os.Stderr, "round %d/%d\n", r+1, *rounds)
		for _, c := range cs {
			for _, n := range []int{1, 16, 64} {
				k := fmt.Sprintf("%s|%d", c.name, n)
				res[k] = append(res[k], closedLoop(work, c, n, opsFor(*ops, n), *maxDur))
			}
			k := c.name + "|paced"
			res[k] = append(res[k], openLoop(work, c, *rate, *paced))
		}
	}
	report(cs, res, *rate, *paced)
	fmt.Printf("\nLoad average after: %s\n", loadavg())
	if *heapN > 0 {
		heap(work, *heapN)
	}
}

// opsFor is the size of a closed-loop run with n accepters: a single
// accepter gets a quarter, to keep the run short.
func opsFor(ops, n int) int {
	if n == 1 {
		return max(ops/4, 1)
	}
	return ops
}

// report prints the medians over the rounds.
func report(cs []contender, res map[string][]result, rate int, paced time.Duration) {
	fmt.Println("| store | accepters | acks/s | p50 | p99 |")
	fmt.Println("|---|---|---|---|---|")
	for _, c := range cs {
		for _, n := range []int{1, 16, 64} {
			rs := res[fmt.Sprintf("%s|%d", c.name, n)]
			fmt.Printf("| %s | %d | %.0f | %s | %s |\n", c.name, n,
				median(rs, func(r result) float64 { return r.rate }),
				ms(median(rs, func(r result) float64 { return float64(r.p(50)) })),
				ms(median(rs, func(r result) float64 { return float64(r.p(99)) })))
		}
	}
	fmt.Printf("\nPaced: %d callbacks/s for %s (open loop), medians over the rounds\n\n", rate, paced)
	fmt.Println("| store | p50 | p99 | max | p99 in each round |")
	fmt.Println("|---|---|---|---|---|")
	for _, c := range cs {
		rs := res[c.name+"|paced"]
		var each []string
		for _, r := range rs {
			each = append(each, ms(r.p(99)))
		}
		fmt.Printf("| %s | %s | %s | %s | %s |\n", c.name,
			ms(median(rs, func(r result) float64 { return float64(r.p(50)) })),
			ms(median(rs, func(r result) float64 { return float64(r.p(99)) })),
			ms(median(rs, func(r result) float64 { return float64(r.p(100)) })),
			strings.Join(each, ", "))
	}
}

func median(rs []result, f func(result) float64) float64 {
	var v []float64
	for _, r := range rs {
		v = append(v, f(r))
	}
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	return v[len(v)/2]
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "webhookstore:", err)
	os.Exit(1)
}

// result is one run's latencies and rate.
type result struct {
	lat  []time.Duration
	rate float64
}

// p returns the q-th percentile (100 = the maximum).
func (r result) p(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	s := slices.Clone(r.lat)
	slices.Sort(s)
	i := int(q / 100 * float64(len(s)))
	return s[min(i, len(s)-1)]
}

func ms[T time.Duration | float64](d T) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

var runs atomic.Int64

// fresh opens c in a new file under dir.
func fresh(dir string, c contender) backend {
	path := fmt.Sprintf("%s/%s-%d.db", dir, strings.NewReplacer(" ", "_", "=", "", ",", "").Replace(c.name), runs.Add(1))
	b, err := c.open(path)
	if err != nil {
		fatal(fmt.Errorf("%s: %w", c.name, err))
	}
	return b
}

// closedLoop runs n accepters until ops acknowledgements or maxDur.
func closedLoop(dir string, c contender, n, ops int, maxDur time.Duration) result {
	b := fresh(dir, c)
	defer b.close()
	var (
		next atomic.Int64
		mu   sync.Mutex
		lat  = make([]time.Duration, 0, ops)
		wg   sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(maxDur)
	for range n {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				i := next.Add(1)
				if i > int64(ops) {
					return
				}
				t := time.Now()
				if _, err := b.accept(message(int(i))); err != nil {
					fatal(fmt.Errorf("%s: %w", c.name, err))
				}
				d := time.Since(t)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return result{lat: lat, rate: float64(len(lat)) / time.Since(start).Seconds()}
}

// openLoop sends rate callbacks a second for dur, each at its scheduled
// time whatever the earlier ones are doing, and measures from that time.
func openLoop(dir string, c contender, rate int, dur time.Duration) result {
	b := fresh(dir, c)
	defer b.close()
	total := int(dur.Seconds() * float64(rate))
	interval := time.Second / time.Duration(rate)
	lat := make([]time.Duration, total)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range total {
		at := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(at))
		wg.Go(func() {
			if _, err := b.accept(message(i)); err != nil {
				fatal(fmt.Errorf("%s: %w", c.name, err))
			}
			lat[i] = time.Since(at)
		})
	}
	wg.Wait()
	return result{lat: lat, rate: float64(total) / time.Since(start).Seconds()}
}

// body is a call's terminal StatusCallback as Exotel sends it, form-encoded.
func body(i int) []byte {
	return fmt.Appendf(nil, "CallSid=%032x&EventType=terminal&Status=completed&CallFrom=09876543210"+
		"&CallTo=01140000000&Direction=outbound-api&DialCallDuration=42&StartTime=2026-12-05+09%%3A00%%3A00"+
		"&EndTime=2026-12-05+09%%3A00%%3A42&CallType=completed&DialWhomNumber=09876543210"+
		"&RecordingUrl=https%%3A%%2F%%2Frecordings.exotel.com%%2Fexotelrecordings%%2Facme%%2F%032x.mp3"+
		"&CustomField=order-123456&DateUpdated=2026-12-05+09%%3A00%%3A43&Legs%%5B0%%5D%%5BOnCallDuration%%5D=42", i, i)
}

func message(i int) webhooks.Message {
	cb := webhooks.Callback{Kind: webhooks.KindCall, Sid: fmt.Sprintf("%032x", i), Status: "completed", EventType: "terminal"}
	return webhooks.Message{
		Route: "calls", Account: "acme", Key: cb.DedupeKey("calls"), Sid: cb.Sid, Terminal: true,
		ContentType: "application/x-www-form-urlencoded", Body: body(i), Source: webhooks.SourceExotel,
		ReceivedAt: time.Now(),
	}
}
