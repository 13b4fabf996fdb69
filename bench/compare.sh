#!/usr/bin/env bash
# exogate vs nginx vs HAProxy on the same job, loopback only, one run (~4-5 min):
# a stand-in Exotel that checks the credentials each request carries; exogate,
# nginx and HAProxy each replacing the caller's Authorization with Basic
# key:token; a direct baseline. Saturated (wrk, interleaved rounds), fixed rate
# (open loop), memory and start-up, then CPU/alloc profiles of exogate: the
# handler benchmark under pprof, and the running binary under perf when perf
# is installed. Prints a Markdown report on stdout, progress on stderr.
# Usage: bench/compare.sh [-before GIT-REF] [-duration 10s] [-rounds 3] [-rate 2000] [-peer-log=false] ...
#        (flags of bench/compare; `go run ./bench/compare -h` lists them)
#        -before GIT-REF (first) also builds exogate at that commit and measures
#        it beside the working tree's build, as "exogate (before)".
#        bench/compare.sh clients [-rounds 5] [-upstream-delay 20ms] [-conns 256] ...
#        measures exogate's two upstream clients (upstream.client: http1 and
#        net/http) against a TLS stand-in that answers after a delay (~3.5 min).
#        bench/compare.sh tail [-patch FILE] [-rounds 3] [-duration 15s] [-c 20] [-q 100]
#        the tail closed loop: hey -c 20 -q 100 through exogate, nginx and
#        HAProxy, each writing its JSON access lines to a file, rounds
#        interleaved; then one exogate run under a CPU profile and an execution
#        trace (a build with bench/compare/exogate_profile.go.in added by
#        go build -overlay), summarized. -patch FILE (first) also builds
#        exogate with that patch applied and measures it beside (~4-6 min).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ${1:-} == clients ]]; then
	shift
	command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	CGO_ENABLED=0 go build -trimpath -ldflags "-w" -o "$work/exogate" .
	go build -o "$work/compare" ./bench/compare
	"$work/compare" clients -exogate "$work/exogate" "$@"
	exit
fi
if [[ ${1:-} == tail ]]; then
	shift
	command -v hey >/dev/null || { apt-get update -qq && apt-get install -y -qq hey >/dev/null; }
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	build() { CGO_ENABLED=0 go build -trimpath -ldflags "-w" "$@" .; }
	build -o "$work/exogate"
	printf '{"Replace":{"%s":"%s"}}' "$PWD/zz_bench_profile.go" "$PWD/bench/compare/exogate_profile.go.in" >"$work/overlay.json"
	build -overlay "$work/overlay.json" -o "$work/exogate-profiled"
	patched=()
	if [[ ${1:-} == -patch ]]; then
		mkdir "$work/patched"
		git archive HEAD | tar -x -C "$work/patched"
		patch -s -p1 -d "$work/patched" <"$(realpath "$2")"
		(cd "$work/patched" && build -o "$work/exogate-patched")
		patched=(-patched "$work/exogate-patched")
		shift 2
	fi
	go build -o "$work/compare" ./bench/compare
	"$work/compare" tail -exogate "$work/exogate" "${patched[@]}" -profiled "$work/exogate-profiled" -profile-dir "$work" "$@"
	set +o pipefail # the reports below are cut with head
	echo
	echo '```'
	echo "# CPU profile of exogate under the same load (build with the profiling overlay), top 15 by flat time"
	go tool pprof -top -nodecount=15 "$work/exogate-profiled" "$work/cpu.out" 2>/dev/null | sed -n '/flat%/,$p'
	echo "# the same, by cumulative time, top 25"
	go tool pprof -top -cum -nodecount=25 "$work/exogate-profiled" "$work/cpu.out" 2>/dev/null | sed -n '/flat%/,$p'
	echo "# execution trace, 2 s: time goroutines spent blocked in syscalls, by call path (top 12)"
	go tool trace -pprof=syscall "$work/trace.out" >"$work/syscall.pb" 2>/dev/null &&
		go tool pprof -top -cum -nodecount=12 "$work/exogate-profiled" "$work/syscall.pb" 2>/dev/null | sed -n '/flat%/,$p'
	echo "# execution trace, 2 s: time request goroutines spent blocked on synchronization (locks, including a file's write lock), top 12"
	go tool trace -pprof=sync "$work/trace.out" >"$work/sync.pb" 2>/dev/null
	sync=$(go tool pprof -top -cum -nodecount=12 -focus 'http\.\(\*conn\)\.serve' "$work/exogate-profiled" "$work/sync.pb" 2>/dev/null | sed -n '/flat%/,$p')
	echo "${sync:-(none in this window)}"
	echo "# execution trace, 2 s: time runnable goroutines waited for a thread (scheduler latency), top 12"
	go tool trace -pprof=sched "$work/trace.out" >"$work/sched.pb" 2>/dev/null &&
		go tool pprof -top -cum -nodecount=12 "$work/exogate-profiled" "$work/sched.pb" 2>/dev/null | sed -n '/flat%/,$p'
	echo '```'
	exit
fi
missing=()
for cmd in nginx haproxy wrk; do
	command -v "$cmd" >/dev/null || missing+=("$cmd")
done
if ((${#missing[@]})); then
	apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Built as the Dockerfile builds the release binary (static, no DWARF), except
# that the symbol table stays for perf: it is not loaded at run time, and the
# loaded segments are byte for byte those of the release build.
build() { CGO_ENABLED=0 go build -trimpath -ldflags "-w" -o "$1" .; }
build "$work/exogate"
before_args=()
if [[ ${1:-} == -before ]]; then
	mkdir "$work/before"
	git archive "$2" | tar -x -C "$work/before"
	(cd "$work/before" && build "$work/exogate-before")
	before_args=(-before "$work/exogate-before")
	shift 2
fi
go build -o "$work/compare" ./bench/compare
perf_args=()
if command -v perf >/dev/null && perf stat -e task-clock true >/dev/null 2>&1; then
	perf_args=(-perf "$work/perf.data")
fi

"$work/compare" -exogate "$work/exogate" "${before_args[@]}" "${perf_args[@]}" "$@"

set +o pipefail # the reports below are cut with head
echo
echo "Profiles of exogate:"
echo
echo '```'
echo "# go test -bench 'BenchmarkHandler/^jsonlog\+metrics$' -benchtime 3s -benchmem ./proxy (in-memory upstream, JSON access log, metrics)"
go test -run '^$' -bench 'BenchmarkHandler/^jsonlog\+metrics$' -benchtime 3s -benchmem \
	-cpuprofile "$work/cpu.out" -memprofile "$work/mem.out" -o "$work/proxy.test" ./proxy | grep '^Benchmark'
echo "# CPU, top 10 by flat time"
go tool pprof -top -nodecount=10 "$work/proxy.test" "$work/cpu.out" 2>/dev/null | sed -n '/flat%/,$p'
echo "# allocations, top 10 by bytes (alloc_space)"
go tool pprof -top -nodecount=10 -sample_index=alloc_space "$work/proxy.test" "$work/mem.out" 2>/dev/null | sed -n '/flat%/,$p'
echo "# allocations under proxy.(*Handler).ServeHTTP only (without the benchmark's own httptest request), top 10 by bytes"
go tool pprof -top -nodecount=10 -sample_index=alloc_space -focus 'proxy\.\(\*Handler\)\.ServeHTTP' "$work/proxy.test" "$work/mem.out" 2>/dev/null | sed -n '/flat%/,$p'
perf_top() { perf report -i "$work/perf.data" --stdio -g none "$@" 2>/dev/null | grep '%' | sed 's/[[:space:]-]*$//'; }
if [[ -s "$work/perf.data" ]]; then
	echo "# perf record -g on the running exogate binary, saturated by wrk like the rounds above"
	echo "# user / kernel split"
	perf_top --no-children --sort dso | head -3
	echo "# top 10 symbols by self time (kernel [k] and exogate [.])"
	perf_top --no-children --sort symbol | head -10
	echo "# top 10 exogate (Go) symbols by self time"
	perf_top --no-children --sort symbol | grep -F '[.]' | grep -v vdso | head -10
	echo "# exogate call paths by total time (children included), top 15"
	perf_top --children --sort symbol | grep -F '[.]' | head -15
fi
echo '```'
