# Helpers for server.bats: a state directory, the real server on a free
# loopback port (port 0, read back from its log), CSRs made with openssl.
PROFILE_OID=2.25.335185497663826327032788806889900675368

# make_state [init options...]: a fresh state directory in $PWD/st.
make_state() {
	estctl server init st "$@" >/dev/null || fail "server init failed"
	CA=$PWD/st/ca/cert.pem
	KEYID=fleet-key-1
}

# edit_config JQ-FILTER: rewrite st/config.json.
edit_config() {
	jq "$1" st/config.json > st/config.json.new && mv st/config.json.new st/config.json
}

# start_server [options...]: run it, wait until it listens, set PORT and URL.
# ESTCTL_SERVER_WRAPPER (opt-in, split on spaces) runs the server under a
# tool, e.g. "valgrind --error-exitcode=99 --leak-check=full
# --errors-for-leak-kinds=definite" (see tests/README.md); what the tool
# finds shows as the server's exit status, which stop_server checks.
start_server() {
	local wrapper=() tries=600
	if [ -n "${ESTCTL_SERVER_WRAPPER:-}" ]; then
		read -r -a wrapper <<<"$ESTCTL_SERVER_WRAPPER"
		tries=3000
	fi
	# The log exists before the loop reads it: the background job's own
	# redirection may come later, and sed on a missing file fails the test.
	: >server.log
	"${wrapper[@]}" "$ESTCTL" server --dir st --listen 127.0.0.1:0 "$@" \
		>server.out 2>>server.log 3>&- &
	SERVER_PID=$!
	local i
	for i in $(seq 1 $tries); do
		PORT=$(sed -n 's/^estctl server: serving .* on port \([0-9]*\)$/\1/p' server.log)
		[ -n "$PORT" ] && break
		kill -0 "$SERVER_PID" 2>/dev/null || { cat server.log >&2; fail "server died"; }
		sleep 0.05
	done
	[ -n "$PORT" ] || fail "server did not start"
	URL=https://127.0.0.1:$PORT/.well-known/est
}

# reload_server [PATTERN]: SIGHUP, then wait (up to 30 s: the sanitizer build
# on a loaded machine is slow) for one more log line matching PATTERN
# ("reloaded" by default; "reload failed" for a config that must be refused).
reload_server() {
	local pattern=${1:-reloaded} n i
	n=$(grep -c -- "$pattern" server.log || true)
	kill -HUP "$SERVER_PID"
	for i in $(seq 1 600); do
		[ "$(grep -c -- "$pattern" server.log || true)" -gt "$n" ] && return 0
		sleep 0.05
	done
	fail "no '$pattern' in the log 30 s after SIGHUP"
}

# stop_server: SIGTERM, and fail unless the server exits 0 (a graceful stop;
# under the sanitizers or ESTCTL_SERVER_WRAPPER, also no error or leak).
stop_server() {
	[ -n "${SERVER_PID:-}" ] || return 0
	kill -TERM "$SERVER_PID" 2>/dev/null
	local rc=0
	wait "$SERVER_PID" || rc=$?
	SERVER_PID=
	if [ "$rc" -ne 0 ]; then
		grep -E '^==[0-9]+==|ERROR|Sanitizer|runtime error' server.log | head -100 >&2
		fail "server exited $rc on SIGTERM (log: $BATS_TEST_TMPDIR/server.log)"
	fi
}

# Every test that started the server checks how it stops.
teardown() {
	stop_server
}

# profile_der THING [ACTION RESOURCE]...: DeviceProfile DER as hex, built by
# openssl asn1parse -genconf (actions 0 connect 1 publish 2 receive 3 subscribe).
profile_der() {
	local thing=$1 n=0
	shift
	{
		echo "asn1=SEQUENCE:profile"
		echo "[profile]"
		echo "version=INTEGER:1"
		echo "thing=UTF8String:$thing"
		echo "perms=SEQUENCE:perms"
		echo "[perms]"
		local i=0
		for ((i = 1; i <= $# / 2; i++)); do echo "p$i=SEQUENCE:p$i"; done
		i=1
		while [ $# -ge 2 ]; do
			echo "[p$i]"
			echo "action=ENUMERATED:$1"
			echo "effect=ENUMERATED:0"
			echo "res=SEQUENCE:r$i"
			echo "[r$i]"
			echo "r=UTF8String:$2"
			shift 2
			i=$((i + 1))
		done
	} > profile.cnf
	openssl asn1parse -genconf profile.cnf -out profile.der -noout >/dev/null ||
		fail "asn1parse -genconf failed"
	od -An -tx1 profile.der | tr -d ' \n'
}

# csr KEYFILE THING [SUBJECT] [ACTION RESOURCE]...: a base64 CSR (openssl req)
# carrying the profile; the key is made when missing.
csr() {
	local key=$1 thing=$2 subj=${3:-/CN=$2}
	shift 3 2>/dev/null || shift $#
	[ -f "$key" ] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out "$key" 2>/dev/null
	local hex
	hex=$(profile_der "$thing" "$@")
	openssl req -new -key "$key" -subj "$subj" -addext "$PROFILE_OID=DER:$hex" \
		-outform DER -out req.der 2>/dev/null || fail "openssl req failed"
	base64 req.der
}

# post OP BODYFILE [curl options...]: POST as $CT (default application/pkcs10),
# headers in hdr, body in body; prints the status.
post() {
	local op=$1 body=$2
	shift 2
	curl -sS -o body -D hdr -w '%{http_code}' --cacert "$CA" \
		-H "Content-Type: ${CT:-application/pkcs10}" --data-binary @"$body" "$@" "$URL/$op"
}

SEALED='application/pkcs7-mime; smime-type=authEnveloped-data'

# header NAME: the value of NAME in hdr (no CR).
header() {
	sed -n "s/^$1: //Ip" hdr | tr -d '\r'
}

# certs_of FILE: the certificates of a certs-only reply as PEM.
certs_of() {
	base64 -d "$1" | openssl pkcs7 -inform DER -print_certs
}

add_user() {
	printf '%s\n' "$2" | estctl server passwd st "$1" 2>/dev/null || fail "passwd failed"
}
