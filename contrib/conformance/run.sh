#!/usr/bin/env bash
# contrib/conformance/run.sh: run the http-tests/cache-tests suite against one
# cache (strata, nginx or varnish) on 127.0.0.1, and save its JSON results.
#
#   CACHE_TESTS_DIR=~/src/cache-tests contrib/conformance/run.sh strata
#
# It starts the suite's origin server, then the cache in front of it, both
# on free loopback ports, runs the suite's command-line client against the
# cache, writes RESULTS_DIR/NAME.json, and stops what it started.  See
# README.md next to it.
#
# Environment:
#   CACHE_TESTS_DIR  a clone of https://github.com/http-tests/cache-tests
#                    with `npm install` done in it (required)
#   RESULTS_DIR      where NAME.json and NAME-logs/ go
#                    (default: ./conformance-results)
#   STRATA_BIN       the strata binary (default: ./strata of this tree)
#   TEST_ID          run this one test only, printing the exchanges
#                    instead of saving results
set -euo pipefail

usage() { echo "usage: CACHE_TESTS_DIR=DIR $0 strata|nginx|varnish" >&2; }

name=${1:-}
case $name in
strata | nginx | varnish) ;;
*) usage; exit 2 ;;
esac

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
suite=${CACHE_TESTS_DIR:-}
if [[ -z $suite || ! -f $suite/test-engine/cli.mjs ]]; then
	echo "$0: CACHE_TESTS_DIR must name a clone of http-tests/cache-tests" >&2
	usage
	exit 2
fi
suite=$(cd "$suite" && pwd)
results_dir=${RESULTS_DIR:-$PWD/conformance-results}
strata_bin=${STRATA_BIN:-$here/../../strata}
test_id=${TEST_ID:-}

mkdir -p "$results_dir"
results_dir=$(cd "$results_dir" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/cache-tests-$name.XXXXXX")
chmod 755 "$work" # varnishd's and nginx's workers may run as another user
pids=()

cleanup() {
	local pid
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	rm -rf "$results_dir/$name-logs"
	mkdir -p "$results_dir/$name-logs"
	find "$work" -maxdepth 2 -name '*.log' -exec cp {} "$results_dir/$name-logs/" \;
	rm -rf "$work"
}
trap cleanup EXIT

free_port() {
	node -e 'const s = require("net").createServer().listen(0, "127.0.0.1",
	  () => { console.log(s.address().port); s.close() })'
}

# wait_http URL PID: until URL answers anything, while PID lives
wait_http() {
	local i
	for ((i = 0; i < 150; i++)); do
		if curl -s -o /dev/null --max-time 1 "$1"; then return 0; fi
		if ! kill -0 "$2" 2>/dev/null; then
			echo "$0: the $name process exited; its log:" >&2
			cat "$work"/*.log >&2 || true
			return 1
		fi
		sleep 0.1
	done
	echo "$0: $1 did not answer" >&2
	return 1
}

origin_port=$(free_port)
cache_port=$(free_port)
admin_port=$(free_port)

# The suite's origin.  CACHE_TESTS_HOST is honoured only by a server.mjs
# that knows it; upstream's listens on every address.
(cd "$suite" && exec env npm_config_protocol=http npm_config_port="$origin_port" \
	npm_config_pidfile="$work/origin.pid" CACHE_TESTS_HOST=127.0.0.1 \
	node test-engine/server/server.mjs) >"$work/origin.log" 2>&1 &
pids+=("$!")
wait_http "http://127.0.0.1:$origin_port/state/none" "${pids[0]}"

case $name in
strata)
	(cd "$work" && exec env CT_CACHE_PORT="$cache_port" CT_ORIGIN_PORT="$origin_port" \
		CT_ADMIN_PORT="$admin_port" "$strata_bin" -c "$here/strata.yaml") \
		>"$work/strata.log" 2>&1 &
	;;
nginx)
	mkdir -p "$work/nginx"
	sed -e "s|@DIR@|$work/nginx|g" -e "s|@PORT@|$cache_port|g" \
		-e "s|@ORIGIN_PORT@|$origin_port|g" -e "s|@USER@|$(id -un)|g" \
		"$here/nginx.conf.in" >"$work/nginx/nginx.conf"
	nginx -p "$work/nginx/" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" \
		>"$work/nginx.log" 2>&1 &
	;;
varnish)
	sed -e "s|@ORIGIN_PORT@|$origin_port|g" "$here/varnish.vcl" >"$work/varnish.vcl"
	jail=()
	if [[ $(id -u) -ne 0 ]]; then jail=(-j none); fi
	varnishd -F "${jail[@]}" -n "$work/varnish" -a "127.0.0.1:$cache_port" \
		-T "127.0.0.1:$admin_port" -f "$work/varnish.vcl" \
		-p default_ttl=0 -p default_grace=0 -p default_keep=3600 -s malloc,64M \
		>"$work/varnish.log" 2>&1 &
	;;
esac
pids+=("$!")
wait_http "http://127.0.0.1:$cache_port/state/none" "${pids[1]}"

# The suite's client; node-fetch would honour a proxy from the environment.
client=(env -u http_proxy -u HTTP_PROXY -u https_proxy -u HTTPS_PROXY
	npm_config_base="http://127.0.0.1:$cache_port"
	npm_config_id="$test_id" npm_package_config_id="$test_id"
	node --no-warnings test-engine/cli.mjs)
if [[ -n $test_id ]]; then
	(cd "$suite" && "${client[@]}")
	exit
fi
(cd "$suite" && "${client[@]}") >"$work/results.json"
# shellcheck disable=SC2016 # JavaScript, not shell
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))
  const n = Object.keys(r).length
  const ok = Object.values(r).filter(v => v === true).length
  console.log(`${process.argv[2]}: ${n} tests, ${ok} passed`)
' "$work/results.json" "$name"
mv "$work/results.json" "$results_dir/$name.json"
echo "results: $results_dir/$name.json"
