#!/usr/bin/env bats
# estctl rotate against tests/interop/est_responder.py (openssl signs), with
# device certificates of chosen ages made by certtool.

load helper
load rotate_helper

setup_file() {
	export PKI="$BATS_FILE_TMPDIR/pki"
	responder_start PLAIN "$PKI" --no-copy-extensions --refuse-cn DevRefused
	responder_start SLOW "$PKI" --no-copy-extensions --retry-times 100 --retry-after 30
	responder_start BROKEN "$PKI" --fail-status 503
}

teardown_file() {
	responder_stop PLAIN
	responder_stop SLOW
	responder_stop BROKEN
}

@test "a certificate early in its life is not due: exit 0, says when, files untouched" {
	make_device dev DevA -1 30
	before=$(dir_sum dev)
	run -0 --separate-stderr estctl rotate dev
	assert_output "not due: dev renews after $(due_by_formula dev/cert.pem 2/3 -1)"
	assert_equal "$stderr" ""
	assert_equal "$(dir_sum dev)" "$before"
}

@test "a certificate past two thirds of its life is renewed with a new key, the old pair kept as .prev" {
	make_device dev DevA -25 30
	cp dev/key.pem old.key
	cp dev/cert.pem old.pem
	run -0 --separate-stderr estctl rotate dev
	serial=$(openssl x509 -in dev/cert.pem -noout -serial | cut -d= -f2 | tr A-F a-f)
	until=$(date -u -d "$(openssl x509 -in dev/cert.pem -noout -enddate | cut -d= -f2)" +%Y-%m-%dT%H:%M:%SZ)
	assert_output "renewed dev: serial $serial, valid until $until"
	[ "$(pubkey_of dev/cert.pem)" != "$(pubkey_of old.pem)" ] || fail "the key did not change"
	assert_equal "$(pubkey_of dev/cert.pem)" "$(pubkey_of dev/key.pem)"
	cmp dev/key.pem.prev old.key
	cmp dev/cert.pem.prev old.pem
	assert_equal "$(file_mode dev/key.pem)" 600
	assert_equal "$(file_mode dev/key.pem.prev)" 600
	openssl verify -CAfile dev/ca.pem dev/cert.pem
	assert_equal "$(openssl x509 -in dev/cert.pem -noout -subject -nameopt RFC2253)" "subject=CN=DevA"
	cmp <(openssl x509 -in dev/chain.pem) <(openssl x509 -in dev/cert.pem)
	[ -z "$(ls dev | grep -E '\.new|\.tmp')" ] || fail "leftovers: $(ls dev)"
}

@test "--force renews a certificate that is not due; --keep-key keeps its public key" {
	make_device dev DevA -1 30
	cp dev/cert.pem old.pem
	run -0 --separate-stderr estctl rotate --force --keep-key dev
	assert_output --partial "renewed dev: serial "
	assert_equal "$(pubkey_of dev/cert.pem)" "$(pubkey_of old.pem)"
	cmp dev/key.pem dev/key.pem.prev
	! cmp -s dev/cert.pem old.pem
	cmp dev/cert.pem.prev old.pem
	run -0 --separate-stderr estctl rotate dev --force
	[ "$(pubkey_of dev/cert.pem)" != "$(pubkey_of old.pem)" ] || fail "the key did not change"
}

@test "--json gives dir, thing, action, serial, not_after and due_at (the man page's formula)" {
	make_device dev DevA -1 30
	run -0 --separate-stderr estctl rotate --json dev
	jq -e '.dir == "dev" and .thing == "DevA" and .action == "not_due"' <<<"$output"
	assert_equal "$(jq -r .due_at <<<"$output")" "$(due_by_formula dev/cert.pem 2/3 -1)"
	assert_equal "$(jq -r .serial <<<"$output")" \
		"$(openssl x509 -in dev/cert.pem -noout -serial | cut -d= -f2 | tr A-F a-f)"
	run -0 --separate-stderr estctl rotate --json --force dev
	jq -e '.action == "renewed" and (.serial | length) > 0 and .previous_serial != .serial' <<<"$output"
	assert_equal "$(jq -r .due_at <<<"$output")" "$(due_by_formula dev/cert.pem 2/3 -1)"
	assert_equal "$(jq -r .not_after <<<"$output")" \
		"$(date -u -d "$(openssl x509 -in dev/cert.pem -noout -enddate | cut -d= -f2)" +%Y-%m-%dT%H:%M:%SZ)"
}

@test "--at and --before move the window; the jitter follows the formula" {
	make_device dev DevA -20 30
	run -0 --separate-stderr estctl rotate --json --at 0.9 dev
	jq -e '.action == "not_due"' <<<"$output"
	assert_equal "$(jq -r .due_at <<<"$output")" "$(due_by_formula dev/cert.pem 0.9 -1)"
	run -0 --separate-stderr estctl rotate --json --before 5d dev
	jq -e '.action == "not_due"' <<<"$output"
	assert_equal "$(jq -r .due_at <<<"$output")" "$(due_by_formula dev/cert.pem 0 432000)"
	run -0 --separate-stderr estctl rotate --json --before 25d dev
	jq -e '.action == "renewed"' <<<"$output"
}

@test "an expired certificate is reported with what the operator can do (exit 1), even with --force" {
	make_device dev DevOld -40 30
	before=$(dir_sum dev)
	run -1 --separate-stderr estctl rotate --force dev
	assert_output ""
	assert_equal "$stderr" "estctl rotate: dev: certificate expired on $(date -u -d "$(openssl x509 -in dev/cert.pem -noout -enddate | cut -d= -f2)" +%Y-%m-%dT%H:%M:%SZ): re-bootstrap with estctl enroll --config FILE --device DevOld --force, or ask an operator to reset the device"
	assert_equal "$(dir_sum dev)" "$before"
	run -1 --separate-stderr estctl rotate --json dev
	jq -e '.action == "failed" and .error == "negative" and (.reason | test("expired on"))' <<<"$output"
}

@test "a server that is down is 69, a 503 is 69, and the files are untouched" {
	make_device dev DevA -25 30 "https://127.0.0.1:$(free_port)"
	before=$(dir_sum dev)
	run -69 --separate-stderr estctl rotate dev
	assert_one_line_error
	[[ "$stderr" == "estctl rotate: dev: "* ]] || fail "$stderr"
	assert_equal "$(dir_sum dev)" "$before"
	run -69 --separate-stderr estctl rotate --url "$BROKEN_URL" dev
	assert_one_line_error
	[[ "$stderr" == *"responder told to fail"* ]] || fail "$stderr"
	assert_equal "$(dir_sum dev)" "$before"
}

@test "a 202 is exit 75 with the server's Retry-After, files untouched" {
	make_device dev DevA -25 30 "$SLOW_URL"
	before=$(dir_sum dev)
	run -75 --separate-stderr estctl rotate --json dev
	jq -e '.action == "failed" and .error == "tempfail" and .retry_after == 30' <<<"$output"
	assert_equal "$(dir_sum dev)" "$before"
}

@test "a refusal is 77 with the server's reason, files untouched" {
	make_device dev DevRefused -25 30
	before=$(dir_sum dev)
	run -77 --separate-stderr estctl rotate dev
	[[ "$stderr" == *"policy: this device may not enroll here"* ]] || fail "$stderr"
	assert_equal "$(dir_sum dev)" "$before"
}

@test "--all renews what is due, leaves what is not, reports the failing device and exits non-zero" {
	make_device root/DevA DevA -25 30
	make_device root/DevB DevB -1 30
	make_device root/DevRefused DevRefused -25 30
	mkdir root/notadevice root/.hidden
	run -77 --separate-stderr estctl rotate --all root --json
	assert_equal "$(jq -r '.thing + " " + .action' <<<"$output" | sort | tr '\n' ,)" \
		"DevA renewed,DevB not_due,DevRefused failed,"
	assert_equal "$(printf '%s\n' "$stderr" | tail -1)" "estctl rotate: 1 renewed, 1 not due, 1 failed"
	make_device root2/DevC DevC -1 30
	make_device root2/DevD DevD -1 30
	make_device root2/DevE DevE -1 30
	run -0 --separate-stderr estctl rotate --all root2 --force --jobs 3
	assert_equal "$(grep -c '^renewed root2/Dev[CDE]: serial ' <<<"$output")" 3
	assert_equal "$stderr" "estctl rotate: 3 renewed, 0 not due, 0 failed"
}

@test "--all over a tree without devices is 66" {
	mkdir empty
	run -66 --separate-stderr estctl rotate --all empty
	assert_one_line_error
}

@test "a key that is not the certificate's is 65; a missing cert.pem is 66" {
	make_device dev DevA -25 30
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out dev/key.pem 2>/dev/null
	run -65 --separate-stderr estctl rotate dev
	assert_equal "$stderr" "estctl rotate: dev: key.pem is not the key of cert.pem"
	mkdir other
	run -66 --separate-stderr estctl rotate other
}

@test "without est.json the server must be given (78); without a profile anywhere it is 78 too" {
	make_device dev DevA -25 30
	rm dev/est.json
	before=$(dir_sum dev)
	run -78 --separate-stderr estctl rotate dev
	[[ "$stderr" == *"no server: est.json is missing"* ]] || fail "$stderr"
	run -78 --separate-stderr estctl rotate --url "$PLAIN_URL" dev
	[[ "$stderr" == *"no device profile to carry"* ]] || fail "$stderr"
	assert_equal "$(dir_sum dev)" "$before"
}

@test "a renewal interrupted after the new files were written is completed by the next run" {
	make_device dev DevA -1 30
	cp -a dev crashed
	run -0 estctl rotate --force dev
	cp dev/key.pem crashed/key.pem.new
	cp dev/chain.pem crashed/chain.pem.new
	cp dev/cert.pem crashed/cert.pem.new
	cp crashed/key.pem old.key
	run -0 --separate-stderr estctl rotate crashed
	assert_output --partial "not due: crashed renews after"
	assert_equal "$stderr" "estctl rotate: crashed: completed an interrupted renewal first"
	cmp crashed/key.pem dev/key.pem
	cmp crashed/cert.pem dev/cert.pem
	cmp crashed/key.pem.prev old.key
	assert_equal "$(file_mode crashed/key.pem)" 600
	[ ! -e crashed/cert.pem.new ] && [ ! -e crashed/key.pem.new ]
}

@test "a renewal interrupted between the key and the certificate renames is completed" {
	make_device dev DevA -1 30
	cp -a dev crashed
	run -0 estctl rotate --force dev
	ln crashed/key.pem crashed/key.pem.prev
	ln crashed/cert.pem crashed/cert.pem.prev
	rm crashed/key.pem
	cp -p dev/key.pem crashed/key.pem
	cp dev/cert.pem crashed/cert.pem.new
	run -0 --separate-stderr estctl rotate crashed
	cmp crashed/cert.pem dev/cert.pem
	cmp crashed/key.pem dev/key.pem
	[ "$(pubkey_of crashed/cert.pem.prev)" = "$(pubkey_of crashed/key.pem.prev)" ]
}

@test "leftovers of a renewal that died while writing are removed and the pair kept" {
	make_device dev DevA -1 30
	before=$(dir_sum dev)
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out dev/key.pem.new 2>/dev/null
	echo partial >dev/cert.pem.new.AbC123
	run -0 --separate-stderr estctl rotate dev
	assert_output --partial "not due"
	assert_equal "$(dir_sum dev)" "$before"
}

@test "a device enrolled by enroll --config renews from its est.json (server-ca.pem copy)" {
	cat >fleet.json <<-EOF
	{ "ESTDetails": { "ESTAPIURL": "$PLAIN_URL", "CACert": "$PKI/ca.pem" },
	  "Devices": [ { "IoTDetails": { "ThingName": "DevE", "Policies": { "Connect": true },
	      "Topics": { "Connect": { "Name1": "client/DevE" } } } } ] }
	EOF
	run -0 estctl enroll --config fleet.json --out devs
	jq -e --arg u "$PLAIN_URL" '.url == $u and .cacert == "server-ca.pem" and
		.IoTDetails.ThingName == "DevE" and .IoTDetails.Topics.Connect == ["client/DevE"]' devs/DevE/est.json
	cmp devs/DevE/server-ca.pem "$PKI/ca.pem"
	run -0 --separate-stderr estctl rotate devs/DevE
	assert_output --partial "not due: devs/DevE renews after"
	run -0 --separate-stderr estctl rotate --force devs/DevE
	assert_output --partial "renewed devs/DevE: serial"
	openssl verify -CAfile devs/DevE/ca.pem devs/DevE/cert.pem
}

@test "--watch renews when due, then sleeps until SIGTERM and exits 0" {
	make_device dev DevA -25 30
	"$ESTCTL" rotate --watch dev >watch.out 2>watch.err 3>&- &
	pid=$!
	for i in $(seq 1 300); do grep -q '^renewed dev' watch.out && break; sleep 0.1; done
	grep -q '^renewed dev: serial' watch.out || fail "$(cat watch.out watch.err)"
	kill -TERM "$pid"
	wait "$pid" || fail "exit $? after SIGTERM: $(cat watch.err)"
	assert_equal "$(wc -l <watch.out)" 1
}

@test "--watch stops on an expired certificate with exit 1 instead of retrying" {
	make_device dev DevOld -40 30
	run -1 --separate-stderr timeout 20 "$ESTCTL" rotate --watch dev
	[[ "$stderr" == *"certificate expired on"* ]] || fail "$stderr"
}

@test "--watch keeps trying after a server failure and says when" {
	make_device dev DevA -25 30 "https://127.0.0.1:$(free_port)"
	"$ESTCTL" rotate --watch dev >watch.out 2>watch.err 3>&- &
	pid=$!
	for i in $(seq 1 300); do grep -q 'trying again in' watch.err && break; sleep 0.1; done
	kill -0 "$pid" || fail "it stopped: $(cat watch.err)"
	kill -TERM "$pid"
	wait "$pid"
	grep -Eq '^estctl rotate: dev: trying again in ([3-5][0-9]|60) s$' watch.err || fail "$(cat watch.err)"
}

@test "usage errors: --at outside [0,1), --at with --before, --watch with --all, two directories" {
	run -64 --separate-stderr estctl rotate --at 1 dev
	run -64 --separate-stderr estctl rotate --at 3/2 dev
	run -64 --separate-stderr estctl rotate --at 0.5 --before 3d dev
	run -64 --separate-stderr estctl rotate --watch --all root
	run -64 --separate-stderr estctl rotate one two
	run -64 --separate-stderr estctl rotate --jobs 2 dev
	run -64 --separate-stderr estctl rotate
}
