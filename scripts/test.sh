#!/usr/bin/env bash
# Runs exogate's whole test suite. On a fresh machine it first installs what
# the tests need and is missing. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

need_go() {
  if ! command -v go >/dev/null 2>&1; then
    if [ -x /usr/local/go/bin/go ]; then
      export PATH="/usr/local/go/bin:$PATH"
    else
      echo "scripts/test.sh: Go 1.26 is required (https://go.dev/dl/)" >&2
      exit 1
    fi
  fi
}
need_go

# Real parts, not mocks: the Redis limiter's tests start redis-server on a
# free loopback port. Install it from Debian's packages when it is missing.
if ! command -v redis-server >/dev/null 2>&1; then
  echo "== installing redis-server (Debian package)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  # The package starts a system-wide server on 6379; the tests use their own.
  ($SUDO service redis-server stop || true) >/dev/null 2>&1
fi

# Exotel's client libraries from npm run against exogate sandbox: the
# end-to-end test installs them with npm and runs them with node. Install
# both from Debian's packages when either is missing.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "== installing node and npm (Debian packages)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi

echo "== go vet"
go vet ./...

echo "== unit, integration and end-to-end tests (race detector on)"
go test -race -count=1 ./...

echo "== credentials against a real Vault (in-process test cluster; separate module)"
# The first run downloads Vault's module graph (~500 MB) and compiles it (~5 min).
(cd integration/vault && go vet ./... && go test -count=1 ./...)

echo "== fuzz targets, briefly"
# Budgets in executions (about 5-10 s each here), not in time: Go 1.26's fuzz
# coordinator can fail a target with a bare "context deadline exceeded" when a
# time budget ends (golang/go#75804, fixed in Go 1.27).
go test -run='^$' -fuzz='^FuzzClassify$' -fuzztime=300000x ./internal/exotel/
go test -run='^$' -fuzz='^FuzzParse$' -fuzztime=25000x ./internal/config/
go test -run='^$' -fuzz='^FuzzParseByteSize$' -fuzztime=100000x ./internal/config/
go test -run='^$' -fuzz='^FuzzParseBasic$' -fuzztime=80000x ./internal/callers/
go test -run='^$' -fuzz='^FuzzIdentify$' -fuzztime=70000x ./internal/callers/
go test -run='^$' -fuzz='^FuzzRedactURI$' -fuzztime=40000x ./proxy/
go test -run='^$' -fuzz='^FuzzParseRetryAfter$' -fuzztime=50000x ./proxy/
go test -run='^$' -fuzz='^FuzzRewrite$' -fuzztime=50000x ./proxy/
go test -run='^$' -fuzz='^FuzzSubstituteCallbacks$' -fuzztime=40000x ./proxy/
go test -run='^$' -fuzz='^FuzzParseCallback$' -fuzztime=40000x ./webhooks/
go test -run='^$' -fuzz='^FuzzServeHTTP$' -fuzztime=60000x ./sandbox/

echo "== benchmarks compile and run once"
go test -run='^$' -bench=. -benchtime=1x ./...

echo "scripts/test.sh: all tests passed"
