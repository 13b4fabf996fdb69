package metrics

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// userHZ is the unit of /proc's CPU times and start time: USER_HZ, 100 on
// every Linux architecture Go supports.
const userHZ = 100

// processCollector writes the process_* families of client_golang's process
// collector, read from /proc/self. A file that cannot be read leaves its
// families out of the scrape.
type processCollector struct {
	cpu, vsize, rss, start, openFDs, maxFDs, maxVsize, rx, tx *Desc

	bootOnce sync.Once
	bootTime float64 // seconds since the epoch; 0 if unknown
}

func newProcessCollector() Collector {
	d := func(typ Type, name, help string) *Desc { return newDesc(typ, name, help, nil, nil) }
	return &processCollector{
		cpu:      d(Counter, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds."),
		vsize:    d(Gauge, "process_virtual_memory_bytes", "Virtual memory size in bytes."),
		rss:      d(Gauge, "process_resident_memory_bytes", "Resident memory size in bytes."),
		start:    d(Gauge, "process_start_time_seconds", "Start time of the process since unix epoch in seconds."),
		openFDs:  d(Gauge, "process_open_fds", "Number of open file descriptors."),
		maxFDs:   d(Gauge, "process_max_fds", "Maximum number of open file descriptors."),
		maxVsize: d(Gauge, "process_virtual_memory_max_bytes", "Maximum amount of virtual memory available in bytes."),
		rx:       d(Counter, "process_network_receive_bytes_total", "Number of bytes received by the process over the network."),
		tx:       d(Counter, "process_network_transmit_bytes_total", "Number of bytes sent by the process over the network."),
	}
}

func (c *processCollector) Describe() []*Desc {
	return []*Desc{c.cpu, c.vsize, c.rss, c.start, c.openFDs, c.maxFDs, c.maxVsize, c.rx, c.tx}
}

func (c *processCollector) Collect(w *Writer) {
	put := func(d *Desc, v float64) { w.add(d, sample{value: v}) }

	// /proc/self/stat: the fields after the command, which is in
	// parentheses and may hold spaces. Field 3 (state) is f[0].
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		if i := bytes.LastIndexByte(b, ')'); i >= 0 {
			f := strings.Fields(string(b[i+1:]))
			num := func(field int) float64 {
				v, _ := strconv.ParseUint(f[field-3], 10, 64)
				return float64(v)
			}
			if len(f) > 24-3 { // up to rss
				put(c.cpu, (num(14)+num(15))/userHZ) // utime + stime
				put(c.vsize, num(23))
				put(c.rss, num(24)*float64(os.Getpagesize()))
				if boot := c.boot(); boot > 0 {
					put(c.start, boot+num(22)/userHZ)
				}
			}
		}
	}

	if d, err := os.Open("/proc/self/fd"); err == nil {
		// The count includes the descriptor reading the directory, as
		// client_golang's does.
		names, err := d.Readdirnames(-1)
		d.Close()
		if err == nil {
			put(c.openFDs, float64(len(names)))
		}
	}

	// Soft limits; unlimited is the largest uint64, as in /proc/self/limits.
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		put(c.maxFDs, float64(lim.Cur))
	}
	if syscall.Getrlimit(syscall.RLIMIT_AS, &lim) == nil {
		put(c.maxVsize, float64(lim.Cur))
	}

	// The network namespace's IP octets: "IpExt: names..." then "IpExt: values...".
	if b, err := os.ReadFile("/proc/self/net/netstat"); err == nil {
		lines := strings.Split(string(b), "\n")
		for i := 0; i+1 < len(lines); i += 2 {
			names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
			if len(names) == 0 || names[0] != "IpExt:" || len(names) != len(values) {
				continue
			}
			for j, n := range names {
				v, err := strconv.ParseFloat(values[j], 64)
				switch {
				case err != nil:
				case n == "InOctets":
					put(c.rx, v)
				case n == "OutOctets":
					put(c.tx, v)
				}
			}
		}
	}
}

// boot returns the system's boot time from /proc/stat, read once.
func (c *processCollector) boot() float64 {
	c.bootOnce.Do(func() {
		b, err := os.ReadFile("/proc/stat")
		if err != nil {
			return
		}
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "btime "); ok {
				c.bootTime, _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
				return
			}
		}
	})
	return c.bootTime
}
