#!/usr/bin/env bats
# estctl rotate end to end against the real estctl server on loopback:
# devices enrolled with sealed CSRs by enroll --config, renewed over mutual TLS.

load helper
load server_helper
load rotate_helper

# A server whose device certificates live 2 days, and two devices enrolled from
# a config (sealed under the state's enrollment key) into devs/.
enrolled_fleet() {
	make_state --validity 2d
	start_server
	cat >fleet.json <<-EOF
	{ "ESTDetails": { "ESTAPIURL": "$URL", "KV_Name": "$KEYID",
	    "EnrollmentKeyFile": "st/keys/$KEYID.key", "CACert": "st/ca/cert.pem" },
	  "Devices": [
	    { "IoTDetails": { "ThingName": "DeviceAlpha", "Policies": { "Connect": true, "Publish": true },
	        "Topics": { "Connect": { "N": "client/DeviceAlpha" },
	                    "Publish": { "N": "topic/DeviceAlpha/telemetry" } } } },
	    { "IoTDetails": { "ThingName": "DeviceBeta", "Policies": { "Connect": true },
	        "Topics": { "Connect": { "N": "client/DeviceBeta" } } } } ] }
	EOF
	estctl enroll --config fleet.json --out devs 2>/dev/null || fail "enroll failed"
}

# The serial the registry holds for THING.
registry_serial() {
	estctl server list st | awk -v t="$1" '$1 == t { print $3 }'
}

@test "a fresh device is not due; --force renews it with a new key the registry then holds" {
	enrolled_fleet
	run -0 --separate-stderr estctl rotate devs/DeviceAlpha
	assert_output --partial "not due: devs/DeviceAlpha renews after "
	cp devs/DeviceAlpha/cert.pem old.pem
	run -0 --separate-stderr estctl rotate --force --json devs/DeviceAlpha
	jq -e '.action == "renewed" and .thing == "DeviceAlpha"' <<<"$output"
	serial=$(jq -r .serial <<<"$output")
	assert_equal "$(registry_serial DeviceAlpha)" "$serial"
	[ "$(pubkey_of devs/DeviceAlpha/cert.pem)" != "$(pubkey_of old.pem)" ] || fail "same key"
	assert_equal "$(pubkey_of devs/DeviceAlpha/cert.pem)" "$(pubkey_of devs/DeviceAlpha/key.pem)"
	openssl verify -CAfile st/ca/cert.pem devs/DeviceAlpha/cert.pem
	cmp devs/DeviceAlpha/cert.pem.prev old.pem
	assert_equal "$(file_mode devs/DeviceAlpha/key.pem.prev)" 600
	run -0 estctl verify devs/DeviceAlpha/cert.pem --cacert devs/DeviceAlpha/ca.pem \
		--key devs/DeviceAlpha/key.pem
}

@test "the superseded pair cannot renew again (77) and its directory is left alone" {
	enrolled_fleet
	cp -a devs/DeviceBeta old
	run -0 estctl rotate --force devs/DeviceBeta
	before=$(dir_sum old)
	run -77 --separate-stderr estctl rotate --force old
	[[ "$stderr" == *"superseded"* ]] || fail "$stderr"
	assert_equal "$(dir_sum old)" "$before"
}

@test "--all --before 3d renews every 2-day certificate; --keep-key keeps the keys" {
	enrolled_fleet
	run -0 --separate-stderr estctl rotate --all devs
	assert_equal "$stderr" "estctl rotate: 0 renewed, 2 not due, 0 failed"
	a=$(pubkey_of devs/DeviceAlpha/key.pem)
	run -0 --separate-stderr estctl rotate --all devs --before 3d --keep-key --jobs 2
	assert_equal "$stderr" "estctl rotate: 2 renewed, 0 not due, 0 failed"
	assert_equal "$(pubkey_of devs/DeviceAlpha/cert.pem)" "$a"
	for d in DeviceAlpha DeviceBeta; do
		assert_equal "$(registry_serial $d)" \
			"$(openssl x509 -in devs/$d/cert.pem -noout -serial | cut -d= -f2 | tr A-F a-f)"
	done
}

@test "a revoked device is refused (77) with the server's reason" {
	enrolled_fleet
	run -0 estctl server revoke st DeviceAlpha
	before=$(dir_sum devs/DeviceAlpha)
	run -77 --separate-stderr estctl rotate --force devs/DeviceAlpha
	[[ "$stderr" == *"revoked"* ]] || fail "$stderr"
	assert_equal "$(dir_sum devs/DeviceAlpha)" "$before"
}

@test "a stopped server is 69 and the pair stays; --watch renews once started, exits 0 on SIGTERM" {
	enrolled_fleet
	stop_server
	before=$(dir_sum devs/DeviceAlpha)
	run -69 --separate-stderr estctl rotate --force devs/DeviceAlpha
	assert_equal "$(dir_sum devs/DeviceAlpha)" "$before"
	start_server
	sed -i "s|https://127.0.0.1:[0-9]*|https://127.0.0.1:$PORT|" devs/DeviceAlpha/est.json
	"$ESTCTL" rotate --watch --before 3d devs/DeviceAlpha >watch.out 2>watch.err 3>&- &
	pid=$!
	for i in $(seq 1 300); do grep -q '^renewed' watch.out && break; sleep 0.1; done
	kill -TERM "$pid"
	wait "$pid" || fail "exit $?: $(cat watch.err)"
	grep -q '^renewed devs/DeviceAlpha: serial' watch.out || fail "$(cat watch.out watch.err)"
}
