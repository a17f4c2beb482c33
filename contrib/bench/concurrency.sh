#!/usr/bin/env bash
# 1,000 concurrent requests through Strata to an upstream that takes 1 s
# each.  Strata suspends every waiting connection and the upstream client
# runs them all at once, so the burst should take about 1 s, not
# 1000/workers seconds.
#
#   contrib/bench/concurrency.sh [N] [WORKERS]
#
# Run from the top of a built tree; uses ports 18000 and 18080.
set -euo pipefail
cd "$(dirname "$0")/../.."

n=${1:-1000}
workers=${2:-2}
bench=contrib/bench

python3 "$bench/slow_origin.py" --port 18000 --delay 1 &
origin=$!
./strata --upstream http://127.0.0.1:18000 --listen 127.0.0.1:18080 \
	--admin-listen 127.0.0.1:18081 --workers "$workers" \
	--set upstream.max_connections="$n" --set access_log=false --set cache.disk.enabled=false &
strata=$!
trap 'kill "$strata" "$origin" 2>/dev/null; wait 2>/dev/null' EXIT
sleep 1

echo "direct to the origin:"
python3 "$bench/burst.py" -n "$n" http://127.0.0.1:18000/slow
echo "through strata (--workers $workers):"
python3 "$bench/burst.py" -n "$n" http://127.0.0.1:18080/slow
