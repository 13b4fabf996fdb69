#!/usr/bin/env bash
# The webhook store on the acknowledgement path: bbolt (the webhooks
# package's store, group commit at several batch delays) against SQLite in
# pure Go (WAL, synchronous=FULL) and the disk's own fsync floor; then the Go
# heap with 100,000 pending messages; then what each library adds to a
# static binary. Prints Markdown on stdout, progress on stderr (~6 min).
# Usage: bench/webhookstore.sh [-rounds 3] [-dir DIR-ON-A-REAL-DISK] ...
#        (flags of bench/webhookstore; `cd bench/webhookstore && go run . -h`)
set -euo pipefail
cd "$(dirname "$0")/webhookstore"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
CGO_ENABLED=0 go build -trimpath -o "$work/webhookstore" .
"$work/webhookstore" "$@"
echo
echo "Binary size (CGO_ENABLED=0, -trimpath, -ldflags=-s -w)"
echo
echo "| program | size | added to the baseline |"
echo "|---|---|---|"
for p in none bbolt sqlite; do
	CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$work/$p" "./sizes/$p"
	"$work/$p" "$work/$p.db"
done
base=$(stat -c %s "$work/none")
for p in none bbolt sqlite; do
	size=$(stat -c %s "$work/$p")
	printf '| %s | %.2f MiB | %+.2f MiB |\n' "$p" "$(bc -l <<<"$size/1048576")" "$(bc -l <<<"($size-$base)/1048576")"
done
(cd ../.. && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$work/exogate" . &&
	printf '| exogate, for scale | %.2f MiB | |\n' "$(bc -l <<<"$(stat -c %s "$work/exogate")/1048576")")
