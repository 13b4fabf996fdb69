#!/usr/bin/env bash
# Shared rate limit benchmark: 3 exogate replicas on one Redis, a fake Exotel
# that enforces the limit, saturating demand for ~2 periods of 10s, plus the
# latency the Redis limiter adds over the in-memory one. Loopback only.
# Usage: bench/limiter.sh [-limit 200] [-period 10s] [-periods 2] [-replicas 3]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
bin=$(mktemp -d)/exogate
go build -o "$bin" .
go run ./bench/limiter -exogate "$bin" "$@"
