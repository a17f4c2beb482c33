#!/usr/bin/env bash
# Cache-hit serving: Strata's memory tier against a bare libmicrohttpd
# server (the ceiling: same library, same threading mode, no cache work),
# nginx proxy_cache and Varnish, for each body size.
#
#   contrib/bench/hits.sh
#   ROUNDS=1 DURATION=2 contrib/bench/hits.sh      # a quick check
#
# Run from anywhere in a built tree (it changes to the top).  Needs cc,
# pkg-config and libmicrohttpd's headers, curl and wrk; nginx and varnishd
# are measured when installed and skipped otherwise.
#
# Environment:
#   ROUNDS=3          measurement rounds; each round runs every server once,
#                     in a rotating order, so drift hits all of them alike
#   DURATION=5        seconds of wrk per run
#   CONNS=50          wrk connections (one wrk thread)
#   SIZES="1024 65536"  body sizes in bytes
#   WORKERS=2         Strata --workers, bare_mhd threads, nginx workers,
#                     Varnish thread pools
#   BASE_PORT=18100   first port tried; ports in use are skipped
#   STRATA_BIN=./strata
#   READY_TIMEOUT=15  seconds to wait for a server to answer
#
# The Markdown report goes to stdout; progress and warnings to stderr.
# Every process it starts is stopped on exit, by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source-path=SCRIPTDIR source=lib.sh
. contrib/bench/lib.sh

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
CONNS=${CONNS:-50}
SIZES=${SIZES:-1024 65536}
WORKERS=${WORKERS:-2}
STRATA_BIN=${STRATA_BIN:-./strata}
READY_TIMEOUT=${READY_TIMEOUT:-15}

need cc pkg-config curl wrk
pkg-config --exists libmicrohttpd ||
	die "libmicrohttpd not found by pkg-config (apt-get install -y libmicrohttpd-dev)"
[ -x "$STRATA_BIN" ] ||
	die "$STRATA_BIN not found: build first (./configure && make) or set STRATA_BIN"
have_nginx=false
have_varnish=false
command -v nginx >/dev/null && have_nginx=true
command -v varnishd >/dev/null && have_varnish=true

make_tmp

# --- build the ceiling/origin server --------------------------------------
read -r -a mhd_flags <<<"$(pkg-config --cflags --libs libmicrohttpd)"
cc -O2 -Wall -o "$tmp/bare_mhd" contrib/bench/bare_mhd.c "${mhd_flags[@]}" ||
	die "cannot build contrib/bench/bare_mhd.c"

# --- servers ---------------------------------------------------------------
# Each start_* launches one server for the current size, records its PID in
# pid[NAME] and its port in port[NAME].
declare -A pid port

start_origin() {
	alloc_port 'port[origin]'
	"$tmp/bare_mhd" "${port[origin]}" "$1" 1 >"$tmp/origin.log" 2>&1 &
	pid[origin]=$!
	started+=("${pid[origin]}")
}

start_bare() {
	alloc_port 'port[bare]'
	"$tmp/bare_mhd" "${port[bare]}" "$1" "$WORKERS" >"$tmp/bare.log" 2>&1 &
	pid[bare]=$!
	started+=("${pid[bare]}")
}

start_strata() {
	local admin
	alloc_port 'port[strata]'
	alloc_port admin
	"$STRATA_BIN" --upstream "http://127.0.0.1:${port[origin]}" \
		--listen "127.0.0.1:${port[strata]}" \
		--admin-listen "127.0.0.1:$admin" --workers "$WORKERS" \
		--route '/obj=3600s' --set access_log=false --set cache.disk.enabled=false \
		>"$tmp/strata.log" 2>&1 &
	pid[strata]=$!
	started+=("${pid[strata]}")
}

start_nginx() {
	local dir="$tmp/nginx-$1" user_line=
	alloc_port 'port[nginx]'
	mkdir -p "$dir"
	# As root, keep the workers root too so they can write the cache
	# directory inside our private temp dir.
	[ "$(id -u)" = 0 ] && user_line='user root;'
	cat >"$dir/nginx.conf" <<EOF
$user_line
worker_processes $WORKERS;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	sendfile on;
	# No tcp_nopush (Debian's stock nginx.conf has it on): with sendfile
	# it stalls every 64 KiB keep-alive response on loopback for a 40 ms
	# delayed ACK, which would measure TCP timers, not the cache.
	# nginx closes a client connection after 1000 requests by default;
	# the other servers never do, so do not let that count against it.
	keepalive_requests 1000000000;
	client_body_temp_path $dir/client_body;
	proxy_temp_path $dir/proxy_temp;
	fastcgi_temp_path $dir/fastcgi_temp;
	uwsgi_temp_path $dir/uwsgi_temp;
	scgi_temp_path $dir/scgi_temp;
	proxy_cache_path $dir/cache levels=1:2 keys_zone=bench:10m
		max_size=256m inactive=1h use_temp_path=off;
	server {
		listen 127.0.0.1:${port[nginx]};
		location / {
			proxy_pass http://127.0.0.1:${port[origin]};
			proxy_cache bench;
			proxy_cache_valid 200 1h;
			proxy_cache_lock on;
			add_header X-Cache-Status \$upstream_cache_status;
		}
	}
}
EOF
	nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" \
		>"$tmp/nginx.log" 2>&1 &
	pid[nginx]=$!
	started+=("${pid[nginx]}")
}

start_varnish() {
	alloc_port 'port[varnish]'
	# -n: a private work dir; -T none: no management port to collide with.
	varnishd -F -n "$tmp/varnish-$1" -T none \
		-a "127.0.0.1:${port[varnish]}" -b "127.0.0.1:${port[origin]}" \
		-s malloc,256m -t 3600 -p "thread_pools=$WORKERS" \
		>"$tmp/varnish.log" 2>&1 &
	pid[varnish]=$!
	started+=("${pid[varnish]}")
}

# check_hit NAME: the response after the warm-up one must be a cache hit.
check_hit() {
	local name=$1 headers
	[ "$name" != bare ] || return 0
	headers=$(curl -sf -o /dev/null -D - "http://127.0.0.1:${port[$name]}/obj" | tr -d '\r') ||
		die "$name: the second request failed"
	case $name in
	strata)
		grep -qi '^cache-status: strata; hit' <<<"$headers" || {
			warn "strata: the warm-up response is not a hit ($(grep -i '^cache-status:' <<<"$headers" || echo 'no Cache-Status')); measuring anyway"
			return 0
		}
		;;
	nginx)
		grep -qi '^x-cache-status: hit' <<<"$headers" || {
			warn "nginx: the warm-up response is not a hit ($(grep -i '^x-cache-status:' <<<"$headers" || echo 'no X-Cache-Status')); measuring anyway"
			return 0
		}
		;;
	varnish)
		# A hit carries two transaction ids: this one and the one that
		# filled the object.
		grep -qiE '^x-varnish: [0-9]+ [0-9]+$' <<<"$headers" || {
			warn "varnish: the warm-up response is not a hit ($(grep -i '^x-varnish:' <<<"$headers" || echo 'no X-Varnish')); measuring anyway"
			return 0
		}
		;;
	esac
	log "$name: warm-up response is a hit"
}

# measure NAME SIZE: one wrk run; appends "req/s p99_us cpu_us_per_req"
# to $tmp/results/SIZE/NAME.
measure() {
	local name=$1 size=$2 out="$tmp/wrk.out" before after requests run_rps run_p99 errors
	before=$(tree_ticks "${pid[$name]}")
	wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency \
		"http://127.0.0.1:${port[$name]}/obj" >"$out" 2>&1 ||
		die "$name: wrk failed: $(cat "$out")"
	after=$(tree_ticks "${pid[$name]}")
	if ! kill -0 "${pid[$name]}" 2>/dev/null || [ "$after" -lt "$before" ]; then
		show_log "$name"
		die "$name ($size B): a process died during the run"
	fi
	requests=$(awk '/requests in/ { print $1 }' "$out")
	run_rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
	# wrk prints e.g. "     99%  667.00us", "1.23ms" or "1.02s".
	run_p99=$(awk '$1 == "99%" {
		v = $2 + 0
		if ($2 ~ /us$/) print v
		else if ($2 ~ /ms$/) print v * 1000
		else if ($2 ~ /m$/) print v * 60000000
		else print v * 1000000
	}' "$out")
	if [ -z "$requests" ] || [ "$requests" -eq 0 ] || [ -z "$run_rps" ] || [ -z "$run_p99" ]; then
		die "$name: cannot read wrk's output: $(cat "$out")"
	fi
	errors=$(grep -E 'Socket errors|Non-2xx' "$out" || true)
	[ -z "$errors" ] || warn "$name ($size B): $(tr '\n' ' ' <<<"$errors")"
	echo "$run_rps $run_p99 $(awk -v t=$((after - before)) -v hz="$clk_tck" -v n="$requests" \
		'BEGIN { printf "%.2f", t * 1000000 / hz / n }')" >>"$tmp/results/$size/$name"
	log "$name ($size B): $(tail -n 1 "$tmp/results/$size/$name") (req/s, p99 µs, CPU µs/req)"
}

clk_tck=$(getconf CLK_TCK)

# --- report header ---------------------------------------------------------
servers=(bare strata)
$have_nginx && servers+=(nginx)
$have_varnish && servers+=(varnish)

echo "## Cache-hit benchmark"
echo
echo "- machine: $(machine_line)"
echo "- strata: $(version_of "$STRATA_BIN" --version)"
echo "- libmicrohttpd: $(pkg-config --modversion libmicrohttpd)"
if $have_nginx; then
	echo "- nginx: $(version_of nginx -v | sed 's/^nginx version: //')"
else
	echo "- nginx: not installed, skipped"
fi
if $have_varnish; then
	echo "- varnish: $(version_of varnishd -V | sed 's/^varnishd (\(.*\))$/\1/')"
else
	echo "- varnish: not installed, skipped"
fi
echo "- load: $(version_of wrk -v | awk '{ print $1, $2 }'), 1 thread, $CONNS connections, ${DURATION}s per run, $ROUNDS round(s), medians shown"
echo "- servers: $WORKERS worker threads/processes each, nothing pinned; wrk shares the same $(nproc) CPUs"

# --- the runs --------------------------------------------------------------
for size in $SIZES; do
	log "--- $size-byte body ---"
	mkdir -p "$tmp/results/$size"
	pid=()
	port=()
	start_origin "$size"
	wait_ready origin "${pid[origin]}" "http://127.0.0.1:${port[origin]}/obj"
	for name in "${servers[@]}"; do
		"start_$name" "$size"
	done
	for name in "${servers[@]}"; do
		# The readiness request is also the one that fills the cache.
		wait_ready "$name" "${pid[$name]}" "http://127.0.0.1:${port[$name]}/obj"
		check_hit "$name"
	done

	for ((round = 0; round < ROUNDS; round++)); do
		log "round $((round + 1))/$ROUNDS"
		n=${#servers[@]}
		for ((i = 0; i < n; i++)); do
			measure "${servers[(i + round) % n]}" "$size"
		done
	done

	this_size=()
	for name in origin "${servers[@]}"; do
		this_size+=("${pid[$name]}")
	done
	stop_trees "${this_size[@]}"
	# All of them are stopped and waited for: forget their PIDs.
	started=()

	# Medians per server: req/s, p99, CPU per request.
	declare -A rps spread p99 cpu
	for name in "${servers[@]}"; do
		runs="$tmp/results/$size/$name"
		rps[$name]=$(cut -d' ' -f1 "$runs" | median)
		spread[$name]=$(cut -d' ' -f1 "$runs" | sort -g |
			awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.0f–%.0f", lo, hi }')
		p99[$name]=$(cut -d' ' -f2 "$runs" | median)
		cpu[$name]=$(cut -d' ' -f3 "$runs" | median)
	done

	echo
	echo "### $size-byte body"
	echo
	echo "| server | req/s | req/s min–max | p99 (µs) | CPU µs/request | req/s vs bare | CPU/request vs bare |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
	for name in "${servers[@]}"; do
		case $name in
		bare) label='bare libmicrohttpd (ceiling)' ;;
		strata) label='Strata (memory hit)' ;;
		nginx) label='nginx proxy_cache' ;;
		varnish) label='Varnish' ;;
		esac
		awk -v l="$label" -v r="${rps[$name]}" -v s="${spread[$name]}" \
			-v p="${p99[$name]}" -v c="${cpu[$name]}" \
			-v br="${rps[bare]}" -v bc="${cpu[bare]}" \
			'BEGIN { printf "| %s | %.0f | %s | %.0f | %.2f | %.2f× | %.2f× |\n",
				l, r, s, p, c, r / br, (bc > 0 ? c / bc : 0) }'
	done
	for other in nginx varnish; do
		[ -n "${rps[$other]:-}" ] || continue
		awk -v o="$other" -v sr="${rps[strata]}" -v sc="${cpu[strata]}" \
			-v r="${rps[$other]}" -v c="${cpu[$other]}" \
			'BEGIN { printf "\nStrata vs %s: %.2f× the req/s, %.2f× the CPU per request.\n",
				o, sr / r, (c > 0 ? sc / c : 0) }'
	done
	unset rps spread p99 cpu
done
