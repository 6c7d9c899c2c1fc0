# Helpers for fleet.bats: one real `estctl server` for the whole file (state
# from `server init` in $BATS_FILE_TMPDIR, a free loopback port), and client
# configs derived from examples/client_config.json with jq.

# fleet_server_start: init the state (with a "manual" approval label whose
# Retry-After is 1 s), start the server, export ST, PORT, SERVER_PID.
fleet_server_start() {
	ST=$BATS_FILE_TMPDIR/st
	"$ESTCTL" server init "$ST" >/dev/null || return 1
	jq '.limits.retry_after = 1 |
	    .labels.manual = { "auth": ["sealed"], "approval": "manual" }' \
		"$ST/config.json" > "$ST/config.json.new" && mv "$ST/config.json.new" "$ST/config.json"
	# The log exists before the loop reads it (the child may not have opened it yet).
	: >"$BATS_FILE_TMPDIR/server.log"
	"$ESTCTL" server --dir "$ST" --listen 127.0.0.1:0 \
		>"$BATS_FILE_TMPDIR/server.out" 2>>"$BATS_FILE_TMPDIR/server.log" 3>&- &
	SERVER_PID=$!
	local i
	for i in $(seq 1 600); do
		PORT=$(sed -n 's/^estctl server: serving .* on port \([0-9]*\)$/\1/p' \
			"$BATS_FILE_TMPDIR/server.log")
		[ -n "$PORT" ] && break
		kill -0 "$SERVER_PID" 2>/dev/null || { cat "$BATS_FILE_TMPDIR/server.log" >&2; return 1; }
		sleep 0.05
	done
	[ -n "$PORT" ] || { echo "the server did not start" >&2; return 1; }
	export ST PORT SERVER_PID
}

# fleet_server_stop: SIGTERM; the server must stop cleanly (exit 0).
fleet_server_stop() {
	[ -n "${SERVER_PID:-}" ] || return 0
	kill -TERM "$SERVER_PID" || return 1
	local rc=0
	wait "$SERVER_PID" || rc=$?
	[ "$rc" -eq 0 ] || { echo "the server exited $rc" >&2; cat "$BATS_FILE_TMPDIR/server.log" >&2; }
	return "$rc"
}

# example_config OUT: examples/client_config.json pointed at our server, its
# CA and its enrollment key (so the CSRs go sealed).
example_config() {
	jq --arg url "https://127.0.0.1:$PORT" --arg ca "$ST/ca/cert.pem" \
		--arg key "$ST/keys/fleet-key-1.key" \
		'.ESTDetails += { ESTAPIURL: $url, CACert: $ca, EnrollmentKeyFile: $key }' \
		"$SRCDIR/examples/client_config.json" > "$1"
}

# fleet_config OUT PREFIX N: the example's DeviceAlpha as N devices named
# PREFIX1..PREFIXN (each test its own names: the registry is shared).
fleet_config() {
	local out=$1 prefix=$2 n=$3
	example_config "$out.base"
	jq --arg p "$prefix" --argjson n "$n" '
		.Devices[0] as $t
		| .Devices = [range(1; $n + 1) | tostring | ($p + .) as $name
			| $t | .IoTDetails.ThingName = $name
			| .IoTDetails.Topics = { Connect: { Name1: ("client/" + $name) },
						 Publish: { Name1: ("topic/" + $name + "/telemetry") } }]' \
		"$out.base" > "$out"
	rm -f "$out.base"
}

# assert_complete_tree DIR N: DIR shows exactly N device directories, each
# whole (key.pem 0600, cert.pem, chain.pem, ca.pem, no temporary file), and
# nothing else but hidden partial directories of enrollments in flight.
assert_complete_tree() {
	local dir=$1 n=$2 d f count=0
	for d in "$dir"/*; do
		[ -e "$d" ] || continue
		[ -d "$d" ] || fail "$d is not a device directory"
		for f in key.pem cert.pem chain.pem ca.pem; do
			[ -s "$d/$f" ] || fail "$d/$f is missing"
		done
		[ "$(stat -c %a "$d/key.pem")" = 600 ] || fail "$d/key.pem is not 0600"
		[ -z "$(find "$d" -name '*.??????' -o -name '.*' -o -name '*partial*' | grep -v "^$d\$")" ] ||
			fail "$d holds temporary files: $(ls -A "$d")"
		count=$((count + 1))
	done
	[ "$count" -eq "$n" ] || fail "$count device directories in $dir, expected $n"
	for d in "$dir"/.*; do
		[ -e "$d" ] || continue
		case ${d##*/} in
		. | ..) ;;
		.*.partial) ;;
		*) fail "$d is left in $dir" ;;
		esac
	done
}

# assert_stderr_has TEXT: one line of the last run's stderr holds TEXT.
assert_stderr_has() {
	[[ "$stderr" == *"$1"* ]] || fail "stderr lacks: $1
stderr: $stderr"
}
