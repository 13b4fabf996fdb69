#!/usr/bin/env bash
# exogate's callback listener under load, loopback only, one run (~5 min):
# acknowledgement latency paced at 200 callbacks/s, acknowledgements per
# second saturated at 16 and 64 connections (each against exogate's /healthz
# as the baseline of the same run), then 100,000 callbacks acknowledged while
# the route's target is down, with exogate's heap, resident memory and store
# file read along the way. Every callback carries a CallSid of its own.
# Prints a Markdown report on stdout, progress on stderr.
# Usage: bench/webhooks.sh [-rate 200] [-paced 20s] [-saturated 15s] [-conns 16,64] [-down 100000] ...
#        (flags of bench/hookload; `go run ./bench/hookload -h` lists them)
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
CGO_ENABLED=0 go build -trimpath -ldflags "-w" -o "$work/exogate" .
go build -o "$work/hookload" ./bench/hookload
"$work/hookload" -exogate "$work/exogate" "$@"
