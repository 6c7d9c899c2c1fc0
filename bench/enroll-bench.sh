#!/usr/bin/env bash
# enroll-bench.sh: `estctl enroll --config` of N devices (default 1,000)
# against a local `estctl server`, with --jobs 1, 8 and 32 in the same run:
# wall time, enrollments/s, the client's peak RSS and CPU time, the server's
# CPU time,
# with ratios against --jobs 1. Never run as a test.
#
#   bench/enroll-bench.sh [-n DEVICES] [-j "1 8 32"] [path/to/estctl]
set -euo pipefail

n=1000
jobs_list="1 8 32"
while getopts n:j: o; do
	case $o in
	n) n=$OPTARG ;;
	j) jobs_list=$OPTARG ;;
	*) echo "usage: $0 [-n DEVICES] [-j \"1 8 32\"] [estctl]" >&2; exit 64 ;;
	esac
done
shift $((OPTIND - 1))
top=$(cd "$(dirname "$0")/.." && pwd)
estctl=${1:-${ESTCTL:-$top/_build/estctl}}
[ -x "$estctl" ] || { echo "$0: $estctl: not built (see bench/README.md)" >&2; exit 66; }
for tool in jq /usr/bin/time; do
	command -v "$tool" >/dev/null || { echo "$0: needs $tool" >&2; exit 69; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/enroll-bench.XXXXXX")
server_pid=
cleanup() {
	if [ -n "$server_pid" ]; then
		kill -TERM "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$work"

"$estctl" server init st >/dev/null
"$estctl" server --dir st --listen 127.0.0.1:0 >server.out 2>server.log &
server_pid=$!
for _ in $(seq 1 200); do
	port=$(sed -n 's/^estctl server: serving .* on port \([0-9]*\)$/\1/p' server.log)
	[ -n "$port" ] && break
	sleep 0.05
done
[ -n "${port:-}" ] || { cat server.log >&2; exit 69; }

# config PREFIX: N devices PREFIX00001.. from the example's DeviceAlpha, sealed
# under the server's enrollment key, trusting its CA.
config() {
	jq --arg url "https://127.0.0.1:$port" --arg ca "$work/st/ca/cert.pem" \
		--arg key "$work/st/keys/fleet-key-1.key" --arg p "$1" --argjson n "$n" '
		.ESTDetails += { ESTAPIURL: $url, CACert: $ca, EnrollmentKeyFile: $key }
		| .Devices[0] as $t
		| .Devices = [range(1; $n + 1) | ($p + (. + 100000 | tostring | .[1:])) as $name
			| $t | .IoTDetails.ThingName = $name
			| .IoTDetails.Topics = { Connect: { Name1: ("client/" + $name) },
						 Publish: { Name1: ("topic/" + $name + "/telemetry") } }]' \
		"$top/examples/client_config.json"
}

# The server's user + system CPU time so far, in clock ticks.
server_ticks() {
	awk '{ print $14 + $15 }' "/proc/$server_pid/stat"
}
hz=$(getconf CLK_TCK)
load=$(cut -d' ' -f1-3 /proc/loadavg)

printf 'estctl enroll: %d devices per run against estctl server on 127.0.0.1 (%s, %d CPUs)\n' \
	"$n" "$(uname -m)" "$(nproc)"
declare -A wall rss cpu ccpu
for j in $jobs_list; do
	config "J$j-" >"cfg-$j.json"
	c0=$(server_ticks)
	t0=$(date +%s.%N)
	status=0
	/usr/bin/time -f '%M %U %S' -o "rss-$j" "$estctl" enroll --config "cfg-$j.json" --out "out-$j" \
		--jobs "$j" >/dev/null 2>"enroll-$j.err" || status=$?
	t1=$(date +%s.%N)
	c1=$(server_ticks)
	if [ "$status" -ne 0 ]; then
		echo "$0: --jobs $j: estctl enroll exited $status" >&2
		tail -3 "enroll-$j.err" >&2
		exit 1
	fi
	got=$(find "out-$j" -mindepth 2 -maxdepth 2 -name cert.pem | wc -l)
	[ "$got" -eq "$n" ] || { echo "$0: --jobs $j: $got certificates, expected $n" >&2; exit 1; }
	wall[$j]=$(echo "$t1 - $t0" | bc -l)
	read -r rss[$j] u s < <(tail -1 "rss-$j")
	ccpu[$j]=$(echo "$u + $s" | bc -l)
	cpu[$j]=$(echo "($c1 - $c0) / $hz" | bc -l)
done
registered=$("$estctl" server list st --json | jq '[.devices[] | select(.status == "active")] | length')

ref=${jobs_list%% *}
printf '\n%5s %7s %9s %8s %11s %8s %12s %9s %13s %9s\n' jobs "wall s" "enroll/s" "vs j$ref" \
	"client RSS" "vs j$ref" "client CPU s" "ms/enr" "server CPU s" "ms/enr"
for j in $jobs_list; do
	printf '%5s %7.2f %9.1f %7.2fx %7d KiB %7.2fx %12.2f %9.3f %13.2f %9.3f\n' "$j" \
		"${wall[$j]}" "$(echo "$n / ${wall[$j]}" | bc -l)" \
		"$(echo "${wall[$ref]} / ${wall[$j]}" | bc -l)" \
		"${rss[$j]}" "$(echo "${rss[$j]} / ${rss[$ref]}" | bc -l)" \
		"${ccpu[$j]}" "$(echo "${ccpu[$j]} * 1000 / $n" | bc -l)" \
		"${cpu[$j]}" "$(echo "${cpu[$j]} * 1000 / $n" | bc -l)"
done
printf '\n(vs j%s: against --jobs %s in this run: speed-up of the wall time, ratio of the\n' \
	"$ref" "$ref"
printf ' peak RSS; %d devices active in the registry; load average before: %s)\n' \
	"$registered" "$load"
