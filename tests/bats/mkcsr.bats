#!/usr/bin/env bats
# estctl mkcsr: CSRs carrying the device profile, checked with OpenSSL and certtool.

load helper
load mkcsr_helper

CONFIG="$SRCDIR/examples/client_config.json"
DATA="$SRCDIR/tests/data"

@test "mkcsr makes CSRs OpenSSL verifies for every key type made by openssl genpkey (PKCS#8)" {
	for t in ec-p256 ec-p384 ed25519 rsa2048; do
		make_key $t pkcs8 $t.key
		run -0 --separate-stderr estctl mkcsr --key $t.key --thing DeviceAlpha
		printf '%s\n' "$output" >$t.csr
		run -0 openssl req -in $t.csr -verify -noout
		assert_output --partial "verify OK"
	done
}

@test "mkcsr reads traditional PEM keys from openssl ecparam and genrsa -traditional" {
	for t in ec-p256 ec-p384 rsa2048; do
		make_key $t trad $t.key
		head -1 $t.key | grep -Eq 'BEGIN (EC|RSA) PRIVATE KEY'
		run -0 --separate-stderr estctl mkcsr --key $t.key --thing DeviceAlpha -o $t.csr
		run -0 openssl req -in $t.csr -verify -noout
		assert_output --partial "verify OK"
	done
}

@test "mkcsr reads DER keys and keys made by certtool" {
	for t in ec-p256 ec-p384 ed25519 rsa2048; do
		make_key $t der $t.der
		make_key $t certtool $t.ct
		for k in $t.der $t.ct; do
			run -0 --separate-stderr estctl mkcsr --key $k --thing DeviceAlpha -o $k.csr
			run -0 openssl req -in $k.csr -verify -noout
			assert_output --partial "verify OK"
		done
	done
}

@test "mkcsr signs Ed25519 as pure Ed25519 and P-384 with SHA-384" {
	make_key ed25519 pkcs8 ed.key
	make_key ec-p384 pkcs8 p384.key
	estctl mkcsr --key ed.key --thing A -o ed.csr
	estctl mkcsr --key p384.key --thing A -o p384.csr
	run -0 openssl req -in ed.csr -noout -text
	assert_output --partial "Signature Algorithm: ED25519"
	run -0 openssl req -in p384.csr -noout -text
	assert_output --partial "Signature Algorithm: ecdsa-with-SHA384"
}

@test "the CSR's subject is the ThingName and it carries the profile OID" {
	make_key ec-p256 pkcs8 k.pem
	estctl mkcsr --key k.pem --config "$CONFIG" --device DeviceBeta -o beta.csr
	run -0 openssl req -in beta.csr -noout -subject
	assert_output "subject=CN = DeviceBeta"
	run -0 openssl asn1parse -in beta.csr
	assert_output --partial "OBJECT            :$PROFILE_OID"
	assert_output --partial ":Extension Request"
}

@test "the profile extension holds the ThingName and the config's permissions in order" {
	make_key ec-p256 pkcs8 k.pem
	estctl mkcsr --key k.pem --config "$CONFIG" --device DeviceBeta -o beta.csr
	run -0 profile_values beta.csr
	assert_output "$(cat <<-'END'
	INTEGER:01
	UTF8STRING:DeviceBeta
	ENUMERATED:00
	ENUMERATED:00
	UTF8STRING:client/DeviceBeta
	ENUMERATED:01
	ENUMERATED:00
	UTF8STRING:topic/DeviceBeta/telemetry
	ENUMERATED:02
	ENUMERATED:00
	UTF8STRING:topic/DeviceBeta/commands
	UTF8STRING:topic/DeviceBeta/ota
	ENUMERATED:03
	ENUMERATED:01
	UTF8STRING:topic/DeviceBeta/commands
	END
	)"
}

@test "the profile extension is not critical" {
	make_key ec-p256 pkcs8 k.pem
	estctl mkcsr --key k.pem --config "$CONFIG" --device DeviceAlpha -o a.csr
	run -0 openssl asn1parse -in a.csr
	# DER leaves out critical=FALSE: the OID is followed directly by extnValue.
	printf '%s\n' "$output" | grep -A1 ":$PROFILE_OID" | tail -1 | grep -q "OCTET STRING"
	run -0 openssl req -in a.csr -noout -text
	refute_output --partial "critical"
}

@test "the profile extension is the same DER for the same device and differs between devices" {
	make_key ec-p256 pkcs8 k1.pem
	make_key ed25519 pkcs8 k2.pem
	estctl mkcsr --key k1.pem --config "$CONFIG" --device DeviceAlpha -o a1.csr
	estctl mkcsr --key k2.pem --config "$CONFIG" --device DeviceAlpha -o a2.csr
	estctl mkcsr --key k2.pem --config "$CONFIG" --device DeviceBeta -o b.csr
	[ "$(profile_dump a1.csr)" = "$(profile_dump a2.csr)" ]
	[ "$(profile_dump a1.csr)" != "$(profile_dump b.csr)" ]
	! cmp -s a1.csr a2.csr
}

@test "--thing alone gives a profile with no permissions" {
	make_key ec-p256 pkcs8 k.pem
	estctl mkcsr --key k.pem --thing Lonely:01 -o l.csr
	run -0 profile_values l.csr
	assert_output "$(printf '%s\n' INTEGER:01 UTF8STRING:Lonely:01)"
	run -0 profile_dump l.csr
	assert_output --partial "l=   0 cons: SEQUENCE"
}

@test "--profile takes an IoTDetails file and the ThingName from --thing" {
	make_key ec-p256 pkcs8 k.pem
	run -0 --separate-stderr estctl mkcsr --key k.pem --thing DeviceBeta --profile "$DATA/iot_beta.json"
	assert_equal "$stderr" ""
	printf '%s\n' "$output" >p.csr
	run -0 profile_values p.csr
	assert_output "$(printf '%s\n' INTEGER:01 UTF8STRING:DeviceBeta ENUMERATED:00 ENUMERATED:00 \
		UTF8STRING:client/DeviceBeta ENUMERATED:03 ENUMERATED:01 UTF8STRING:topic/DeviceBeta/secret)"
}

@test "--profile with a ThingName that disagrees with --thing is refused" {
	make_key ec-p256 pkcs8 k.pem
	printf '{"ThingName":"DeviceAlpha"}\n' >iot.json
	run -65 --separate-stderr estctl mkcsr --key k.pem --thing DeviceBeta --profile iot.json
	assert_one_line_error
	assert_equal "$stderr" "estctl mkcsr: iot.json: IoTDetails.ThingName does not match --thing 'DeviceBeta'"
	run -0 --separate-stderr estctl mkcsr --key k.pem --profile iot.json
	run -65 --separate-stderr estctl mkcsr --key k.pem --profile "$DATA/iot_beta.json"
	assert_equal "$stderr" "estctl mkcsr: $DATA/iot_beta.json: IoTDetails.ThingName: missing"
}

@test "SANs of every kind appear in openssl req -text" {
	make_key ec-p256 pkcs8 k.pem
	estctl mkcsr --key k.pem --thing A --san dns:dev1.example.com --san ip:192.0.2.7 \
		--san ip:2001:db8::7 --san uri:urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66 -o s.csr
	run -0 openssl req -in s.csr -noout -text
	assert_output --partial "DNS:dev1.example.com, IP Address:192.0.2.7, IP Address:2001:DB8:0:0:0:0:0:7, URI:urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66"
	run -0 openssl req -in s.csr -verify -noout
}

@test "a malformed SAN is a usage error that names it" {
	make_key ec-p256 pkcs8 k.pem
	for san in dns:-bad.example 'dns:*.example' ip:300.1.1.1 ip:fe80::1%eth0 uri:nocolon email:a@b; do
		run -64 --separate-stderr estctl mkcsr --key k.pem --thing A --san "$san"
		assert_output ""
		[[ "$stderr" == "estctl mkcsr: SAN '$san': "* ]]
	done
}

@test "a challenge password file adds challengePassword" {
	make_key ec-p256 pkcs8 k.pem
	printf 'otp-1234\n' >challenge
	estctl mkcsr --key k.pem --thing A --challenge-file challenge -o c.csr
	run -0 openssl req -in c.csr -noout -text
	assert_output --partial "challengePassword"
	assert_output --partial "otp-1234"
	: >empty
	run -65 --separate-stderr estctl mkcsr --key k.pem --thing A --challenge-file empty
	assert_equal "$stderr" "estctl mkcsr: empty: expected the challenge password on its first line"
}

@test "certtool --crq-info reads the CSR and verifies its self-signature" {
	make_key ec-p256 pkcs8 k.pem
	estctl mkcsr --key k.pem --config "$CONFIG" --device DeviceAlpha -o a.csr
	run -0 certtool --crq-info --infile a.csr
	assert_output --partial "Subject: CN=DeviceAlpha"
	assert_output --partial "Self signature: verified"
}

@test "--der writes DER that openssl req -inform DER reads" {
	make_key ed25519 pkcs8 k.pem
	estctl mkcsr --key k.pem --thing A --der -o a.der
	[ "$(head -c1 a.der | od -An -tx1 | tr -d ' ')" = 30 ]
	run -0 openssl req -inform DER -in a.der -verify -noout
	assert_output --partial "verify OK"
}

@test "-o writes the CSR to a file and nothing to stdout" {
	make_key ec-p256 pkcs8 k.pem
	run -0 --separate-stderr estctl mkcsr --key k.pem --thing A -o out.csr
	assert_output ""
	assert_equal "$stderr" ""
	head -1 out.csr | grep -q -- "-----BEGIN NEW CERTIFICATE REQUEST-----"
	[ "$(file_mode out.csr)" = 644 ]
}

@test "--key - reads the key from standard input" {
	make_key ec-p384 pkcs8 k.pem
	run -0 --separate-stderr estctl mkcsr --key - --thing A -o s.csr <k.pem
	run -0 openssl req -in s.csr -verify -noout
	run -64 --separate-stderr estctl mkcsr --key - --config - --device A <k.pem
	[[ "$stderr" == *"only one input can be standard input"* ]]
}

@test "config warnings go to stderr and do not fail" {
	make_key ec-p256 pkcs8 k.pem
	run -0 --separate-stderr estctl mkcsr --key k.pem --config "$DATA/two_devices_warn.json" --device DeviceGamma
	assert_equal "$stderr" "$(printf '%s\n' \
		"estctl mkcsr: warning: $DATA/two_devices_warn.json: unknown key ESTDetails.Colour" \
		"estctl mkcsr: warning: $DATA/two_devices_warn.json: Devices[0].IoTDetails.Topics.Publish: ignored, Policies.Publish is null")"
	[[ "$output" == "-----BEGIN NEW CERTIFICATE REQUEST-----"* ]]
}

@test "a config error names the device and the field and exits 65" {
	make_key ec-p256 pkcs8 k.pem
	run -65 --separate-stderr estctl mkcsr --key k.pem --config "$DATA/bad_policy.json" --device DeviceAlpha
	assert_one_line_error
	assert_equal "$stderr" "estctl mkcsr: $DATA/bad_policy.json: Devices[1].IoTDetails.Policies.Publish: expected true, false or null"
}

@test "a config with a duplicate ThingName is refused" {
	make_key ec-p256 pkcs8 k.pem
	run -65 --separate-stderr estctl mkcsr --key k.pem --config "$DATA/dup_thing.json" --device DeviceAlpha
	assert_equal "$stderr" "estctl mkcsr: $DATA/dup_thing.json: Devices[1].IoTDetails.ThingName: 'DeviceAlpha' is already used by Devices[0]"
}

@test "a config with comments is refused at the comment's line and column" {
	make_key ec-p256 pkcs8 k.pem
	run -65 --separate-stderr estctl mkcsr --key k.pem --config "$DATA/comments.json"
	assert_equal "$stderr" "estctl mkcsr: $DATA/comments.json:5:5: comments are not allowed in JSON"
}

@test "a missing config exits 66 and a missing key exits 66" {
	make_key ec-p256 pkcs8 k.pem
	run -66 --separate-stderr estctl mkcsr --key k.pem --config nope.json
	assert_one_line_error
	[[ "$stderr" == "estctl mkcsr: nope.json: "* ]]
	run -66 --separate-stderr estctl mkcsr --key nokey.pem --thing A
	[[ "$stderr" == "estctl mkcsr: nokey.pem: "* ]]
	echo "not a key" >junk.pem
	run -65 --separate-stderr estctl mkcsr --key junk.pem --thing A
	assert_equal "$stderr" "estctl mkcsr: junk.pem: not a private key (PEM or DER)"
}

@test "a device not in the config exits 65 with the closest name" {
	make_key ec-p256 pkcs8 k.pem
	run -65 --separate-stderr estctl mkcsr --key k.pem --config "$CONFIG" --device DeviceAlfa
	assert_equal "$stderr" "estctl mkcsr: $CONFIG: no device 'DeviceAlfa' (did you mean 'DeviceAlpha'?)"
	run -65 --separate-stderr estctl mkcsr --key k.pem --config "$CONFIG" --device Toaster
	assert_equal "$stderr" "estctl mkcsr: $CONFIG: no device 'Toaster'"
}

@test "a config with several devices needs --device, one device does not" {
	make_key ec-p256 pkcs8 k.pem
	run -64 --separate-stderr estctl mkcsr --key k.pem --config "$CONFIG"
	[[ "$stderr" == "estctl mkcsr: $CONFIG has 2 devices: choose one with --device"* ]]
	printf '{"Devices":[{"IoTDetails":{"ThingName":"Solo"}}]}' >one.json
	estctl mkcsr --key k.pem --config one.json -o solo.csr
	run -0 openssl req -in solo.csr -noout -subject
	assert_output "subject=CN = Solo"
}

@test "mkcsr refuses invalid ThingNames: slash, dot-dot, empty, too long" {
	make_key ec-p256 pkcs8 k.pem
	for name in 'a/b' '..' '' "$(printf 'x%.0s' $(seq 129))" 'dev name'; do
		run -65 --separate-stderr estctl mkcsr --key k.pem --thing "$name"
		assert_one_line_error
		assert_equal "$stderr" "estctl mkcsr: --thing: not a valid ThingName (1-128 characters of A-Z a-z 0-9 : _ -)"
	done
	run -0 --separate-stderr estctl mkcsr --key k.pem --thing "$(printf 'x%.0s' $(seq 128))"
	run -65 --separate-stderr estctl mkcsr --key k.pem --config "$DATA/bad_thing.json"
	assert_equal "$stderr" "estctl mkcsr: $DATA/bad_thing.json: Devices[0].IoTDetails.ThingName: '../etc' is not a valid ThingName (1-128 characters of A-Z a-z 0-9 : _ -)"
}

@test "mkcsr usage errors exit 64" {
	run -64 --separate-stderr estctl mkcsr --thing A
	[[ "$stderr" == "estctl mkcsr: --key is required"* ]]
	run -64 --separate-stderr estctl mkcsr --key k --config c --thing A
	[[ "$stderr" == *"--config cannot be combined with --thing or --profile"* ]]
	run -64 --separate-stderr estctl mkcsr --key k
	[[ "$stderr" == *"one of --config, --thing or --profile is required"* ]]
	run -64 --separate-stderr estctl mkcsr --key k --thing A --device B
	[[ "$stderr" == *"--device needs --config"* ]]
	run -64 --separate-stderr estctl mkcsr --key k --thing A extra
	[[ "$stderr" == *"unexpected operand 'extra'"* ]]
}

@test "every option in mkcsr --help is in the man page" {
	run -0 estctl mkcsr --help
	opts=$(printf '%s\n' "$output" | grep -o -- '--[a-z-]*' | sort -u)
	[ -n "$opts" ]
	for o in $opts; do
		grep -q -- "$(printf '%s' "$o" | sed 's/-/\\\\-/g')" "$SRCDIR/man/estctl-mkcsr.1" ||
			fail "$o is not in man/estctl-mkcsr.1"
	done
}
