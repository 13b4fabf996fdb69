package metrics

import (
	"runtime"
	"runtime/debug"
	rm "runtime/metrics"
	"time"
)

// goMetric is a go_* gauge or counter whose value is the sum of runtime/metrics
// values. The names, help texts and formulas are those of client_golang's Go
// collector, so dashboards built on it keep working.
type goMetric struct {
	name, help string
	typ        Type
	sources    []string // runtime/metrics names, summed
}

const (
	rmHeapObjectsBytes = "/memory/classes/heap/objects:bytes"
	rmHeapUnused       = "/memory/classes/heap/unused:bytes"
	rmHeapReleased     = "/memory/classes/heap/released:bytes"
	rmHeapFree         = "/memory/classes/heap/free:bytes"
	rmHeapStacks       = "/memory/classes/heap/stacks:bytes"
	rmTinyAllocs       = "/gc/heap/tiny/allocs:objects"
	rmMSpanInuse       = "/memory/classes/metadata/mspan/inuse:bytes"
	rmMCacheInuse      = "/memory/classes/metadata/mcache/inuse:bytes"
)

var goMetrics = []goMetric{
	{"go_goroutines", "Number of goroutines that currently exist.", Gauge, []string{"/sched/goroutines:goroutines"}},
	{"go_threads", "Number of OS threads owned by the Go runtime.", Gauge, []string{"/sched/threads/total:threads"}},
	{"go_sched_gomaxprocs_threads", "The current runtime.GOMAXPROCS setting, or the number of operating system threads that can execute user-level Go code simultaneously. Sourced from /sched/gomaxprocs:threads.", Gauge, []string{"/sched/gomaxprocs:threads"}},
	{"go_gc_gogc_percent", "Heap size target percentage configured by the user, otherwise 100. This value is set by the GOGC environment variable, and the runtime/debug.SetGCPercent function. Sourced from /gc/gogc:percent.", Gauge, []string{"/gc/gogc:percent"}},
	{"go_gc_gomemlimit_bytes", "Go runtime memory limit configured by the user, otherwise math.MaxInt64. This value is set by the GOMEMLIMIT environment variable, and the runtime/debug.SetMemoryLimit function. Sourced from /gc/gomemlimit:bytes.", Gauge, []string{"/gc/gomemlimit:bytes"}},

	{"go_memstats_alloc_bytes", "Number of bytes allocated in heap and currently in use. Equals to /memory/classes/heap/objects:bytes.", Gauge, []string{rmHeapObjectsBytes}},
	{"go_memstats_alloc_bytes_total", "Total number of bytes allocated in heap until now, even if released already. Equals to /gc/heap/allocs:bytes.", Counter, []string{"/gc/heap/allocs:bytes"}},
	{"go_memstats_sys_bytes", "Number of bytes obtained from system. Equals to /memory/classes/total:byte.", Gauge, []string{"/memory/classes/total:bytes"}},
	{"go_memstats_mallocs_total", "Total number of heap objects allocated, both live and gc-ed. Semantically a counter version for go_memstats_heap_objects gauge. Equals to /gc/heap/allocs:objects + /gc/heap/tiny/allocs:objects.", Counter, []string{"/gc/heap/allocs:objects", rmTinyAllocs}},
	{"go_memstats_frees_total", "Total number of heap objects frees. Equals to /gc/heap/frees:objects + /gc/heap/tiny/allocs:objects.", Counter, []string{"/gc/heap/frees:objects", rmTinyAllocs}},
	{"go_memstats_heap_alloc_bytes", "Number of heap bytes allocated and currently in use, same as go_memstats_alloc_bytes. Equals to /memory/classes/heap/objects:bytes.", Gauge, []string{rmHeapObjectsBytes}},
	{"go_memstats_heap_sys_bytes", "Number of heap bytes obtained from system. Equals to /memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes + /memory/classes/heap/released:bytes + /memory/classes/heap/free:bytes.", Gauge, []string{rmHeapObjectsBytes, rmHeapUnused, rmHeapReleased, rmHeapFree}},
	{"go_memstats_heap_idle_bytes", "Number of heap bytes waiting to be used. Equals to /memory/classes/heap/released:bytes + /memory/classes/heap/free:bytes.", Gauge, []string{rmHeapReleased, rmHeapFree}},
	{"go_memstats_heap_inuse_bytes", "Number of heap bytes that are in use. Equals to /memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes", Gauge, []string{rmHeapObjectsBytes, rmHeapUnused}},
	{"go_memstats_heap_released_bytes", "Number of heap bytes released to OS. Equals to /memory/classes/heap/released:bytes.", Gauge, []string{rmHeapReleased}},
	{"go_memstats_heap_objects", "Number of currently allocated objects. Equals to /gc/heap/objects:objects.", Gauge, []string{"/gc/heap/objects:objects"}},
	{"go_memstats_stack_inuse_bytes", "Number of bytes obtained from system for stack allocator in non-CGO environments. Equals to /memory/classes/heap/stacks:bytes.", Gauge, []string{rmHeapStacks}},
	{"go_memstats_stack_sys_bytes", "Number of bytes obtained from system for stack allocator. Equals to /memory/classes/heap/stacks:bytes + /memory/classes/os-stacks:bytes.", Gauge, []string{rmHeapStacks, "/memory/classes/os-stacks:bytes"}},
	{"go_memstats_mspan_inuse_bytes", "Number of bytes in use by mspan structures. Equals to /memory/classes/metadata/mspan/inuse:bytes.", Gauge, []string{rmMSpanInuse}},
	{"go_memstats_mspan_sys_bytes", "Number of bytes used for mspan structures obtained from system. Equals to /memory/classes/metadata/mspan/inuse:bytes + /memory/classes/metadata/mspan/free:bytes.", Gauge, []string{rmMSpanInuse, "/memory/classes/metadata/mspan/free:bytes"}},
	{"go_memstats_mcache_inuse_bytes", "Number of bytes in use by mcache structures. Equals to /memory/classes/metadata/mcache/inuse:bytes.", Gauge, []string{rmMCacheInuse}},
	{"go_memstats_mcache_sys_bytes", "Number of bytes used for mcache structures obtained from system. Equals to /memory/classes/metadata/mcache/inuse:bytes + /memory/classes/metadata/mcache/free:bytes.", Gauge, []string{rmMCacheInuse, "/memory/classes/metadata/mcache/free:bytes"}},
	{"go_memstats_buck_hash_sys_bytes", "Number of bytes used by the profiling bucket hash table. Equals to /memory/classes/profiling/buckets:bytes.", Gauge, []string{"/memory/classes/profiling/buckets:bytes"}},
	{"go_memstats_gc_sys_bytes", "Number of bytes used for garbage collection system metadata. Equals to /memory/classes/metadata/other:bytes.", Gauge, []string{"/memory/classes/metadata/other:bytes"}},
	{"go_memstats_other_sys_bytes", "Number of bytes used for other system allocations. Equals to /memory/classes/other:bytes.", Gauge, []string{"/memory/classes/other:bytes"}},
	{"go_memstats_next_gc_bytes", "Number of heap bytes when next garbage collection will take place. Equals to /gc/heap/goal:bytes.", Gauge, []string{"/gc/heap/goal:bytes"}},
}

// goCollector writes the Go runtime's metrics. It reads runtime/metrics and
// debug.ReadGCStats, neither of which stops the world (runtime.ReadMemStats
// would).
type goCollector struct {
	descs   []*Desc // one per goMetrics entry
	names   []string
	gc      *Desc // go_gc_duration_seconds
	lastGC  *Desc
	info    *Desc
	version string
}

func newGoCollector() *goCollector {
	c := &goCollector{
		gc: newDesc(summary, "go_gc_duration_seconds",
			"A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles.", nil, []float64{0, .25, .5, .75, 1}),
		lastGC:  newDesc(Gauge, "go_memstats_last_gc_time_seconds", "Number of seconds since 1970 of last garbage collection.", nil, nil),
		info:    newDesc(Gauge, "go_info", "Information about the Go environment.", []string{"version"}, nil),
		version: runtime.Version(),
	}
	seen := map[string]bool{}
	for _, g := range goMetrics {
		c.descs = append(c.descs, newDesc(g.typ, g.name, g.help, nil, nil))
		for _, s := range g.sources {
			if !seen[s] {
				seen[s] = true
				c.names = append(c.names, s)
			}
		}
	}
	return c
}

func (c *goCollector) Describe() []*Desc {
	return append([]*Desc{c.gc, c.lastGC, c.info}, c.descs...)
}

func (c *goCollector) Collect(w *Writer) {
	samples := make([]rm.Sample, len(c.names))
	for i, n := range c.names {
		samples[i].Name = n
	}
	rm.Read(samples)
	values := make(map[string]float64, len(samples))
	for _, s := range samples {
		switch s.Value.Kind() {
		case rm.KindUint64:
			values[s.Name] = float64(s.Value.Uint64())
		case rm.KindFloat64:
			values[s.Name] = s.Value.Float64()
		}
	}
metric:
	for i, g := range goMetrics {
		var v float64
		for _, s := range g.sources {
			x, ok := values[s]
			if !ok {
				continue metric // not known to this Go version
			}
			v += x
		}
		w.add(c.descs[i], sample{value: v})
	}

	// Pause quantiles: minimum, 25%, 50%, 75%, maximum of the recent pauses.
	var st debug.GCStats
	st.PauseQuantiles = make([]time.Duration, 5)
	debug.ReadGCStats(&st)
	q := make([]float64, len(st.PauseQuantiles))
	for i, d := range st.PauseQuantiles {
		q[i] = d.Seconds()
	}
	w.add(c.gc, sample{value: st.PauseTotal.Seconds(), quants: q, count: uint64(st.NumGC)})
	w.add(c.lastGC, sample{value: float64(st.LastGC.UnixNano()) / 1e9})
	w.add(c.info, sample{labels: []string{c.version}, value: 1})
}
