# Helpers for the EST client suites: start and stop tests/interop/est_responder.py
# (an RFC 7030 responder that is not estctl) on free loopback ports.

# responder_start NAME PKIDIR [responder options...]: start one in the
# background; sets <NAME>_URL (exported) once it listens.
responder_start() {
	local name=$1 pki=$2 run="$BATS_FILE_TMPDIR/responder-$1" i
	shift 2
	mkdir -p "$run"
	python3 "$SRCDIR/tests/interop/est_responder.py" --dir "$pki" "$@" \
		>"$run/port" 2>"$run/log" &
	echo $! >"$run/pid"
	for i in $(seq 1 300); do
		[ -s "$run/port" ] && break
		kill -0 "$(cat "$run/pid")" 2>/dev/null || { cat "$run/log" >&2; return 1; }
		sleep 0.1
	done
	[ -s "$run/port" ] || { echo "responder $name did not start" >&2; return 1; }
	export "${name}_URL=https://127.0.0.1:$(head -1 "$run/port")"
}

# responder_stop NAME: stop the responder started as NAME.
responder_stop() {
	local pidf="$BATS_FILE_TMPDIR/responder-$1/pid"
	[ -f "$pidf" ] || return 0
	kill "$(cat "$pidf")" 2>/dev/null || true
	rm -f "$pidf"
}

# A loopback port nothing listens on (bound, then released).
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# new_csr NAME [FORMAT]: key NAME.key and CSR NAME.csr (PEM, or DER) made by openssl.
new_csr() {
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" \
		-subj "/CN=$1" -outform "${2:-PEM}" -out "$1.csr" 2>/dev/null
}

# The SHA-256 fingerprint of a PEM certificate, as openssl prints it (AB:CD:...).
fingerprint() {
	openssl x509 -in "$1" -noout -fingerprint -sha256 | cut -d= -f2
}
