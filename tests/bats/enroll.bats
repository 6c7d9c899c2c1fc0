#!/usr/bin/env bats
# estctl enroll, cacerts and csrattrs against a server that is not ours:
# tests/interop/est_responder.py (Python's http.server + ssl, openssl signing).

load helper
load client_helper

setup_file() {
	command -v python3 >/dev/null || skip "python3 is needed for the interop responder"
	export PKI="$BATS_FILE_TMPDIR/pki"
	printf 'open sesame\n' >"$BATS_FILE_TMPDIR/password"
	openssl rand -hex 32 >"$BATS_FILE_TMPDIR/enrollment.key"
	responder_start PLAIN "$PKI"
	responder_start FLAT "$PKI" --no-wrap
	responder_start SLOW "$PKI" --retry-times 2 --retry-after 1
	responder_start AUTH "$PKI" --user alice --password-file "$BATS_FILE_TMPDIR/password"
	responder_start SEALED "$PKI" --enrollment-key "$BATS_FILE_TMPDIR/enrollment.key" \
		--key-id fleet-key-1
	responder_start BROKEN "$PKI" --fail-status 503
	# GnuTLS cannot import certificates carrying the profile OID (see the last
	# single-device test), so the fleet responder leaves the CSR's extensions out.
	responder_start FLEET "$PKI" --no-copy-extensions --refuse-cn DeviceBeta
	export CA="$PKI/ca.pem"
	# A CA that has nothing to do with the responder.
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$BATS_FILE_TMPDIR/other.key" -out "$BATS_FILE_TMPDIR/other-ca.pem" \
		-subj /CN=other -days 30 2>/dev/null
	export OTHER_CA="$BATS_FILE_TMPDIR/other-ca.pem"
}

teardown_file() {
	for r in PLAIN FLAT SLOW AUTH SEALED BROKEN FLEET; do
		responder_stop "$r"
	done
}

# The certificate in $1 has the public key of the private key in $2.
same_key() {
	[ "$(openssl x509 -in "$1" -noout -pubkey)" = "$(openssl pkey -in "$2" -pubout)" ]
}

@test "enroll prints a certificate for an openssl-made CSR that openssl verifies" {
	new_csr dev1
	run -0 --separate-stderr estctl enroll --url "$PLAIN_URL" --cacert "$CA" --csr dev1.csr
	assert_equal "$stderr" ""
	printf '%s\n' "$output" >cert.pem
	run -0 openssl verify -CAfile "$CA" cert.pem
	run -0 openssl x509 -in cert.pem -noout -subject
	assert_output "subject=CN = dev1"
	same_key cert.pem dev1.key
	[ "$(grep -c 'BEGIN CERTIFICATE' cert.pem)" -eq 1 ]
}

@test "enroll reads replies whose base64 has no line breaks" {
	new_csr dev2
	run -0 --separate-stderr estctl enroll --url "$FLAT_URL" --cacert "$CA" --csr dev2.csr
	printf '%s\n' "$output" >cert.pem
	run -0 openssl verify -CAfile "$CA" cert.pem
	same_key cert.pem dev2.key
}

@test "enroll takes the CSR as DER, as base64 and on standard input" {
	new_csr dev3 DER
	run -0 estctl enroll --url "$PLAIN_URL" --cacert "$CA" --csr dev3.csr
	assert_output --partial "BEGIN CERTIFICATE"
	base64 dev3.csr >dev3.b64
	run -0 estctl enroll --url "$PLAIN_URL" --cacert "$CA" --csr dev3.b64
	assert_output --partial "BEGIN CERTIFICATE"
	openssl req -inform DER -in dev3.csr -out dev3.pem
	run -0 bash -c '"$ESTCTL" enroll --url "$PLAIN_URL" --cacert "$CA" --csr - <dev3.pem >cert.pem'
	same_key cert.pem dev3.key
}

@test "enroll sends an openssl-sealed CSR as authEnveloped-data, DER or base64" {
	new_csr dev4 DER
	openssl cms -encrypt -binary -aes-256-gcm -secretkey "$(cat "$BATS_FILE_TMPDIR/enrollment.key")" \
		-secretkeyid "$(printf fleet-key-1 | od -An -tx1 | tr -d ' \n')" -outform DER \
		-in dev4.csr -out dev4.sealed
	run -0 --separate-stderr estctl enroll --url "$SEALED_URL" --cacert "$CA" --csr dev4.sealed
	printf '%s\n' "$output" >cert.pem
	same_key cert.pem dev4.key
	run -0 openssl verify -CAfile "$CA" cert.pem
	base64 dev4.sealed >dev4.b64
	run -0 estctl enroll --url "$SEALED_URL" --cacert "$CA" --csr dev4.b64
	assert_output --partial "BEGIN CERTIFICATE"
}

@test "a CSR sealed under another key is refused with 77 and the server's reason" {
	new_csr dev5 DER
	openssl rand -hex 32 >wrong.key
	openssl cms -encrypt -binary -aes-256-gcm -secretkey "$(cat wrong.key)" \
		-secretkeyid "$(printf fleet-key-1 | od -An -tx1 | tr -d ' \n')" -outform DER \
		-in dev5.csr -out dev5.sealed
	run -77 --separate-stderr estctl enroll --url "$SEALED_URL" --cacert "$CA" --csr dev5.sealed
	assert_one_line_error
	[[ "$stderr" == *"refused by the server (403): the sealed CSR does not open"* ]]
}

@test "enroll waits out two 202 answers (Retry-After: 1) and then gets the certificate" {
	new_csr dev6
	SECONDS=0
	run -0 --separate-stderr estctl enroll --url "$SLOW_URL" --cacert "$CA" --csr dev6.csr \
		--max-wait 1m
	[ "$SECONDS" -ge 2 ] || fail "did not wait: $SECONDS s"
	printf '%s\n' "$output" >cert.pem
	same_key cert.pem dev6.key
}

@test "enroll exits 75 when the server's Retry-After goes past --max-wait" {
	new_csr dev7
	run -75 --separate-stderr estctl enroll --url "$SLOW_URL" --cacert "$CA" --csr dev7.csr \
		--max-wait 0
	assert_one_line_error
	assert_equal "$stderr" "estctl enroll: simpleenroll: the server asks to come back in 1 s (pending), past --max-wait (0 s); run again later"
}

@test "enroll with the right HTTP Basic password gets a certificate" {
	new_csr dev8
	run -0 --separate-stderr estctl enroll --url "$AUTH_URL" --cacert "$CA" --csr dev8.csr \
		--user alice --password-file "$BATS_FILE_TMPDIR/password"
	assert_output --partial "BEGIN CERTIFICATE"
}

@test "a wrong password is exit 77 with the server's reason" {
	new_csr dev9
	printf 'guess\n' >pw
	run -77 --separate-stderr estctl enroll --url "$AUTH_URL" --cacert "$CA" --csr dev9.csr \
		--user alice --password-file pw
	assert_one_line_error
	assert_equal "$stderr" \
		"estctl enroll: simpleenroll: refused by the server (401): wrong user name or password"
}

@test "no credentials where the server wants them is exit 77" {
	new_csr dev10
	run -77 --separate-stderr estctl enroll --url "$AUTH_URL" --cacert "$CA" --csr dev10.csr
	[[ "$stderr" == *"(401)"* ]]
}

@test "a server whose TLS certificate does not chain to --cacert is refused with 76" {
	new_csr dev11
	run -76 --separate-stderr estctl enroll --url "$PLAIN_URL" --cacert "$OTHER_CA" --csr dev11.csr
	assert_one_line_error
	[[ "$stderr" == *"cacerts: the server's certificate is not trusted"* ]]
}

@test "without --cacert or --pin the system store does not trust the responder's private CA" {
	new_csr dev12
	run -76 --separate-stderr estctl enroll --url "$PLAIN_URL" --csr dev12.csr
	[[ "$stderr" == *"not trusted"* ]]
}

@test "bootstrap with the right pin (any case, with colons) enrolls" {
	new_csr dev13
	fp=$(fingerprint "$CA")
	run -0 --separate-stderr estctl enroll --url "$PLAIN_URL" --pin "SHA256:$fp" --csr dev13.csr
	printf '%s\n' "$output" >cert.pem
	run -0 openssl verify -CAfile "$CA" cert.pem
	lower=$(printf '%s' "$fp" | tr -d : | tr A-F a-f)
	run -0 estctl enroll --url "$PLAIN_URL" --pin "sha256:$lower" --csr dev13.csr
	assert_output --partial "BEGIN CERTIFICATE"
}

@test "a pin that matches no CA certificate is refused with 76 and shows the server's" {
	new_csr dev14
	run -76 --separate-stderr estctl enroll --url "$PLAIN_URL" --pin "SHA256:$(fingerprint "$OTHER_CA")" \
		--csr dev14.csr
	assert_one_line_error
	want=$(fingerprint "$CA" | tr -d : | tr A-F a-f)
	[[ "$stderr" == *"no CA certificate matches the pin (the server's first one is SHA256:$want)"* ]]
}

@test "a malformed pin is a usage error" {
	run -64 --separate-stderr estctl enroll --url "$PLAIN_URL" --pin SHA256:abcd --csr x.csr
	[[ "$stderr" == *"pin SHA256:abcd: expected"* ]]
}

@test "cacerts prints the responder's CA certificate, byte for byte" {
	run -0 --separate-stderr estctl cacerts --url "$PLAIN_URL" --cacert "$CA"
	printf '%s\n' "$output" >got.pem
	cmp <(openssl x509 -in got.pem -outform DER) <(openssl x509 -in "$CA" -outform DER)
	run -0 estctl cacerts --url "$FLAT_URL" --pin "SHA256:$(fingerprint "$CA")" -o ca.pem
	assert_output ""
	cmp <(openssl x509 -in ca.pem -outform DER) <(openssl x509 -in "$CA" -outform DER)
}

@test "csrattrs lists the OIDs the responder asks for" {
	run -0 --separate-stderr estctl csrattrs --url "$PLAIN_URL" --cacert "$CA"
	assert_output "$(printf '%s\n' 1.2.840.113549.1.9.7 1.2.840.10045.4.3.2 \
		'1.2.840.113549.1.9.14 1.3.6.1.1.1.1.22')"
}

@test "a server that is down is exit 69" {
	new_csr dev15
	run -69 --separate-stderr estctl enroll --url "https://127.0.0.1:$(free_port)" --cacert "$CA" \
		--csr dev15.csr
	assert_one_line_error
	[[ "$stderr" == *"cannot reach https://127.0.0.1:"* ]]
	run -69 estctl cacerts --url "https://127.0.0.1:$(free_port)" --cacert "$CA"
}

@test "a 503 is exit 69 with the server's reason" {
	new_csr dev16
	run -69 --separate-stderr estctl enroll --url "$BROKEN_URL" --cacert "$CA" --csr dev16.csr
	[[ "$stderr" == *"server error (503): responder told to fail"* ]]
}

@test "a CSR whose signature is broken is refused before anything is sent (65)" {
	new_csr dev17 DER
	python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[-3] ^= 1; open(sys.argv[1], "wb").write(b)' dev17.csr
	run -65 --separate-stderr estctl enroll --url "https://127.0.0.1:$(free_port)" --cacert "$CA" \
		--csr dev17.csr
	assert_one_line_error
	[[ "$stderr" == "estctl enroll: dev17.csr: "* ]]
}

@test "a missing CSR file is exit 66 and text that is no CSR is 65" {
	run -66 --separate-stderr estctl enroll --url "$PLAIN_URL" --cacert "$CA" --csr nothere.csr
	[[ "$stderr" == *"nothere.csr"* ]]
	echo "hello" >junk.csr
	run -65 --separate-stderr estctl enroll --url "$PLAIN_URL" --cacert "$CA" --csr junk.csr
}

@test "enroll needs --url and --csr, and https" {
	run -64 --separate-stderr estctl enroll --csr x.csr
	[[ "$stderr" == *"--url is required"* ]]
	run -64 --separate-stderr estctl enroll --url "$PLAIN_URL"
	[[ "$stderr" == *"--csr is required"* ]]
	run -64 --separate-stderr estctl enroll --url http://127.0.0.1:1 --csr x.csr
	[[ "$stderr" == *"expected https://"* ]]
	run -64 --separate-stderr estctl enroll --url "$PLAIN_URL" --csr x.csr --user alice
	[[ "$stderr" == *"--user and --password-file go together"* ]]
}

@test "--reenroll renews over mutual TLS with the current certificate and key" {
	new_csr dev18
	estctl enroll --url "$PLAIN_URL" --cacert "$CA" --csr dev18.csr >dev18.pem
	openssl req -new -key dev18.key -subj /CN=dev18 -out renew.csr
	run -0 --separate-stderr estctl enroll --reenroll --url "$PLAIN_URL" --cacert "$CA" \
		--csr renew.csr --cert dev18.pem --key dev18.key
	printf '%s\n' "$output" >new.pem
	run -0 openssl verify -CAfile "$CA" new.pem
	[ "$(openssl x509 -in new.pem -noout -serial)" != "$(openssl x509 -in dev18.pem -noout -serial)" ]
}

@test "--reenroll without a client certificate is refused with 77" {
	new_csr dev19
	run -77 --separate-stderr estctl enroll --reenroll --url "$PLAIN_URL" --cacert "$CA" --csr dev19.csr
	[[ "$stderr" == *"simplereenroll: refused by the server (403)"* ]]
}

@test "a certificate carrying the profile extension is reported as GnuTLS's parsing limit (76)" {
	estctl keygen -o dev20.key
	estctl mkcsr -k dev20.key -t DeviceAlpha -o dev20.csr
	run -76 --separate-stderr estctl enroll --url "$PLAIN_URL" --cacert "$CA" --csr dev20.csr
	assert_one_line_error
	[[ "$stderr" == *"carries the device-profile extension 2.25."*"GnuTLS cannot parse)" ]]
}

# fleet_config FILE: the example config pointed at the fleet responder, plus DeviceGamma.
fleet_config() {
	python3 - "$FLEET_URL" "$CA" "$SRCDIR/examples/client_config.json" "$1" <<'PY'
import json, sys
c = json.load(open(sys.argv[3]))
c["ESTDetails"]["ESTAPIURL"] = sys.argv[1]
c["ESTDetails"]["CACert"] = sys.argv[2]
g = json.loads(json.dumps(c["Devices"][0]))
g["IoTDetails"]["ThingName"] = "DeviceGamma"
c["Devices"].append(g)
json.dump(c, open(sys.argv[4], "w"))
PY
}

@test "enroll --config enrolls every device into its own directory, and one refusal does not stop the others" {
	fleet_config cfg.json
	run -77 --separate-stderr estctl enroll --config cfg.json --out out --jobs 2
	assert_output ""
	[[ "$stderr" == *"DeviceBeta: simpleenroll: refused by the server (403): policy: this device may not enroll here"* ]]
	[[ "$stderr" == *"2 enrolled, 0 already enrolled, 1 failed" ]]
	for d in DeviceAlpha DeviceGamma; do
		assert_equal "$(file_mode out/$d/key.pem)" 600
		run -0 openssl verify -CAfile out/$d/ca.pem out/$d/cert.pem
		run -0 openssl x509 -in out/$d/cert.pem -noout -subject
		assert_output "subject=CN = $d"
		[ "$(openssl x509 -in out/$d/cert.pem -noout -pubkey)" = "$(openssl pkey -in out/$d/key.pem -pubout)" ]
	done
	[ ! -e out/DeviceBeta ]
	[ -z "$(ls -A out | grep partial)" ]
}

@test "a rerun skips what is enrolled; --force enrolls a new key; --json gives one object per device" {
	fleet_config cfg.json
	estctl enroll --config cfg.json --out out --device DeviceAlpha 2>/dev/null
	old=$(openssl pkey -in out/DeviceAlpha/key.pem -pubout)
	run -0 --separate-stderr estctl enroll --config cfg.json --out out --device DeviceAlpha --json
	assert_output '{"device":"DeviceAlpha","result":"skipped","dir":"out/DeviceAlpha"}'
	[[ "$stderr" == *"0 enrolled, 1 already enrolled, 0 failed" ]]
	run -0 --separate-stderr estctl enroll --config cfg.json --out out --device DeviceAlpha --force --json
	assert_output '{"device":"DeviceAlpha","result":"enrolled","dir":"out/DeviceAlpha"}'
	[ "$(openssl pkey -in out/DeviceAlpha/key.pem -pubout)" != "$old" ]
	assert_equal "$(file_mode out/DeviceAlpha/key.pem)" 600
}

@test "a device directory without a valid certificate is not overwritten without --force (73)" {
	fleet_config cfg.json
	mkdir -p out/DeviceGamma
	echo "not mine" >out/DeviceGamma/key.pem
	run -73 --separate-stderr estctl enroll --config cfg.json --out out --device DeviceGamma
	assert_equal "$(cat out/DeviceGamma/key.pem)" "not mine"
	[[ "$stderr" == *"--force enrolls a new key over it"* ]]
}

@test "enroll --config refuses an unknown --device and --csr beside --config (64)" {
	fleet_config cfg.json
	run -64 --separate-stderr estctl enroll --config cfg.json --device Nobody
	[[ "$stderr" == *"--device Nobody: no such device"* ]]
	run -64 --separate-stderr estctl enroll --config cfg.json --csr x.csr
}
