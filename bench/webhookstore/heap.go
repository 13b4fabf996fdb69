package main

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/exogate/exogate/webhooks"
)

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// heapAfterGC is the live Go heap.
func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// heap fills a bbolt store with n pending messages (a target that is down:
// nothing is delivered) and reports the Go heap at 1,000 and at n, and what
// the delivery path's reads cost with n pending.
func heap(dir string, n int) {
	path := fmt.Sprintf("%s/heap.db", dir)
	s, err := webhooks.OpenStore(path, webhooks.StoreOptions{})
	if err != nil {
		fatal(err)
	}
	defer s.Close()
	fill(s, 0, 1000)
	at1k := heapAfterGC()
	t := time.Now()
	fill(s, 1000, n)
	sustained := float64(n-1000) / time.Since(t).Seconds()
	atN := heapAfterGC()
	t = time.Now()
	due, err := s.Due("calls", time.Now(), 64, nil)
	if err != nil {
		fatal(err)
	}
	dueTook := time.Since(t)
	t = time.Now()
	st, err := s.Stats()
	if err != nil {
		fatal(err)
	}
	statsTook := time.Since(t)
	fi, _ := os.Stat(path)
	fmt.Printf("\nHeap with the target down (bbolt, default batch delay)\n\n")
	fmt.Println("| pending | Go heap after GC | store file |")
	fmt.Println("|---|---|---|")
	fmt.Printf("| 1,000 | %.1f MiB | |\n", float64(at1k)/(1<<20))
	fmt.Printf("| %d | %.1f MiB | %.0f MiB |\n", st["calls"].Pending, float64(atN)/(1<<20), float64(fi.Size())/(1<<20))
	fmt.Printf("\nSustained while filling (64 accepters, %d callbacks): %.0f acks/s. With %d pending: Due(64) %d messages in %s, Stats in %s\n",
		n-1000, sustained, st["calls"].Pending, len(due), dueTook.Round(time.Microsecond), statsTook.Round(time.Microsecond))
}

// fill accepts messages from..to with 64 accepters.
func fill(s *webhooks.Store, from, to int) {
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	deadline := time.Now().Add(10 * time.Minute)
	for range 64 {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				i := next.Add(1)
				if i > int64(to) {
					return
				}
				if _, _, err := s.Accept(message(int(i))); err != nil {
					fatal(err)
				}
			}
		})
	}
	wg.Wait()
}
