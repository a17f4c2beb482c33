#!/usr/bin/env bash
# The expiry of a hot key under load: how many requests reach the origin
# when one object, hammered by 200 connections, expires every TTL seconds.
# A cache that collapses concurrent misses sends one request per fill (the
# cold one at t≈0, then one per expiry); one that does not sends everything
# that arrives while the refill is in flight.
#
#   contrib/bench/expiry.sh                   # 3 rounds of 7 s, about 2 minutes
#   ROUNDS=1 DURATION=3 contrib/bench/expiry.sh   # a quick check
#
# Run from anywhere in a built tree (it changes to the top).  Needs python3,
# curl and wrk; nginx and varnishd are measured when installed and skipped
# otherwise.
#
# Environment:
#   ROUNDS=3          rounds; each runs every server once, in a rotating order
#   DURATION=7        seconds of wrk per run
#   TTL=2             seconds: Strata's route TTL, nginx's proxy_cache_valid,
#                     Varnish's -t
#   CONNS=200         wrk connections (one wrk thread)
#   DELAY=0.05        seconds the origin takes per /obj answer: the window in
#                     which a stampede can pile up
#   WORKERS=2         Strata --workers, nginx workers, Varnish thread pools
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
DURATION=${DURATION:-7}
TTL=${TTL:-2}
CONNS=${CONNS:-200}
DELAY=${DELAY:-0.05}
WORKERS=${WORKERS:-2}
STRATA_BIN=${STRATA_BIN:-./strata}
READY_TIMEOUT=${READY_TIMEOUT:-15}

need python3 curl wrk
[ -x "$STRATA_BIN" ] ||
	die "$STRATA_BIN not found: build first (./configure && make) or set STRATA_BIN"
servers=(strata)
command -v nginx >/dev/null && servers+=(nginx nginx_stale)
command -v varnishd >/dev/null && servers+=(varnish)

make_tmp

declare -A pid port

# Every run starts a fresh origin (so its count is this run's alone) and a
# fresh, empty cache (so the first fill is at t≈0, as wrk starts).
start_origin() {
	alloc_port 'port[origin]'
	python3 contrib/bench/counting_origin.py --port "${port[origin]}" \
		--delay "$DELAY" --size 1024 >"$tmp/origin.log" 2>&1 &
	pid[origin]=$!
	started+=("${pid[origin]}")
}

start_strata() {
	local admin
	alloc_port 'port[strata]'
	alloc_port admin
	"$STRATA_BIN" --upstream "http://127.0.0.1:${port[origin]}" \
		--listen "127.0.0.1:${port[strata]}" \
		--admin-listen "127.0.0.1:$admin" --workers "$WORKERS" \
		--route "/obj=${TTL}s" --set access_log=false --set cache.disk.enabled=false --memory 64MiB \
		>"$tmp/strata.log" 2>&1 &
	pid[strata]=$!
	started+=("${pid[strata]}")
}

# start_nginx_conf NAME EXTRA: nginx with proxy_cache_lock, plus the
# directives in EXTRA inside the location.
start_nginx_conf() {
	local name=$1 extra=$2 dir="$tmp/$1-$RANDOM" user_line=
	alloc_port "port[$name]"
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
	keepalive_requests 1000000000;
	client_body_temp_path $dir/client_body;
	proxy_temp_path $dir/proxy_temp;
	fastcgi_temp_path $dir/fastcgi_temp;
	uwsgi_temp_path $dir/uwsgi_temp;
	scgi_temp_path $dir/scgi_temp;
	proxy_cache_path $dir/cache levels=1:2 keys_zone=bench:10m
		max_size=64m inactive=1h use_temp_path=off;
	server {
		listen 127.0.0.1:${port[$name]};
		location / {
			proxy_pass http://127.0.0.1:${port[origin]};
			proxy_cache bench;
			proxy_cache_valid 200 ${TTL}s;
			proxy_cache_lock on;
			$extra
			add_header X-Cache-Status \$upstream_cache_status;
		}
	}
}
EOF
	nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" \
		>"$tmp/$name.log" 2>&1 &
	pid[$name]=$!
	started+=("${pid[$name]}")
}

start_nginx() { start_nginx_conf nginx ''; }

# The configuration that answers stale while one request refreshes: nginx's
# counterpart of Varnish's grace.
start_nginx_stale() {
	start_nginx_conf nginx_stale \
		'proxy_cache_use_stale updating; proxy_cache_background_update on;'
}

start_varnish() {
	alloc_port 'port[varnish]'
	# -n: a private work dir; -T none: no management port to collide with.
	# -t is the TTL of answers without Cache-Control (the origin sends
	# none); default_grace (10 s) is left alone.
	varnishd -F -n "$tmp/varnish-$RANDOM" -T none \
		-a "127.0.0.1:${port[varnish]}" -b "127.0.0.1:${port[origin]}" \
		-s malloc,64m -t "$TTL" -p "thread_pools=$WORKERS" \
		>"$tmp/varnish.log" 2>&1 &
	pid[varnish]=$!
	started+=("${pid[varnish]}")
}

label_of() {
	case $1 in
	strata) echo "Strata (route /obj=${TTL}s)" ;;
	nginx) echo "nginx proxy_cache, proxy_cache_lock on" ;;
	nginx_stale) echo "nginx, lock + use_stale updating + background_update" ;;
	varnish) echo "Varnish -t $TTL (default grace 10 s)" ;;
	esac
}

# bursts: from the origin's log on stdin ("seconds in_flight" a line),
# count the bursts of upstream requests, i.e. the fills: requests closer
# than TTL/2 to the previous one belong to the same fill.
bursts() {
	awk -v gap="$TTL" '
		NR == 1 || $1 - last > gap / 2 { n++ }
		{ last = $1 }
		END { print n + 0 }'
}

# run NAME: one run against a fresh origin and a fresh cache; appends
# "upstream_requests fills client_requests largest_fill" to
# $tmp/results/NAME.
run() {
	local name=$1 out="$tmp/wrk.out" count upstream_log fills requests largest peak times errors
	pid=()
	port=()
	start_origin
	wait_ready origin "${pid[origin]}" "http://127.0.0.1:${port[origin]}/ready"
	"start_$name"
	# /ready is not /obj: the readiness check fills nothing that counts.
	wait_ready "$name" "${pid[$name]}" "http://127.0.0.1:${port[$name]}/ready"
	[ "$(curl -sf "http://127.0.0.1:${port[origin]}/count")" = 0 ] ||
		die "$name: the origin counted /obj requests before the run"

	wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:${port[$name]}/obj" \
		>"$out" 2>&1 || die "$name: wrk failed: $(cat "$out")"
	count=$(curl -sf "http://127.0.0.1:${port[origin]}/count") ||
		die "$name: cannot read the origin's count"
	upstream_log=$(curl -sf "http://127.0.0.1:${port[origin]}/log") ||
		die "$name: cannot read the origin's log"
	if ! kill -0 "${pid[$name]}" 2>/dev/null; then
		show_log "$name"
		die "$name: exited during the run"
	fi
	stop_trees "${pid[$name]}" "${pid[origin]}"
	forget "${pid[$name]}" "${pid[origin]}"

	requests=$(awk '/requests in/ { print $1 }' "$out")
	if [ -z "$requests" ] || [ "$requests" -eq 0 ]; then
		die "$name: cannot read wrk's output: $(cat "$out")"
	fi
	errors=$(grep -E 'Socket errors|Non-2xx' "$out" || true)
	[ -z "$errors" ] || warn "$name: $(tr '\n' ' ' <<<"$errors")"
	fills=$(bursts <<<"$upstream_log")
	# The largest fill: the most upstream requests in one burst.
	largest=$(awk -v gap="$TTL" '
		NR == 1 || $1 - last > gap / 2 { n = 0 }
		{ last = $1; if (++n > m) m = n }
		END { print m + 0 }' <<<"$upstream_log")
	peak=$(awk '$2 > m { m = $2 } END { print m + 0 }' <<<"$upstream_log")
	echo "$count $fills $requests $largest" >>"$tmp/results/$name"
	# The start of every fill, to show when the origin was asked.
	times=$(awk -v gap="$TTL" 'NR == 1 || $1 - last > gap / 2 { printf "%s%.2f", sep, $1; sep = " " }
		{ last = $1 }' <<<"$upstream_log")
	log "$name: $count upstream requests in $fills fill(s) starting at t=[$times] s," \
		"the largest $largest, at most $peak in flight at once; $requests client requests"
}

# --- report header ---------------------------------------------------------
expected=$(awk -v d="$DURATION" -v t="$TTL" 'BEGIN { n = int(d / t); if (n * t < d) n++; print n }')
echo "## Expiry of a hot key under load"
echo
echo "- machine: $(machine_line)"
echo "- strata: $(version_of "$STRATA_BIN" --version)"
if command -v nginx >/dev/null; then
	echo "- nginx: $(version_of nginx -v | sed 's/^nginx version: //')"
else
	echo "- nginx: not installed, skipped"
fi
if command -v varnishd >/dev/null; then
	echo "- varnish: $(version_of varnishd -V | sed 's/^varnishd (\(.*\))$/\1/')"
else
	echo "- varnish: not installed, skipped"
fi
echo "- load: $(version_of wrk -v | awk '{ print $1, $2 }'), 1 thread, $CONNS connections, ${DURATION}s on one URL from a cold cache, $ROUNDS round(s), medians shown"
echo "- origin: counting_origin.py, 1 KiB body after ${DELAY}s, no Cache-Control; TTL ${TTL}s in each cache"
echo "- expected with collapsing: $expected fills in ${DURATION}s (the cold one at t≈0, then one every ${TTL}s), one request each"

# --- the runs --------------------------------------------------------------
mkdir -p "$tmp/results"
for ((round = 0; round < ROUNDS; round++)); do
	log "round $((round + 1))/$ROUNDS"
	n=${#servers[@]}
	for ((i = 0; i < n; i++)); do
		run "${servers[(i + round) % n]}"
	done
done

echo
echo "| server | upstream requests in ${DURATION} s | expiries (fills) | requests per expiry | largest fill | per run |"
echo "|---|---:|---:|---:|---:|---|"
for name in "${servers[@]}"; do
	runs="$tmp/results/$name"
	count=$(cut -d' ' -f1 "$runs" | median)
	fills=$(cut -d' ' -f2 "$runs" | median)
	largest=$(cut -d' ' -f4 "$runs" | median)
	per_run=$(awk '{ printf "%s%d/%d", sep, $1, $2; sep = ", " }' "$runs")
	awk -v l="$(label_of "$name")" -v c="$count" -v f="$fills" -v p="$largest" -v r="$per_run" \
		'BEGIN { printf "| %s | %g | %g | %.1f | %g | %s |\n", l, c, f, (f > 0 ? c / f : 0), p, r }'
done
echo
echo "A fill is a burst of upstream requests, each less than TTL/2 after the one before; the first is the cold miss at t≈0."
echo "\"Largest fill\" counts the requests of the biggest burst; \"per run\" is requests/fills for each round."
for name in "${servers[@]}"; do
	case $name in
	nginx)
		echo
		echo "nginx: proxy_cache_lock only holds back requests for an entry that is not in the cache yet; once an entry has expired, every request that arrives before the refill is stored goes upstream.  nginx also keeps validity in whole seconds and treats an entry as fresh until its last second is over, so a ${TTL} s validity lasts ${TTL}–$((TTL + 1)) s and, once the fills align to the second, it refills every $((TTL + 1)) s."
		;;
	varnish)
		echo
		echo "Varnish: with the default grace (10 s) an expired object is still served while one background fetch refreshes it, so clients never wait for the refill after the cold one.  This build of Strata serves nothing stale: during each refill (${DELAY} s here) its clients wait, collapsed onto the one upstream request."
		;;
	esac
done
