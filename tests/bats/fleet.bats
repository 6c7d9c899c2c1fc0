#!/usr/bin/env bats
# End to end: `estctl enroll --config` against a real `estctl server` on
# loopback, one server for the whole file (state made by `server init`).
load helper
load fleet_helper

setup_file() {
	fleet_server_start
}

teardown_file() {
	fleet_server_stop
}

@test "the example config enrolls both devices with sealed CSRs that estctl and openssl verify" {
	example_config cfg.json
	run -0 --separate-stderr estctl enroll --config cfg.json --out out
	assert_output ""
	assert_equal "$stderr" "estctl enroll: 2 enrolled, 0 already enrolled, 0 failed"
	for d in DeviceAlpha DeviceBeta; do
		run -0 estctl verify "out/$d/cert.pem" --key "out/$d/key.pem" --cacert "out/$d/ca.pem"
		run -0 openssl verify -CAfile "out/$d/ca.pem" "out/$d/cert.pem"
		assert_output "out/$d/cert.pem: OK"
		cmp "out/$d/ca.pem" "$ST/ca/cert.pem"
		run -0 openssl x509 -in "out/$d/cert.pem" -noout -subject -nameopt RFC2253
		assert_output "subject=CN=$d"
		# The key is the device's: the certificate's public key is key.pem's.
		assert_equal "$(openssl x509 -in "out/$d/cert.pem" -noout -pubkey)" \
			"$(openssl pkey -in "out/$d/key.pem" -pubout)"
		# The server took the sealed CSR: its audit log names the enrollment key.
		run -0 jq -r --arg t "$d" 'select(.event == "certificate_issued" and .thing == $t) | .auth' \
			"$ST/audit.log"
		assert_output "sealed:fleet-key-1"
	done
	run -0 estctl verify --audit "$ST/audit.log"
}

@test "device directories hold key.pem 0600 and public files, with nothing partial left" {
	fleet_config cfg.json Modes 2
	run -0 --separate-stderr estctl enroll --config cfg.json --out out
	for d in Modes1 Modes2; do
		assert_equal "$(file_mode "out/$d")" 700
		assert_equal "$(file_mode "out/$d/key.pem")" 600
		for f in cert.pem chain.pem ca.pem; do
			assert_equal "$(file_mode "out/$d/$f")" 644
		done
		run -0 openssl pkey -in "out/$d/key.pem" -noout
	done
	assert_complete_tree out 2
}

@test "a rerun skips every enrolled device and changes nothing" {
	fleet_config cfg.json Rerun 3
	run -0 --separate-stderr estctl enroll --config cfg.json --out out
	sums=$(sha256sum out/*/*)
	run -0 --separate-stderr estctl enroll --config cfg.json --out out --json
	assert_equal "$stderr" "estctl enroll: 0 enrolled, 3 already enrolled, 0 failed"
	assert_equal "$(printf '%s\n' "$output" | jq -r '.result' | sort -u)" skipped
	assert_equal "$(printf '%s\n' "$output" | wc -l)" 3
	assert_equal "$(sha256sum out/*/*)" "$sums"
	assert_equal "$(jq -r '[.devices[] | select(.thing | startswith("Rerun"))] | length' \
		<(estctl server list "$ST" --json))" 3
}

@test "operator commands beside the running server leave its registry live (WAL kept, new devices seen)" {
	fleet_config cfg.json Live 2
	run -0 --separate-stderr estctl enroll --config cfg.json --out out --device Live1
	run -0 estctl server list "$ST"
	assert_line --partial "Live1 "
	# SQLite deletes the WAL when it believes it is the last connection: the
	# server's must still be there after list closed its own.
	[ -f "$ST/registry.db-wal" ] || fail "the server's WAL was deleted by server list"
	run -0 --separate-stderr estctl enroll --config cfg.json --out out --device Live2
	run -0 estctl server show "$ST" Live2
	run -0 estctl server list "$ST"
	assert_line --partial "Live2 "
}

@test "--json gives one object per device with its result and directory" {
	fleet_config cfg.json Json 2
	run -0 --separate-stderr estctl enroll --config cfg.json --out out --json
	assert_equal "$(printf '%s\n' "$output" | jq -c .)" \
		'{"device":"Json1","result":"enrolled","dir":"out/Json1"}
{"device":"Json2","result":"enrolled","dir":"out/Json2"}'
	assert_equal "$stderr" "estctl enroll: 2 enrolled, 0 already enrolled, 0 failed"
}

@test "--force over a registered device is refused (77) until the server's operator resets it" {
	fleet_config cfg.json Force 2
	run -0 --separate-stderr estctl enroll --config cfg.json --out out
	old_cert=$(cat out/Force1/cert.pem)
	old_key=$(cat out/Force1/key.pem)
	# The server refuses a new key for a registered thing (DESIGN.md 4.2): only
	# its current certificate (rotate, simplereenroll) or an operator can.
	run -77 --separate-stderr estctl enroll --config cfg.json --out out --force --device Force1
	assert_output ""
	assert_stderr_has "estctl enroll: Force1: simpleenroll: refused by the server (403): thing 'Force1' is already registered"
	assert_stderr_has "estctl rotate out/Force1 --force; or the server's operator resets it"
	assert_stderr_has "estctl enroll: 0 enrolled, 0 already enrolled, 1 failed"
	assert_equal "$(cat out/Force1/cert.pem)" "$old_cert"
	assert_equal "$(cat out/Force1/key.pem)" "$old_key"
	assert_complete_tree out 2
	# The operator resets the thing; then --force enrolls a new key over it.
	run -0 estctl server reset "$ST" Force1
	run -0 --separate-stderr estctl enroll --config cfg.json --out out --force --device Force1
	assert_equal "$stderr" "estctl enroll: 1 enrolled, 0 already enrolled, 0 failed"
	[ "$(cat out/Force1/key.pem)" != "$old_key" ] || fail "the key was not renewed"
	[ "$(cat out/Force1/cert.pem)" != "$old_cert" ] || fail "the certificate was not renewed"
	assert_equal "$(file_mode out/Force1/key.pem)" 600
	run -0 openssl verify -CAfile "$ST/ca/cert.pem" out/Force1/cert.pem
	run -0 estctl verify out/Force1/cert.pem --key out/Force1/key.pem --cacert "$ST/ca/cert.pem"
	assert_complete_tree out 2
	# The registry holds the new certificate; the old one was revoked.
	serial=$(openssl x509 -in out/Force1/cert.pem -noout -serial | cut -d= -f2 | tr A-F a-f)
	assert_equal "$(estctl server list "$ST" --json |
		jq -r '.devices[] | select(.thing == "Force1") | .certificate.serial')" "$serial"
}

@test "one device asking for a wildcard topic fails with the server's reason; the others enroll (77)" {
	fleet_config cfg.json Mixed 3
	jq '.Devices[1].IoTDetails.Topics.Publish.Name1 = "topic/#"' cfg.json > bad.json
	run -77 --separate-stderr estctl enroll --config bad.json --out out --json
	json=$output
	assert_stderr_has "estctl enroll: 2 enrolled, 0 already enrolled, 1 failed"
	run -0 jq -r '"\(.device) \(.result) \(.error // "-")"' <<<"$json"
	assert_output "Mixed1 enrolled -
Mixed2 failed refused
Mixed3 enrolled -"
	run -0 jq -r 'select(.device == "Mixed2") | .reason' <<<"$json"
	assert_output --partial "simpleenroll: refused by the server (403): "
	assert_output --partial "topic/#"
	[ ! -e out/Mixed2 ] || fail "a refused device got a directory"
	assert_complete_tree out 2
	assert_equal "$(estctl server list "$ST" --json |
		jq -r '[.devices[].thing | select(startswith("Mixed"))] | sort | join(" ")')" "Mixed1 Mixed3"
}

# assert_one_issuance_each PREFIX N: every PREFIX<i> device directory holds a key
# and the certificate for it, and the registry issued exactly one certificate
# per device, the active one, which is the one in the directory.
assert_one_issuance_each() {
	local prefix=$1 n=$2 d serial
	for d in out/"$prefix"*; do
		openssl verify -CAfile "$ST/ca/cert.pem" "$d/cert.pem" >/dev/null || fail "$d does not verify"
		[ "$(openssl x509 -in "$d/cert.pem" -noout -pubkey)" = "$(openssl pkey -in "$d/key.pem" -pubout)" ] ||
			fail "$d: the certificate is not for key.pem"
		serial=$(openssl x509 -in "$d/cert.pem" -noout -serial | cut -d= -f2 | tr A-F a-f)
		assert_equal "$(sqlite3 "$ST/registry.db" "SELECT status FROM certificates
			WHERE thing_name = '${d##*/}'")" "active"
		assert_equal "$(sqlite3 "$ST/registry.db" "SELECT serial_hex FROM certificates
			WHERE thing_name = '${d##*/}'")" "$serial"
	done
	assert_equal "$(sqlite3 "$ST/registry.db" "SELECT count(*) || ' ' || count(DISTINCT thing_name)
		FROM certificates WHERE thing_name LIKE '$prefix%'")" "$n $n"
	assert_equal "$(jq -r --arg p "$prefix" 'select(.event == "certificate_issued" and
		(.thing | startswith($p))) | .thing' "$ST/audit.log" | sort -u | wc -l)" "$n"
}

@test "enroll killed part way leaves only complete devices, and the rerun completes every one without an operator" {
	fleet_config cfg.json Kill 40
	"$ESTCTL" enroll --config cfg.json --out out --jobs 1 >enroll.out 2>enroll.err 3>&- &
	pid=$!
	for _ in $(seq 1 1000); do
		[ "$(find out -mindepth 1 -maxdepth 1 -name 'Kill*' 2>/dev/null | wc -l)" -ge 3 ] && break
		sleep 0.01
	done
	kill -9 "$pid" || fail "enroll had already finished: nothing was interrupted"
	wait "$pid" && fail "enroll was not killed" || true
	n=$(find out -mindepth 1 -maxdepth 1 -name 'Kill*' | wc -l)
	[ "$n" -ge 3 ] && [ "$n" -lt 40 ] || fail "$n devices before the kill"
	# Only whole device directories are visible; at most the hidden partial
	# directory of the request in flight remains, its key 0600.
	assert_complete_tree out "$n"
	for p in out/.Kill*.partial; do
		[ -e "$p" ] || continue
		[ ! -e "$p/key.pem" ] || assert_equal "$(file_mode "$p/key.pem")" 600
	done
	# A request the server answered but the client died before keeping: the
	# thing is registered with the key left in the partial directory.
	# The server may still be finishing the request of the killed client: read
	# the registry until two reads half a second apart agree.
	local things prev=x
	for _ in $(seq 1 40); do
		things=$(estctl server list "$ST" --json | jq -r '.devices[].thing | select(startswith("Kill"))')
		[ "$things" = "$prev" ] && break
		prev=$things
		sleep 0.5
	done
	[ "$things" = "$prev" ] || fail "the registry kept changing after the kill"
	lost=$(while read -r t; do [ -z "$t" ] || [ -d "out/$t" ] || echo "$t"; done <<<"$things")
	[ "$(printf '%s' "$lost" | grep -c .)" -le 1 ] || fail "more than one lost device: $lost"
	[ -z "$lost" ] || [ -f "out/.$lost.partial/key.pem" ] || fail "the key of $lost is gone"
	run -0 --separate-stderr estctl enroll --config cfg.json --out out --jobs 4
	assert_equal "$stderr" "estctl enroll: $((40 - n)) enrolled, $n already enrolled, 0 failed"
	assert_complete_tree out 40
	[ -z "$(find out -mindepth 1 -maxdepth 1 -name '.*')" ] || fail "partial left: $(ls -A out)"
	assert_one_issuance_each Kill 40
	# The lost device got its certificate again, nothing new.
	assert_equal "$(jq -r 'select(.event == "certificate_returned_again" and
		(.thing | startswith("Kill"))) | .thing' "$ST/audit.log")" "$lost"
	run -0 estctl verify --audit "$ST/audit.log"
}

@test "a device whose reply was lost gets the same certificate for the key kept in its partial directory" {
	fleet_config cfg.json Lost 2
	run -0 --separate-stderr estctl enroll --config cfg.json --out out
	serial=$(openssl x509 -in out/Lost1/cert.pem -noout -serial | cut -d= -f2 | tr A-F a-f)
	cp out/Lost1/cert.pem issued.pem
	# What a run killed after the server answered leaves: the key, hidden.
	mkdir -m 700 out/.Lost1.partial
	mv out/Lost1/key.pem out/.Lost1.partial/key.pem
	echo torn > out/.Lost1.partial/cert.pem
	rm -r out/Lost1
	run -0 --separate-stderr estctl enroll --config cfg.json --out out --json
	assert_equal "$stderr" "estctl enroll: 1 enrolled, 1 already enrolled, 0 failed"
	assert_equal "$(jq -r 'select(.device == "Lost1") | .result' <<<"$output")" enrolled
	cmp issued.pem out/Lost1/cert.pem
	assert_complete_tree out 2
	[ ! -e out/.Lost1.partial ] || fail "the partial directory is left"
	assert_one_issuance_each Lost 2
	run -0 jq -r 'select(.thing == "Lost1") | "\(.event) \(.serial) \(.auth)"' "$ST/audit.log"
	assert_output "device_registered $serial sealed:fleet-key-1
certificate_issued $serial sealed:fleet-key-1
certificate_returned_again $serial sealed:fleet-key-1"
}

@test "a kept key whose profile changed since is refused (77) with what to do, and kept" {
	fleet_config cfg.json Changed 1
	run -0 --separate-stderr estctl enroll --config cfg.json --out out
	mkdir -m 700 out/.Changed1.partial
	mv out/Changed1/key.pem out/.Changed1.partial/key.pem
	rm -r out/Changed1
	key=$(cat out/.Changed1.partial/key.pem)
	jq '.Devices[0].IoTDetails.Policies.Subscribe = true |
	    .Devices[0].IoTDetails.Topics.Subscribe = { Name1: "topic/Changed1/cmd" }' cfg.json > changed.json
	run -77 --separate-stderr estctl enroll --config changed.json --out out
	assert_stderr_has "estctl enroll: Changed1: simpleenroll: refused by the server (403): thing 'Changed1' is already registered"
	assert_stderr_has "(the request reused the key an interrupted run left in out/.Changed1.partial"
	assert_stderr_has "remove out/.Changed1.partial to start over with a new key)"
	assert_equal "$(cat out/.Changed1.partial/key.pem)" "$key"
	assert_equal "$(ls -A out/.Changed1.partial)" key.pem
	[ ! -e out/Changed1 ] || fail "a refused device got a directory"
	# With the profile it was registered with, the kept key completes it.
	run -0 --separate-stderr estctl enroll --config cfg.json --out out
	assert_equal "$(openssl pkey -in out/Changed1/key.pem -pubout)" \
		"$(printf '%s\n' "$key" | openssl pkey -pubout)"
	assert_one_issuance_each Changed 1
}

@test "a server whose TLS certificate does not chain to the config's CACert is refused (76), nothing written" {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other.key \
		-subj /CN=other-ca -days 1 -out other-ca.pem 2>/dev/null
	fleet_config cfg.json WrongCa 1
	jq --arg ca "$PWD/other-ca.pem" '.ESTDetails.CACert = $ca' cfg.json > wrong.json
	run -76 --separate-stderr estctl enroll --config wrong.json --out out
	assert_output ""
	assert_one_line_error
	[ -z "$(ls -A out 2>/dev/null)" ] || fail "files were written: $(ls -A out)"
	run -0 estctl server list "$ST" --json
	[[ "$output" != *WrongCa1* ]] || fail "the device reached the server"
}

@test "without a CACert, --pin of the CA's fingerprint bootstraps trust; a wrong pin is refused (76)" {
	fleet_config cfg.json Pin 2
	jq 'del(.ESTDetails.CACert)' cfg.json > nopin.json
	# The system store does not know the server's private CA.
	run -76 --separate-stderr estctl enroll --config nopin.json --out out
	assert_one_line_error
	[ -z "$(ls -A out 2>/dev/null)" ] || fail "files were written without trust"
	fp=$(openssl x509 -in "$ST/ca/cert.pem" -noout -fingerprint -sha256 | cut -d= -f2)
	if [ "${fp:0:1}" = 0 ]; then wrong=1${fp:1}; else wrong=0${fp:1}; fi
	run -76 --separate-stderr estctl enroll --config nopin.json --out out --pin "SHA256:$wrong"
	assert_one_line_error
	assert_stderr_has "no CA certificate matches the pin"
	[ -z "$(ls -A out 2>/dev/null)" ] || fail "files were written under a wrong pin"
	lower=$(printf '%s' "$fp" | tr A-F a-f)
	run -0 --separate-stderr estctl enroll --config nopin.json --out out --pin "sha256:$lower"
	assert_equal "$stderr" "estctl enroll: 2 enrolled, 0 already enrolled, 0 failed"
	cmp out/Pin1/ca.pem "$ST/ca/cert.pem"
	run -0 openssl verify -CAfile out/Pin2/ca.pem out/Pin2/cert.pem
}

@test "a manual-approval label answers 202; enroll waits it out and gets the certificate once approved" {
	fleet_config cfg.json Approve 1
	jq '.ESTDetails.Label = "manual"' cfg.json > manual.json
	"$ESTCTL" enroll --config manual.json --out out --max-wait 120s >enroll.out 2>enroll.err 3>&- &
	pid=$!
	for _ in $(seq 1 600); do
		grep -q '"event":"approval_requested","thing":"Approve1"' "$ST/audit.log" && break
		sleep 0.05
	done
	grep -q '"thing":"Approve1"' "$ST/audit.log" || fail "no approval request: $(cat enroll.err)"
	sleep 1.5       # at least one more 202 (Retry-After: 1) before the approval
	kill -0 "$pid" || fail "enroll did not wait: $(cat enroll.err)"
	[ ! -e out/Approve1 ] || fail "a directory before the approval"
	run -0 estctl server approve "$ST" Approve1
	wait "$pid" || fail "enroll failed after the approval: $(cat enroll.err)"
	assert_equal "$(cat enroll.err)" "estctl enroll: 1 enrolled, 0 already enrolled, 0 failed"
	run -0 openssl verify -CAfile "$ST/ca/cert.pem" out/Approve1/cert.pem
	run -0 jq -r 'select(.thing == "Approve1") | .event' "$ST/audit.log"
	assert_output "approval_requested
approved
device_registered
certificate_issued"
}

@test "a 202 whose Retry-After passes --max-wait is exit 75 with the server's words, nothing written" {
	fleet_config cfg.json Wait 1
	jq '.ESTDetails.Label = "manual"' cfg.json > manual.json
	run -75 --separate-stderr estctl enroll --config manual.json --out out --max-wait 0
	assert_output ""
	assert_stderr_has "estctl enroll: Wait1: simpleenroll: the server asks to come back in 1 s (enrollment of 'Wait1' awaits an operator's approval), past --max-wait (0 s); run again later"
	assert_stderr_has "estctl enroll: 0 enrolled, 0 already enrolled, 1 failed"
	[ -z "$(ls -A out)" ] || fail "files were written: $(ls -A out)"
}
