#!/usr/bin/env bash
# estctl server under load, against the in-process issuance rate measured in
# the same run (bench/issue_rate, one core): enrollments/s with CLIENTS
# keep-alive clients and with a new TLS handshake per request, p50/p99
# latency, server RSS after warm-up and after the run, and a check that every
# enrollment is in the registry and the audit chain verifies.
#   bench/server-bench.sh [-b BUILD_DIR] [-n REQUESTS] [-c CLIENTS] [-H HANDSHAKE_REQUESTS]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/_build n=10000 clients=8 hs=2000
while getopts b:n:c:H: o; do
	case $o in
	b) build=$(cd "$OPTARG" && pwd) ;;
	n) n=$OPTARG ;;
	c) clients=$OPTARG ;;
	H) hs=$OPTARG ;;
	*) echo "usage: $0 [-b BUILD_DIR] [-n REQUESTS] [-c CLIENTS] [-H HANDSHAKE_REQUESTS]" >&2; exit 64 ;;
	esac
done
make -s -C "$build" estctl bench/estload bench/issue_rate >/dev/null
E=$build/estctl
work=$(mktemp -d "${TMPDIR:-/tmp}/estctl-bench.XXXXXX")
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

"$E" server init "$work/st" >/dev/null
"$E" server --dir "$work/st" --listen 127.0.0.1:0 2>"$work/server.log" &
pid=$!
for _ in $(seq 1 200); do
	port=$(sed -n 's/^estctl server: serving .* on port \([0-9]*\)$/\1/p' "$work/server.log")
	[ -n "$port" ] && break
	sleep 0.05
done
url=https://127.0.0.1:$port/.well-known/est
load() {        # CLIENTS REQUESTS MODE PREFIX
	"$build/bench/estload" "$url" "$work/st/ca/cert.pem" "$work/st/keys/fleet-key-1.key" \
		fleet-key-1 "$1" "$2" "$3" "$4"
}
rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }     # utime + stime
field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }

# The reference runs before and after the load, and the ratios use their
# mean: on a shared machine the load of other processes changes during a run.
echo "reference: in-process issuance, one thread, 3 s (before)" >&2
ref0=$("$build/bench/issue_rate" 3 1)
echo "warm-up: 1000 enrollments" >&2
load "$clients" 1000 keepalive warm >/dev/null
rss0=$(rss)
echo "keep-alive: $n enrollments, $clients clients" >&2
t0=$(cpu_ticks)
ka=$(load "$clients" "$n" keepalive ka)
t1=$(cpu_ticks)
rss1=$(rss)
echo "new handshake per request: $hs enrollments, $clients clients" >&2
hsj=$(load "$clients" "$hs" handshake hs)
t2=$(cpu_ticks)
rss2=$(rss)
echo "reference: in-process issuance, one thread, 3 s (after)" >&2
ref1=$("$build/bench/issue_rate" 3 1)
kill -TERM "$pid"; wait "$pid"; pid=

devices=$("$E" server list "$work/st" --json | jq '.devices | length')
issued=$(grep -c '"event":"certificate_issued"' "$work/st/audit.log")
"$E" verify --audit "$work/st/audit.log" >/dev/null
per_second() { sed -n 's/.*"per_second": *\([0-9.]*\).*/\1/p'; }
ref0rate=$(per_second <<<"$ref0")
ref1rate=$(per_second <<<"$ref1")
refrate=$(( (ref0rate + ref1rate) / 2 ))
karate=$(field rate <<<"$ka")
hsrate=$(field rate <<<"$hsj")
printf 'reference (in-process, 1 core), before: %s\n' "$ref0"
printf 'reference (in-process, 1 core), after:  %s\n' "$ref1"
printf 'reference mean: %s/s\n' "$refrate"
printf 'keep-alive:  %s\n' "$ka"
printf 'handshake:   %s\n' "$hsj"
printf 'ratio keep-alive / reference: %s\n' "$(echo "scale=2; $karate / $refrate" | bc)"
printf 'ratio handshake / reference:  %s\n' "$(echo "scale=2; $hsrate / $refrate" | bc)"
printf 'server RSS KiB: after warm-up %s, after %s keep-alive %s, after handshakes %s\n' \
	"$rss0" "$n" "$rss1" "$rss2"
# Server CPU per keep-alive enrollment against one in-process issuance,
# and how many enrollments shared each commit (the audit lines' batch).
hz=$(getconf CLK_TCK)
cpu_us=$(( (t1 - t0) * 1000000 / hz / n ))
batches=$(sed -n 's/.*"event":"certificate_issued","thing":"ka-.*"batch":\([0-9]*\).*/\1/p' \
	"$work/st/audit.log" | sort -u | wc -l)
printf 'server CPU per keep-alive enrollment: %s us = %s x one in-process issuance (%s us)\n' \
	"$cpu_us" "$(echo "scale=2; $cpu_us * $refrate / 1000000" | bc)" "$((1000000 / refrate))"
hs_us=$(( (t2 - t1) * 1000000 / hz / hs ))
printf 'server CPU per enrollment with its own handshake: %s us (%s us more than keep-alive)\n' \
	"$hs_us" "$((hs_us - cpu_us))"
[ "$batches" -gt 0 ] &&
	printf 'keep-alive enrollments per commit batch: %s\n' "$(echo "scale=2; $n / $batches" | bc)"
printf 'registry devices %s, audit certificate_issued %s (expected %s), audit chain valid\n' \
	"$devices" "$issued" "$((1000 + n + hs))"
