#!/usr/bin/env bash
# contrib/check-deploy.sh: validate the deployment files under contrib/
# (docker, compose, kubernetes, nginx, systemd, prometheus, grafana) on this
# machine, without a container engine or a cluster.
#
#   contrib/check-deploy.sh [--no-install]
#
# Each check prints one line, "ok", "FAIL" or "skip", with the reason; a
# failing check then shows the tool's output.  The exit status is 1 when any
# check failed, else 0 (skipped checks do not fail the run, and are listed
# at the end).
#
# Tools come from Debian packages, installed with apt-get when missing and
# run as root (--no-install: never install, skip instead): python3-yaml,
# nginx, prometheus (for promtool), systemd (systemd-analyze), shellcheck,
# and docker-compose (Debian's Compose version 1, a weaker stand-in for
# `docker compose config` when the plugin is missing).  docker with its
# compose plugin, and kubectl, are used when present; they are not Debian
# packages.
#
# Environment:
#   STRATA_BIN   a strata binary for `strata --check-config` of the sample
#                configurations (default: ./strata of an in-place build,
#                else strata on PATH; skipped when there is none)
set -euo pipefail

SRCDIR=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
readonly SRCDIR
readonly PYTHON=/usr/bin/python3 # Debian's, which python3-yaml belongs to

may_install=1
case "${1:-}" in
"") ;;
--no-install) may_install=0 ;;
-h | --help)
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//p}' "$0"
	exit 0
	;;
*)
	echo "usage: $0 [--no-install]" >&2
	exit 2
	;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-deploy.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

failed=0
skipped=()

ok() { printf 'ok    %s\n' "$*"; }
skip() {
	printf 'skip  %s\n' "$*"
	skipped+=("$*")
}
fail() {
	printf 'FAIL  %s\n' "$*"
	failed=$((failed + 1))
}

# check DESCRIPTION COMMAND...: run COMMAND; ok, or FAIL with its output.
check() {
	local what=$1 out=$tmp/check.out
	shift
	if "$@" >"$out" 2>&1; then
		ok "$what"
	else
		fail "$what"
		sed 's/^/      /' "$out"
	fi
}

# py DESCRIPTION [ARG...] < script: a check written in Python (PyYAML).
py() {
	local what=$1
	shift
	cat >"$tmp/check.py"
	check "$what" "$PYTHON" "$tmp/check.py" "$@"
}

# --- tools --------------------------------------------------------------

# apt_install PACKAGE: apt-get install it, if we may (root, no --no-install).
apt_install() {
	local pkg=$1
	[ "$may_install" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
	echo "      installing $pkg"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y -q --no-install-recommends "$pkg" >"$tmp/apt.out" 2>&1; then
		apt-get update -q >/dev/null 2>&1 || true
		apt-get install -y -q --no-install-recommends "$pkg" >"$tmp/apt.out" 2>&1 || {
			echo "      apt-get could not install $pkg:"
			tail -n 3 "$tmp/apt.out" | sed 's/^/      /'
			return 1
		}
	fi
}

# want COMMAND PACKAGE: COMMAND is available, or PACKAGE installs it.
want() {
	command -v "$1" >/dev/null 2>&1 && return 0
	apt_install "$2" && command -v "$1" >/dev/null 2>&1
}

have_yaml=0
if "$PYTHON" -c 'import yaml' 2>/dev/null ||
	{ apt_install python3-yaml && "$PYTHON" -c 'import yaml' 2>/dev/null; }; then
	have_yaml=1
fi

cd "$SRCDIR"

# --- the files ----------------------------------------------------------

readonly FILES=(
	.dockerignore
	contrib/docker/Dockerfile contrib/docker/strata.yaml
	contrib/compose/docker-compose.yml contrib/compose/strata.yaml
	contrib/compose/nginx.conf contrib/compose/prometheus.yml
	contrib/compose/grafana/datasource.yml contrib/compose/grafana/dashboards.yml
	contrib/nginx/strata-upstream.conf
	contrib/kubernetes/kustomization.yaml
	contrib/systemd/strata.service contrib/systemd/strata@.service
	contrib/systemd/strata.yaml
	contrib/prometheus/prometheus.yml contrib/prometheus/strata-alerts.yml
	contrib/prometheus/strata-alerts.test.yml
	contrib/grafana/strata-dashboard.json
	docs/operations.md
)
missing=()
for f in "${FILES[@]}"; do
	[ -f "$f" ] || missing+=("$f")
done
if [ "${#missing[@]}" -eq 0 ]; then
	ok "all ${#FILES[@]} deployment files are present"
else
	fail "missing files: ${missing[*]}"
fi

# Every contrib/ or docs/ path named in the deployment files and the
# operations guide exists (a renamed file leaves no dangling reference).
# Not .dockerignore: it names build outputs, which a clean tree lacks.
py "paths named in the deployment files exist" <<'EOF'
import os, re, sys
sources = ["docs/operations.md"]
for top in ("contrib/docker", "contrib/compose", "contrib/kubernetes",
            "contrib/nginx", "contrib/systemd", "contrib/prometheus",
            "contrib/grafana"):
    for d, _, names in os.walk(top):
        sources += [os.path.join(d, n) for n in names]
sources.append("contrib/check-deploy.sh")
pat = re.compile(r"(?<![\w./-])((?:contrib|docs)/[A-Za-z0-9_.@/-]*[A-Za-z0-9_@])")
bad = []
for src in sources:
    text = open(src, encoding="utf-8").read()
    for m in pat.finditer(text):
        path = m.group(1)
        if "*" in path or path.endswith("/N"):
            continue
        if not os.path.exists(path):
            line = text.count("\n", 0, m.start()) + 1
            bad.append(f"{src}:{line}: {path} does not exist")
print("\n".join(bad))
sys.exit(1 if bad else 0)
EOF

# --- YAML ---------------------------------------------------------------

if [ "$have_yaml" = 1 ]; then
	py "every YAML file parses (contrib/kubernetes, compose, prometheus, systemd, docker)" <<'EOF'
import glob, sys, yaml
files = []
for top in ("kubernetes", "compose", "prometheus", "systemd", "docker"):
    for ext in ("yml", "yaml"):
        files += glob.glob(f"contrib/{top}/**/*.{ext}", recursive=True)
bad = 0
for f in sorted(files):
    try:
        docs = [d for d in yaml.safe_load_all(open(f, encoding="utf-8"))]
        if not any(d is not None for d in docs):
            raise ValueError("no document")
        print(f"{f}: {len(docs)} document(s)")
    except Exception as e:
        print(f"{f}: {e}")
        bad += 1
sys.exit(1 if bad else 0)
EOF
else
	skip "YAML checks: $PYTHON cannot import yaml (Debian package python3-yaml)"
fi

# --- Kubernetes ---------------------------------------------------------

if [ "$have_yaml" = 1 ]; then
	py "kubernetes: kustomization lists existing files; selectors, ports, ConfigMap and HPA agree" "$tmp" <<'EOF'
import os, sys, yaml
out = sys.argv[1]
base = "contrib/kubernetes"
kust = yaml.safe_load(open(f"{base}/kustomization.yaml"))
errors = []
objs = []
listed = kust.get("resources", [])
for key in ("resources", "patches", "components"):
    for r in kust.get(key, []) or []:
        path = r if isinstance(r, str) else r.get("path")
        if path and not os.path.exists(os.path.join(base, path)):
            errors.append(f"kustomization.yaml: {key}: {path} does not exist")
on_disk = {f for f in os.listdir(base) if f.endswith((".yaml", ".yml"))}
for f in sorted(on_disk - set(listed) - {"kustomization.yaml"}):
    errors.append(f"{f} is not listed in kustomization.yaml resources")
for r in listed:
    p = os.path.join(base, r)
    if os.path.exists(p):
        for d in yaml.safe_load_all(open(p)):
            if d is None:
                continue
            for k in ("apiVersion", "kind", "metadata"):
                if k not in d:
                    errors.append(f"{r}: a document has no {k}")
            objs.append((r, d))

def find(kind, name=None):
    return [d for _, d in objs if d.get("kind") == kind
            and (name is None or d["metadata"]["name"] == name)]

def matches(sel, labels):
    return all(labels.get(k) == v for k, v in (sel or {}).items())

deps = find("Deployment")
strata = find("Deployment", "strata")
if not strata:
    errors.append("no Deployment named strata")
for d in deps:
    name = d["metadata"]["name"]
    tpl = d["spec"]["template"]
    labels = tpl["metadata"].get("labels", {})
    if not matches(d["spec"]["selector"]["matchLabels"], labels):
        errors.append(f"Deployment {name}: selector does not match its pod labels")
    vols = {v["name"]: v for v in tpl["spec"].get("volumes", [])}
    for c in tpl["spec"]["containers"]:
        ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            pr = c.get(probe)
            if not pr:
                continue
            port = (pr.get("httpGet") or pr.get("tcpSocket") or {}).get("port")
            if isinstance(port, str) and port not in ports:
                errors.append(f"{name}/{c['name']}: {probe} port {port} is not a container port")
        for m in c.get("volumeMounts", []):
            if m["name"] not in vols:
                errors.append(f"{name}/{c['name']}: mounts undefined volume {m['name']}")
    for v in vols.values():
        cm = v.get("configMap")
        if cm and not find("ConfigMap", cm["name"]):
            errors.append(f"Deployment {name}: ConfigMap {cm['name']} is not defined")
for kind in ("Service", "PodDisruptionBudget"):
    for s in find(kind):
        sel = s["spec"]["selector"]
        sel = sel.get("matchLabels", sel) if kind == "PodDisruptionBudget" else sel
        hits = [d for d in deps if matches(sel, d["spec"]["template"]["metadata"].get("labels", {}))]
        if not hits:
            errors.append(f"{kind} {s['metadata']['name']}: selector matches no Deployment's pods")
        if kind == "Service":
            for p in s["spec"]["ports"]:
                tp = p.get("targetPort")
                if isinstance(tp, str):
                    named = {q.get("name") for d in hits for c in d["spec"]["template"]["spec"]["containers"] for q in c.get("ports", [])}
                    if tp not in named:
                        errors.append(f"Service {s['metadata']['name']}: targetPort {tp} is no container port")
for h in find("HorizontalPodAutoscaler"):
    ref = h["spec"]["scaleTargetRef"]
    if not find(ref["kind"], ref["name"]):
        errors.append(f"HPA {h['metadata']['name']}: target {ref['kind']}/{ref['name']} not defined")
    if h["apiVersion"] != "autoscaling/v2":
        errors.append("HPA is not autoscaling/v2")
if strata:
    spec = strata[0]["spec"]["template"]["spec"]
    c = spec["containers"][0]
    grace = spec.get("terminationGracePeriodSeconds", 30)
    pre = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    for k, want in (("livenessProbe", "/health"), ("readinessProbe", "/ready")):
        got = c.get(k, {}).get("httpGet", {}).get("path")
        if got != want:
            errors.append(f"strata {k} path is {got}, want {want}")
    cms = find("ConfigMap", "strata-config")
    if cms:
        conf = cms[0]["data"]["strata.yaml"]
        cfg = yaml.safe_load(conf)
        with open(os.path.join(out, "k8s-strata.yaml"), "w") as f:
            f.write(conf)
        st = str(cfg.get("shutdown_timeout", "10s"))
        secs = int(st[:-1]) if st.endswith("s") and not st.endswith("ms") else None
        pre_s = int(pre[-1]) if pre and pre[-1].isdigit() else 0
        if secs is not None and grace < pre_s + secs:
            errors.append(f"terminationGracePeriodSeconds {grace} < preStop {pre_s}s + shutdown_timeout {secs}s")
        print(f"drain: preStop {pre_s}s + shutdown_timeout {st} <= grace {grace}s")
print(f"{len(objs)} objects: " + ", ".join(f"{d['kind']}/{d['metadata']['name']}" for _, d in objs))
print("\n".join(errors))
sys.exit(1 if errors else 0)
EOF
else
	skip "kubernetes file checks: $PYTHON cannot import yaml (Debian package python3-yaml)"
fi
if command -v kubectl >/dev/null 2>&1; then
	check "kubernetes: kubectl kustomize builds contrib/kubernetes (offline)" \
		kubectl kustomize contrib/kubernetes
else
	skip "kubectl kustomize: kubectl is not installed (the file checks above still ran)"
fi

# --- Compose ------------------------------------------------------------

# Compose needs the admin token the file requires; any value will do here.
export STRATA_ADMIN_TOKEN=${STRATA_ADMIN_TOKEN:-check-deploy-dummy-token}
if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
	check "compose: docker compose config -q" \
		docker compose -f contrib/compose/docker-compose.yml config -q
else
	skip "docker compose config: the docker compose plugin is not installed ('docker compose' is not a docker command here)"
	if want docker-compose docker-compose; then
		# Debian 12's docker-compose is version 1, which validates the
		# file against its own copy of the Compose schema: a weaker check.
		check "compose: docker-compose (v1) config -q, in place of the plugin" \
			docker-compose -f contrib/compose/docker-compose.yml config -q
	fi
fi
if [ "$have_yaml" = 1 ]; then
	py "compose: services, replicas, build context and bind-mounted files" <<'EOF'
import os, sys, yaml
base = "contrib/compose"
c = yaml.safe_load(open(f"{base}/docker-compose.yml"))
s = c["services"]
errors = []
for name in ("strata", "redis", "nginx", "app", "prometheus", "grafana"):
    if name not in s:
        errors.append(f"no service {name}")
st = s.get("strata", {})
if st.get("deploy", {}).get("replicas") != 3:
    errors.append("strata: deploy.replicas is not 3")
if "ports" in st:
    errors.append("strata: replicas must not publish host ports")
b = st.get("build", {})
ctx = os.path.normpath(os.path.join(base, b.get("context", ".")))
if not os.path.isfile(os.path.join(ctx, b.get("dockerfile", "Dockerfile"))):
    errors.append(f"strata: no Dockerfile {b.get('dockerfile')} in {ctx}")
for name, svc in s.items():
    for v in svc.get("volumes", []):
        src = v.split(":")[0] if isinstance(v, str) else v.get("source", "")
        if src.startswith((".", "/")):
            p = os.path.normpath(os.path.join(base, src))
            if not os.path.exists(p):
                errors.append(f"{name}: bind mount source {src} ({p}) does not exist")
nginx = open(f"{base}/nginx.conf").read()
if "server strata:" not in nginx:
    errors.append("nginx.conf does not proxy to the strata service by name")
prom = yaml.safe_load(open(f"{base}/prometheus.yml"))
sd = [n for j in prom["scrape_configs"] for d in j.get("dns_sd_configs", []) for n in d["names"]]
if "strata" not in sd and "tasks.strata" not in sd:
    errors.append("prometheus.yml: no dns_sd_configs on strata")
print("\n".join(errors))
sys.exit(1 if errors else 0)
EOF
else
	skip "compose file checks: $PYTHON cannot import yaml (Debian package python3-yaml)"
fi

# --- nginx --------------------------------------------------------------

# nginx_test NAME FILE: `nginx -t` on a minimal nginx.conf that includes
# a copy of FILE in its http block, with every path under a prefix in $tmp
# (-e keeps nginx from opening the default error log).  `nginx -t` also
# binds the listen addresses, so the copy listens on a free loopback port
# instead of port 80 (taken on a machine running a web server, and
# privileged for a user other than root), without the IPv6 line (a
# machine may have no IPv6).
nginx_test() {
	local name=$1 file=$2
	local prefix=$tmp/nginx-$name port
	mkdir -p "$prefix/logs" "$prefix/temp"
	port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	sed -E -e "s/^([[:space:]]*)listen 80;/\1listen 127.0.0.1:$port;/" \
		-e '/^[[:space:]]*listen \[::\]:80;/d' "$file" >"$prefix/site.conf"
	if cmp -s "$file" "$prefix/site.conf"; then
		echo "$file: no 'listen 80;' to test"
		return 1
	fi
	cat >"$prefix/nginx.conf" <<EOF
worker_processes 1;
pid $prefix/nginx.pid;
error_log $prefix/logs/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $prefix/temp/body;
    proxy_temp_path $prefix/temp/proxy;
    fastcgi_temp_path $prefix/temp/fastcgi;
    uwsgi_temp_path $prefix/temp/uwsgi;
    scgi_temp_path $prefix/temp/scgi;
    include $prefix/site.conf;
}
EOF
	nginx -t -q -p "$prefix/" -e "$prefix/logs/error.log" -c "$prefix/nginx.conf"
}

if want nginx nginx; then
	check "nginx: nginx -t with contrib/nginx/strata-upstream.conf included" \
		nginx_test host "$SRCDIR/contrib/nginx/strata-upstream.conf"
	# nginx resolves upstream server names while it parses, and the Compose
	# service name `strata` resolves only on the Compose network: test a copy
	# with the service names replaced by 127.0.0.1.
	sed -E 's/\b(strata|app|redis|prometheus|grafana):([0-9]+)/127.0.0.1:\2/g' \
		contrib/compose/nginx.conf >"$tmp/compose-nginx.conf"
	check "nginx: nginx -t with contrib/compose/nginx.conf (service names as 127.0.0.1)" \
		nginx_test compose "$tmp/compose-nginx.conf"
else
	skip "nginx -t: nginx is not installed and could not be (Debian package nginx)"
fi

# --- Prometheus ---------------------------------------------------------

if want promtool prometheus; then
	check "prometheus: promtool check config contrib/prometheus/prometheus.yml" \
		promtool check config contrib/prometheus/prometheus.yml
	check "prometheus: promtool check rules contrib/prometheus/strata-alerts.yml" \
		promtool check rules contrib/prometheus/strata-alerts.yml
	check "prometheus: promtool test rules (alert unit tests)" \
		promtool test rules contrib/prometheus/strata-alerts.test.yml
	# The Compose Prometheus finds the alert rules next to its config, where
	# the Compose file mounts them: rebuild that layout.
	mkdir -p "$tmp/compose-prometheus"
	cp contrib/compose/prometheus.yml contrib/prometheus/strata-alerts.yml "$tmp/compose-prometheus/"
	check "prometheus: promtool check config contrib/compose/prometheus.yml" \
		promtool check config "$tmp/compose-prometheus/prometheus.yml"
else
	skip "promtool: not installed and could not be (Debian package prometheus)"
fi

# --- metric names and the Grafana dashboard -----------------------------

if [ "$have_yaml" = 1 ]; then
	py "grafana: the dashboard parses; panels, datasource variable and expressions" "$tmp" <<'EOF'
import json, os, sys, yaml
out = sys.argv[1]
d = json.load(open("contrib/grafana/strata-dashboard.json"))
errors = []
if not 36 <= d.get("schemaVersion", 0) <= 41:
    errors.append(f"schemaVersion {d.get('schemaVersion')}")
tvars = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
if tvars.get("DS_PROMETHEUS", {}).get("type") != "datasource":
    errors.append("no datasource variable DS_PROMETHEUS")
ids = [p["id"] for p in d["panels"]]
if len(ids) != len(set(ids)):
    errors.append("panel ids repeat")
exprs = []
for p in d["panels"]:
    if p["type"] == "row":
        continue
    if p.get("datasource", {}).get("uid") != "${DS_PROMETHEUS}":
        errors.append(f"panel {p['title']!r}: datasource is not ${{DS_PROMETHEUS}}")
    if not p.get("targets"):
        errors.append(f"panel {p['title']!r}: no query")
    for t in p.get("targets", []):
        exprs.append((p["title"], t["expr"]))
# Every expression, with Grafana's variables given values, must parse as
# PromQL: promtool checks them as recording rules.
rules = [{"record": f"dashboard:expr_{i}",
          "expr": e.replace("$__rate_interval", "5m").replace("$job", ".*").replace("$instance", ".*")}
         for i, (_, e) in enumerate(exprs)]
with open(os.path.join(out, "dashboard-rules.yml"), "w") as f:
    yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
with open(os.path.join(out, "dashboard-exprs.json"), "w") as f:
    json.dump([e for _, e in exprs] + [v["definition"] for v in tvars.values() if v.get("definition")], f)
print(f"{len(d['panels'])} panels, {len(exprs)} queries")
print("\n".join(errors))
sys.exit(1 if errors else 0)
EOF
	if command -v promtool >/dev/null 2>&1; then
		check "grafana: every dashboard query is valid PromQL (promtool)" \
			promtool check rules "$tmp/dashboard-rules.yml"
	fi
	py "metrics: every name in the alert rules and the dashboard is in src/obs/metrics.c and docs/admin-api.md" "$tmp" <<'EOF'
import json, os, re, sys, yaml
out = sys.argv[1]
src = open("src/obs/metrics.c").read()
doc = open("docs/admin-api.md").read()
families = set(re.findall(r'"((?:strata|process)_[a-z0-9_]+)"', src))
# A histogram family is served as its _bucket, _sum and _count series
# (metrics.c prints "%s_bucket{...}"); the API document says which
# families are histograms.
hist = set(re.findall(r"^\| `([a-z0-9_]+)` \| histogram \|", doc, re.M))
if not hist or not hist <= families:
    sys.exit(f"histograms in docs/admin-api.md ({sorted(hist)}) are not all in metrics.c")
served = set(families)
for h in hist:
    served |= {h + "_bucket", h + "_sum", h + "_count"}
# Series Prometheus records itself for every target.
synthetic = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right",
            "offset", "bool", "and", "or", "unless", "inf", "nan"}

def names(expr):
    """Metric names in a PromQL expression (or a label_values() query)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)          # strings
    e = re.sub(r"\{[^}]*\}", "", e)                          # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                         # ranges
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    e = re.sub(r"label_values\(([^,()]*),[^)]*\)", r"\1", e)  # label_values(metric, label)
    e = re.sub(r"\boffset\s+\d+[smhdwy]", "", e)
    found = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        word = m.group(0)
        rest = e[m.end():].lstrip()
        if rest.startswith("(") or word.lower() in KEYWORDS:
            continue
        if re.fullmatch(r"\d+[smhdwy]|e\d*", word):
            continue
        found.add(word)
    return found

used = {}
alerts = yaml.safe_load(open("contrib/prometheus/strata-alerts.yml"))
for g in alerts["groups"]:
    for r in g["rules"]:
        for n in names(r["expr"]):
            used.setdefault(n, set()).add("strata-alerts.yml:" + r.get("alert", r.get("record", "?")))
for e in json.load(open(os.path.join(out, "dashboard-exprs.json"))):
    for n in names(e):
        used.setdefault(n, set()).add("strata-dashboard.json")
errors = []
for n in sorted(used):
    base = n if n in families else re.sub(r"_(bucket|sum|count)$", "", n)
    if n in synthetic:
        continue
    if n not in served:
        errors.append(f"{n}: not served by src/obs/metrics.c (used in {', '.join(sorted(used[n]))})")
    elif base not in doc:
        errors.append(f"{n}: not documented in docs/admin-api.md")
print("names used: " + ", ".join(sorted(used)))
print("\n".join(errors))
sys.exit(1 if errors else 0)
EOF
else
	skip "dashboard and metric name checks: $PYTHON cannot import yaml (Debian package python3-yaml)"
fi

# --- systemd ------------------------------------------------------------

# systemd-analyze verify checks that ExecStart's program exists, and
# /usr/local/bin/strata is not installed on a machine that checks the files:
# verify copies in which /usr/local/bin/strata is /bin/true, so that the
# check is about the unit files, not about this machine.  The template is
# verified through an instance, strata@0.service.
verify_units() {
	local dir=$tmp/systemd
	mkdir -p "$dir"
	sed 's|/usr/local/bin/strata|/bin/true|g' contrib/systemd/strata.service >"$dir/strata.service"
	sed 's|/usr/local/bin/strata|/bin/true|g' contrib/systemd/strata@.service >"$dir/strata@.service"
	(cd "$dir" && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no \
		"$dir/strata.service" "$dir/strata@0.service") >"$dir/verify.out" 2>&1 || {
		cat "$dir/verify.out"
		return 1
	}
	# verify reports some problems as warnings with a zero exit status.
	if grep -v -e '^$' "$dir/verify.out"; then
		return 1
	fi
}

# Settings the units must have, as whole lines, then as prefixes (any value).
unit_settings() {
	local unit rc=0 line
	# shellcheck disable=SC2016 # $MAINPID is for systemd, not the shell
	local lines=(
		Type=notify NotifyAccess=main DynamicUser=yes
		'ExecStart=/usr/local/bin/strata -c /etc/strata/strata.yaml'
		'ExecReload=/bin/kill -HUP $MAINPID'
		ProtectSystem=strict ProtectHome=yes PrivateTmp=yes PrivateDevices=yes
		NoNewPrivileges=yes 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX'
		SystemCallFilter=@system-service MemoryDenyWriteExecute=yes
		LockPersonality=yes RestrictNamespaces=yes CapabilityBoundingSet=
	)
	local prefixes=(TimeoutStopSec= LimitNOFILE= StateDirectory=strata)
	for unit in contrib/systemd/strata.service contrib/systemd/strata@.service; do
		for line in "${lines[@]}"; do
			grep -q -x -F -- "$line" "$unit" || {
				echo "$unit: no line $line"
				rc=1
			}
		done
		for line in "${prefixes[@]}"; do
			grep -q -- "^$line" "$unit" || {
				echo "$unit: no $line"
				rc=1
			}
		done
	done
	return "$rc"
}
check "systemd: the units carry the required settings" unit_settings

if want systemd-analyze systemd; then
	check "systemd: systemd-analyze verify strata.service strata@0.service (ExecStart as /bin/true)" \
		verify_units
	if systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
		exposure() {
			systemd-analyze security --offline=true --no-pager \
				"$tmp/systemd/strata.service" 2>&1 | tail -n 1 |
				sed -E 's/^[^A-Za-z]*//; s/ *[^ -~]+$//'
		}
		ok "systemd: $(exposure)"
	fi
else
	skip "systemd-analyze: not installed and could not be (Debian package systemd)"
fi

# --- the container image ------------------------------------------------

# No container engine here, so the image is not built; check what can be
# checked without one.
docker_static() {
	local rc=0 pkg
	# Every -dev package contrib/bootstrap.sh installs for the build.
	while read -r pkg; do
		grep -q -w -- "$pkg" contrib/docker/Dockerfile || {
			echo "Dockerfile: build stage lacks $pkg (contrib/bootstrap.sh installs it)"
			rc=1
		}
	done < <(sed -n '/^readonly PACKAGES=(/,/^)/p' contrib/bootstrap.sh | grep -o '[a-z0-9.+-]*-dev')
	for word in 'autoreconf -fi' './configure' 'VOLUME \["/var/lib/strata"\]' \
		'HEALTHCHECK' '^USER ' 'STRATA_CONFIG=/etc/strata/strata.yaml'; do
		grep -q -E -- "$word" contrib/docker/Dockerfile || {
			echo "Dockerfile: no $word"
			rc=1
		}
	done
	grep -q -E '^ARG DEBIAN_IMAGE=debian:bookworm' contrib/docker/Dockerfile || {
		echo "Dockerfile: base image is not Debian 12 (bookworm)"
		rc=1
	}
	return "$rc"
}
check "docker: Dockerfile builds with bootstrap.sh's -dev packages; volume, user, healthcheck, config" docker_static

# The runtime stage installs the packages holding every shared library a
# local build of strata and strata-ctl needs (this machine is Debian 12,
# like the image).
runtime_libs() {
	local bins=() f soname path pkg rc=0 runtime
	for f in .libs/strata .libs/libstrata.so strata-ctl .libs/strata-ctl; do
		[ -f "$f" ] && bins+=("$f")
	done
	[ "${#bins[@]}" -gt 0 ] || return 2
	runtime=$(sed -n '/^FROM \${DEBIAN_IMAGE}$/,$p' contrib/docker/Dockerfile)
	while read -r soname; do
		case "$soname" in libstrata.so.* | libc.so.* | ld-linux*) continue ;; esac
		path=$(ldconfig -p | awk -v s="$soname" '$1 == s { print $NF; exit }')
		pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -n 1 | cut -d: -f1) ||
			pkg=
		[ -n "$pkg" ] || pkg=$(dpkg -S "$path" 2>/dev/null | head -n 1 | cut -d: -f1) || true
		if [ -z "$pkg" ]; then
			echo "$soname: no Debian package found"
			rc=1
		elif ! grep -q -w -- "$pkg" <<<"$runtime"; then
			echo "$soname is in $pkg, which the runtime stage does not install"
			rc=1
		else
			echo "$soname: $pkg"
		fi
	done < <(objdump -p "${bins[@]}" 2>/dev/null | awk '$1 == "NEEDED" { print $2 }' | sort -u)
	return "$rc"
}
if command -v objdump >/dev/null && command -v dpkg >/dev/null; then
	rc=0
	runtime_libs >"$tmp/libs.out" 2>&1 || rc=$?
	case "$rc" in
	0) ok "docker: the runtime stage installs the package of every library strata links ($(grep -c ': ' "$tmp/libs.out") libraries)" ;;
	2) skip "docker runtime libraries: no local build of strata to read them from (run contrib/bootstrap.sh)" ;;
	*)
		fail "docker: runtime stage packages"
		sed 's/^/      /' "$tmp/libs.out"
		;;
	esac
fi

# .dockerignore keeps out what git ignores (an in-place build) and nothing
# git tracks, but .git and .ci.  Patterns follow Docker's rules: Go's
# filepath.Match per path element, ** for any number of elements, the last
# matching pattern wins, ! re-includes, and a path is excluded when it or
# a parent directory is.
if command -v git >/dev/null && git rev-parse --git-dir >/dev/null 2>&1; then
	git ls-files >"$tmp/tracked"
	git ls-files --others --ignored --exclude-standard >"$tmp/ignored"
	py "docker: .dockerignore excludes every file git ignores and no file git tracks (but .git, .ci)" "$tmp" <<'EOF'
import os, re, sys
tmp = sys.argv[1]

def to_regex(pat):
    out, i = "", 0
    while i < len(pat):
        c = pat[i]
        if pat.startswith("**", i):
            out += ".*"
            i += 2
            if i < len(pat) and pat[i] == "/":
                out = out[:-2] + "(?:.*/)?"
                i += 1
            continue
        out += {"*": "[^/]*", "?": "[^/]"}.get(c, re.escape(c))
        i += 1
    return re.compile(out + r"\Z")

rules = []
for line in open(".dockerignore"):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    neg = line.startswith("!")
    pat = os.path.normpath(line.lstrip("!").lstrip("/"))
    rules.append((neg, to_regex(pat)))

def excluded(path):
    parts = path.split("/")
    result = False
    for i in range(1, len(parts) + 1):
        prefix = "/".join(parts[:i])
        for neg, rx in rules:
            if rx.match(prefix):
                result = not neg
        if result and i < len(parts):
            return True
    return result

tracked = open(f"{tmp}/tracked").read().split()
ignored = open(f"{tmp}/ignored").read().split()
errors = [f"tracked but excluded: {p}" for p in tracked
          if excluded(p) and not p.startswith((".ci/", ".git/"))]
errors += [f"ignored by git but sent to docker build: {p}" for p in ignored if not excluded(p)]
print(f"{len(tracked)} tracked, {len(ignored)} ignored files checked")
print("\n".join(errors[:40]))
sys.exit(1 if errors else 0)
EOF
else
	skip ".dockerignore against git: not a git checkout"
fi
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
	skip "docker build: an engine is available, but building the image is left to you (docker build -f contrib/docker/Dockerfile .)"
else
	skip "docker build: no container engine on this machine; the image itself was not built"
fi

# --- the sample configurations, by strata itself ------------------------

strata_bin=${STRATA_BIN:-}
if [ -z "$strata_bin" ]; then
	if [ -x "$SRCDIR/strata" ] && "$SRCDIR/strata" --version >/dev/null 2>&1; then
		strata_bin=$SRCDIR/strata
	elif command -v strata >/dev/null 2>&1; then
		strata_bin=$(command -v strata)
	fi
fi
if [ -n "$strata_bin" ]; then
	# --check-config reads and validates, creates nothing and connects to
	# nothing.  The token is a dummy; configurations with a non-loopback
	# admin.listen require one.
	for conf in contrib/docker/strata.yaml contrib/compose/strata.yaml \
		contrib/systemd/strata.yaml "$tmp/k8s-strata.yaml"; do
		[ -f "$conf" ] || continue
		label=$conf
		[ "$conf" = "$tmp/k8s-strata.yaml" ] && label="contrib/kubernetes/configmap.yaml (strata.yaml)"
		check "strata --check-config: $label" \
			env STRATA_ADMIN_TOKEN=check-deploy-dummy-token "$strata_bin" -c "$conf" --check-config
	done
else
	skip "strata --check-config: no strata binary (build one, or set STRATA_BIN)"
fi

# --- this script --------------------------------------------------------

check "bash -n contrib/check-deploy.sh" bash -n contrib/check-deploy.sh
if want shellcheck shellcheck; then
	check "shellcheck contrib/check-deploy.sh" shellcheck contrib/check-deploy.sh
else
	skip "shellcheck: not installed and could not be (Debian package shellcheck)"
fi

# --- summary ------------------------------------------------------------

echo
if [ "${#skipped[@]}" -gt 0 ]; then
	echo "skipped (${#skipped[@]}):"
	printf '  - %s\n' "${skipped[@]}"
fi
if [ "$failed" -gt 0 ]; then
	echo "check-deploy: $failed check(s) FAILED"
	exit 1
fi
echo "check-deploy: all checks passed"
