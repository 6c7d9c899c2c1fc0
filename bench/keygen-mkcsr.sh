#!/usr/bin/env bash
# bench/keygen-mkcsr.sh: wall time per run and peak RSS of `estctl keygen` and
# `estctl mkcsr` against openssl and certtool doing the same job, measured in
# the same run; ratios are against openssl. A benchmark, not a test: it never
# fails on slowness. See bench/README.md.
#
# usage: bench/keygen-mkcsr.sh [-n RUNS] [-r RSA_RUNS] [ESTCTL]
set -euo pipefail

runs=40 rsa_runs=10
while getopts n:r: o; do
	case $o in
	n) runs=$OPTARG ;;
	r) rsa_runs=$OPTARG ;;
	*) echo "usage: $0 [-n RUNS] [-r RSA_RUNS] [ESTCTL]" >&2; exit 64 ;;
	esac
done
shift $((OPTIND - 1))
here=$(cd "$(dirname "$0")" && pwd)
estctl=${1:-${ESTCTL:-$here/../_build/estctl}}
[ -x "$estctl" ] || { echo "$0: $estctl: not built (make -C _build)" >&2; exit 66; }
[ -x /usr/bin/time ] || { echo "$0: /usr/bin/time missing (apt-get install time)" >&2; exit 69; }
config=$here/../examples/client_config.json

work=$(mktemp -d "${TMPDIR:-/tmp}/estctl-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

# measure N CMD...: sets ms (mean wall time per run, milliseconds) and
# rss (peak resident set, KiB: the largest of 3 runs under /usr/bin/time).
measure() {
	local n=$1 i t0 t1 r
	shift
	"$@" >/dev/null 2>&1 || { echo "$0: failed: $*" >&2; return 1; }
	t0=$(date +%s.%N)
	for ((i = 0; i < n; i++)); do
		"$@" >/dev/null 2>&1
	done
	t1=$(date +%s.%N)
	ms=$(awk -v a="$t0" -v b="$t1" -v n="$n" 'BEGIN { printf "%.2f", (b - a) * 1000 / n }')
	rss=0
	for i in 1 2 3; do
		/usr/bin/time -o time.out -f %M "$@" >/dev/null 2>&1
		r=$(tail -1 time.out)
		((r > rss)) && rss=$r
	done
	return 0
}

# row LABEL N CMD...: measure and print one line; the openssl row of a group
# must come first, as it sets the reference of the ratios.
row() {
	local label=$1 n=$2
	shift 2
	measure "$n" "$@" || { printf '  %-34s %s\n' "$label" "(failed, skipped)"; return 0; }
	if [[ $label == openssl* ]]; then
		ref_ms=$ms ref_rss=$rss
	fi
	printf '  %-34s %9s %8s %9s %8s\n' "$label" "$ms" \
		"$(awk -v a="$ms" -v b="$ref_ms" 'BEGIN { printf "%.2fx", a / b }')" "$rss" \
		"$(awk -v a="$rss" -v b="$ref_rss" 'BEGIN { printf "%.2fx", a / b }')"
}

header() {
	printf '\n%s\n' "$1"
	printf '  %-34s %9s %8s %9s %8s\n' "command" "ms/run" "vs ossl" "RSS KiB" "vs ossl"
}


keygen_group() {
	local type=$1 ossl=() gtls=() n=$runs
	case $type in
	ec-p256) ossl=(-algorithm EC -pkeyopt ec_paramgen_curve:P-256)
		 gtls=(--key-type ecdsa --curve secp256r1) ;;
	ed25519) ossl=(-algorithm ED25519) gtls=(--key-type ed25519) ;;
	rsa2048) ossl=(-algorithm RSA -pkeyopt rsa_keygen_bits:2048)
		 gtls=(--key-type rsa --bits 2048) n=$rsa_runs ;;
	esac
	header "keygen $type ($n runs each)"
	row "openssl genpkey" "$n" openssl genpkey "${ossl[@]}"
	row "certtool --generate-privkey" "$n" certtool --generate-privkey --no-text "${gtls[@]}"
	row "estctl keygen (stdout)" "$n" "$estctl" keygen -t "$type"
	row "estctl keygen -o FILE --force" "$n" "$estctl" keygen -t "$type" -o k.pem --force
}

mkcsr_group() {
	local type=$1 st=0
	"$estctl" keygen -t "$type" -o "csr-$type.key" --force
	"$estctl" mkcsr --key "csr-$type.key" --config "$config" --device DeviceAlpha \
		>/dev/null 2>mkcsr.err || st=$?
	if [ "$st" -eq 70 ]; then
		printf '\nmkcsr: skipped, estctl mkcsr is not in this build (exit 70)\n'
		return 70
	elif [ "$st" -ne 0 ]; then
		printf '\nmkcsr %s: skipped, estctl mkcsr failed (exit %s): %s\n' "$type" "$st" \
			"$(head -1 mkcsr.err)"
		return 0
	fi
	printf 'cn = DeviceAlpha\n' > csr.tmpl
	header "mkcsr $type key ($runs runs each)"
	row "openssl req -new" "$runs" openssl req -new -key "csr-$type.key" -subj /CN=DeviceAlpha
	row "certtool --generate-request" "$runs" certtool --generate-request --no-text \
		--load-privkey "csr-$type.key" --template csr.tmpl
	row "estctl mkcsr" "$runs" "$estctl" mkcsr --key "csr-$type.key" --config "$config" \
		--device DeviceAlpha
}

printf '%s; %s; %s\n' "$("$estctl" --version)" "$(openssl version | cut -d' ' -f1-2)" \
	"$(certtool --version | head -1)"
printf '%s, %s CPUs, load %s\n' "$(uname -m)" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
for t in ec-p256 ed25519 rsa2048; do
	keygen_group "$t"
done
for t in ec-p256 ed25519 rsa2048; do
	mkcsr_group "$t" || break
done
printf '\nms/run: mean wall time of one process, start to exit; RSS: peak of 3 runs.\n'
