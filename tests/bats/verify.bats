#!/usr/bin/env bats
# estctl verify: chains at a time, key match, expiry windows, profiles, CSRs.
# Every certificate is made by openssl or certtool (verify_helper.bash).

load helper
load verify_helper

setup_file() {
	export F="$BATS_FILE_TMPDIR/f"
	(make_verify_fixtures "$F") || return 1
}

# The same time as estctl prints it, from openssl's -startdate/-enddate.
openssl_date() {
	date -u -d "$(openssl x509 -in "$1" -noout "-$2" | cut -d= -f2)" +%Y-%m-%dT%H:%M:%SZ
}

# A field of the JSON object in $output, as Python prints it.
json_field() {
	printf '%s' "$output" | python3 -c 'import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print(json.dumps(v))' "$1"
}

@test "verify accepts a leaf signed by the root in the bundle and describes it" {
	run -0 --separate-stderr estctl verify "$F/leaf.pem" --cacert "$F/ca.pem"
	assert_equal "$stderr" ""
	assert_line "subject:    CN=leaf"
	assert_line "issuer:     CN=Test Root CA"
	local serial fp
	serial=$(openssl x509 -in "$F/leaf.pem" -noout -serial | cut -d= -f2 | tr A-F a-f)
	fp=$(openssl x509 -in "$F/leaf.pem" -noout -fingerprint -sha256 | cut -d= -f2 |
		tr -d : | tr A-F a-f)
	assert_line "serial:     $serial"
	assert_line "sha256:     $fp"
	assert_line "validity:   $(openssl_date "$F/leaf.pem" startdate) to $(openssl_date "$F/leaf.pem" enddate)"
	assert_line "key type:   ECDSA P-256"
	assert_line "chain:      valid"
	assert_line "key match:  not checked"
	assert_line "valid:      yes"
}

@test "verify takes options before or after CERT, and CERT from standard input" {
	run -0 estctl verify --cacert "$F/ca.pem" "$F/leaf.pem"
	run -0 estctl verify - --cacert "$F/ca.pem" <"$F/leaf.pem"
	assert_line "subject:    CN=leaf"
}

@test "verify reads a DER certificate and a DER bundle" {
	openssl x509 -in "$F/leaf.pem" -outform DER -out leaf.der
	openssl x509 -in "$F/ca.pem" -outform DER -out ca.der
	run -0 estctl verify leaf.der --cacert ca.der
	assert_line "subject:    CN=leaf"
}

@test "verify follows intermediates given after the leaf in the certificate file" {
	run -0 --separate-stderr estctl verify "$F/sub-chain.pem" --cacert "$F/ca.pem"
	assert_line "subject:    CN=sub"
	assert_line "issuer:     CN=inter"
}

@test "verify follows intermediates given in the bundle" {
	run -0 estctl verify "$F/sub.pem" --cacert "$F/bundle-with-inter.pem"
}

@test "verify refuses a leaf whose intermediate is nowhere" {
	run -1 --separate-stderr estctl verify "$F/sub.pem" --cacert "$F/ca.pem"
	assert_equal "$stderr" "estctl verify: $F/sub.pem: not signed by a CA in $F/ca.pem"
	assert_line "chain:      $F/sub.pem: not signed by a CA in $F/ca.pem"
	assert_line "valid:      no"
}

@test "verify never trusts a root that only the certificate file carries" {
	run -0 estctl verify "$F/sub-fullchain.pem" --cacert "$F/ca.pem"
	run -1 --separate-stderr estctl verify "$F/sub-fullchain.pem" --cacert "$F/other.pem"
	assert_equal "$stderr" "estctl verify: $F/sub-fullchain.pem: not signed by a CA in $F/other.pem"
}

@test "verify does not treat an intermediate in the bundle as a trust anchor" {
	run -1 --separate-stderr estctl verify "$F/sub.pem" --cacert "$F/inter.pem"
	assert_equal "$stderr" "estctl verify: $F/sub.pem: not signed by a CA in $F/inter.pem"
}

@test "verify refuses a certificate from another CA, and accepts it when that CA is in the bundle" {
	run -1 --separate-stderr estctl verify "$F/stranger.pem" --cacert "$F/ca.pem"
	assert_equal "$stderr" "estctl verify: $F/stranger.pem: not signed by a CA in $F/ca.pem"
	run -0 estctl verify "$F/stranger.pem" --cacert "$F/two-roots.pem"
}

@test "verify refuses a self-signed certificate that is not in the bundle" {
	run -1 --separate-stderr estctl verify "$F/other.pem" --cacert "$F/ca.pem"
	assert_equal "$stderr" "estctl verify: $F/other.pem: self-signed and not in $F/ca.pem"
}

@test "verify accepts a certificate issued by certtool, as certtool does" {
	certtool --verify --load-ca-certificate "$F/ca.pem" --infile "$F/gt.pem" >/dev/null
	run -0 estctl verify "$F/gt.pem" --cacert "$F/ca.pem"
	assert_line "subject:    CN=gt"
	assert_line "serial:     1234"
}

@test "verify refuses a certificate whose signature was tampered with" {
	run -1 --separate-stderr estctl verify "$F/badsig.der" --cacert "$F/ca.pem"
	assert_equal "$stderr" "estctl verify: $F/badsig.der: signature invalid"
}

@test "verify agrees with openssl verify on every fixture" {
	local c want
	for c in leaf ten gt sub sub-chain sub-fullchain stranger old future badsig long other; do
		[ -f "$F/$c.pem" ] || openssl x509 -inform DER -in "$F/$c.der" -out "$F/$c.pem" 2>/dev/null ||
			continue
		want=0
		openssl verify -CAfile "$F/ca.pem" -untrusted "$F/$c.pem" "$F/$c.pem" >/dev/null 2>&1 ||
			want=1
		run estctl verify "$F/$c.pem" --cacert "$F/ca.pem"
		[ "$status" -eq "$want" ] || fail "$c: estctl $status, openssl $want"
	done
}

@test "verify says when a certificate expired, from openssl ca's explicit dates" {
	run -1 --separate-stderr estctl verify "$F/old.pem" --cacert "$F/ca.pem"
	assert_equal "$stderr" "estctl verify: $F/old.pem: expired on 2025-01-01T00:00:00Z"
	assert_line "valid:      no"
}

@test "verify checks the root's own validity at TIME" {
	# In 2024 old.pem was current, but the root was made today.
	run -1 --separate-stderr estctl verify "$F/old.pem" --cacert "$F/ca.pem" --at 2024-06-30T12:00:00Z
	assert_equal "$stderr" "estctl verify: $F/old.pem: issuer 'CN=Test Root CA' not yet valid until $(openssl_date "$F/ca.pem" startdate)"
	# In 2099 future.pem is current, but the ten-year root has expired.
	run -1 --separate-stderr estctl verify "$F/future.pem" --cacert "$F/ca.pem" --at 2099-06-01T00:00:00+02:00
	assert_equal "$stderr" "estctl verify: $F/future.pem: issuer 'CN=Test Root CA' expired on $(openssl_date "$F/ca.pem" enddate)"
}

@test "verify says until when a certificate is not yet valid" {
	run -1 --separate-stderr estctl verify "$F/future.pem" --cacert "$F/ca.pem"
	assert_equal "$stderr" "estctl verify: $F/future.pem: not yet valid until 2099-01-01T00:00:00Z"
}

@test "verify --at reads RFC 3339 offsets" {
	local nb
	nb=$(openssl_date "$F/leaf.pem" startdate)
	# One second before notBefore, written in UTC and as the same instant at +02:00.
	local before at2
	before=$(date -u -d "$nb - 1 second" +%Y-%m-%dT%H:%M:%SZ)
	# (No TZ=: without tzdata date would silently use UTC and the test would pass wrongly.)
	at2=$(date -u -d "$nb - 1 second + 2 hours" +%Y-%m-%dT%H:%M:%S+02:00)
	run -1 --separate-stderr estctl verify "$F/leaf.pem" --cacert "$F/ca.pem" --at "$before"
	assert_equal "$stderr" "estctl verify: $F/leaf.pem: not yet valid until $nb"
	run -1 --separate-stderr estctl verify "$F/leaf.pem" --cacert "$F/ca.pem" --at "$at2"
	assert_equal "$stderr" "estctl verify: $F/leaf.pem: not yet valid until $nb"
	run -0 estctl verify "$F/leaf.pem" --cacert "$F/ca.pem" --at "$nb"
}

@test "verify --at far ahead finds a current certificate expired" {
	run -1 --separate-stderr estctl verify "$F/leaf.pem" --cacert "$F/ca.pem" \
		--at 2040-01-01T00:00:00Z
	assert_equal "$stderr" "estctl verify: $F/leaf.pem: expired on $(openssl_date "$F/leaf.pem" enddate)"
}

@test "verify --at checks the intermediate's validity too" {
	local at
	at=$(date -u -d '+1500 days' +%Y-%m-%dT%H:%M:%SZ)
	run -0 estctl verify "$F/long.pem" --cacert "$F/bundle-with-inter.pem"
	run -1 --separate-stderr estctl verify "$F/long.pem" --cacert "$F/bundle-with-inter.pem" --at "$at"
	assert_equal "$stderr" "estctl verify: $F/long.pem: issuer 'CN=inter' expired on $(openssl_date "$F/inter.pem" enddate)"
}

@test "verify --key accepts the certificate's own key" {
	run -0 estctl verify "$F/leaf.pem" --cacert "$F/ca.pem" --key "$F/leaf.key"
	assert_line "key match:  yes"
}

@test "verify --key refuses another key" {
	run -1 --separate-stderr estctl verify "$F/leaf.pem" --cacert "$F/ca.pem" --key "$F/wrong.key"
	assert_equal "$stderr" "estctl verify: $F/leaf.pem: key $F/wrong.key does not match the certificate"
	assert_line "chain:      valid"
	assert_line "key match:  no"
}

@test "verify --expires-within 30d exits 1 on a 10-day certificate, 5d exits 0" {
	run -1 --separate-stderr estctl verify "$F/ten.pem" --cacert "$F/ca.pem" --expires-within 30d
	assert_equal "$stderr" "estctl verify: $F/ten.pem: renewal due: expires on $(openssl_date "$F/ten.pem" enddate), within 30d"
	assert_line "expires within 30d: yes"
	assert_line "valid:      yes"
	run -0 --separate-stderr estctl verify "$F/ten.pem" --cacert "$F/ca.pem" --expires-within 5d
	assert_equal "$stderr" ""
	assert_line "expires within 5d: no"
	run -0 estctl verify "$F/ten.pem" --cacert "$F/ca.pem" --expires-within 200h
	run -1 estctl verify "$F/ten.pem" --cacert "$F/ca.pem" --expires-within 300h
}

@test "verify --json prints one object with the right values" {
	run -0 --separate-stderr estctl verify "$F/leaf.pem" --cacert "$F/ca.pem" --key "$F/leaf.key" \
		--expires-within 5d --json
	printf '%s' "$output" | python3 -m json.tool >/dev/null
	assert_equal "$(json_field valid)" true
	assert_equal "$(json_field reason)" null
	assert_equal "$(json_field subject)" '"CN=leaf"'
	assert_equal "$(json_field issuer)" '"CN=Test Root CA"'
	assert_equal "$(json_field serial)" "\"$(openssl x509 -in "$F/leaf.pem" -noout -serial |
		cut -d= -f2 | tr A-F a-f)\""
	assert_equal "$(json_field not_before)" "\"$(openssl_date "$F/leaf.pem" startdate)\""
	assert_equal "$(json_field not_after)" "\"$(openssl_date "$F/leaf.pem" enddate)\""
	assert_equal "$(json_field key_match)" true
	assert_equal "$(json_field profile)" null
	assert_equal "$(json_field expires_within)" false
}

@test "verify --json reports why a certificate is not valid" {
	run -1 --separate-stderr estctl verify "$F/ten.pem" --cacert "$F/ca.pem" --key "$F/wrong.key" \
		--expires-within 30d --json
	assert_equal "$(json_field valid)" false
	assert_equal "$(json_field reason)" "\"$F/ten.pem: key $F/wrong.key does not match the certificate\""
	assert_equal "$(json_field key_match)" false
	assert_equal "$(json_field expires_within)" true
	run -1 --separate-stderr estctl verify "$F/old.pem" --cacert "$F/ca.pem" --json
	assert_equal "$(json_field reason)" "\"$F/old.pem: expired on 2025-01-01T00:00:00Z\""
	assert_equal "$(json_field key_match)" null
	assert_equal "$(json_field expires_within)" null
}

@test "verify names the GnuTLS limit on a certificate carrying the profile OID" {
	# OpenSSL writes and reads the 128-bit arc; GnuTLS 3.7 refuses the whole
	# certificate (docs/DECISIONS.md). estctl says why instead of "not a certificate".
	run openssl x509 -in "$F/prof.pem" -noout -text
	assert_output --partial "$VERIFY_PROFILE_OID"
	run -65 --separate-stderr estctl verify "$F/prof.pem" --cacert "$F/ca.pem"
	assert_one_line_error
	[[ "$stderr" == *"prof.pem: carries the device-profile extension $VERIFY_PROFILE_OID, whose 128-bit arc GnuTLS"*"cannot parse" ]] || fail "$stderr"
}

@test "verify shows the profile of the seed's legacy extension" {
	run -0 estctl verify "$F/legacy.pem" --cacert "$F/ca.pem"
	assert_output --partial "DeviceBeta"
	assert_output --partial "topic/DeviceBeta/telemetry"
	run -0 --separate-stderr estctl verify "$F/legacy.pem" --cacert "$F/ca.pem" --json
	assert_equal "$(json_field profile.thing_name)" '"DeviceBeta"'
	assert_equal "$(json_field profile.permissions.0.action)" '"connect"'
	assert_equal "$(json_field profile.permissions.1.effect)" '"deny"'
	assert_equal "$(json_field profile.permissions.1.resources)" '["topic/DeviceBeta/telemetry"]'
}

@test "verify exits 65 on a file that holds no certificate" {
	echo "not a certificate" >garbage.pem
	run -65 --separate-stderr estctl verify garbage.pem --cacert "$F/ca.pem"
	assert_one_line_error
	[[ "$stderr" == "estctl verify: garbage.pem: not a certificate"* ]] || fail "$stderr"
	run -65 --separate-stderr estctl verify "$F/leaf.pem" --cacert garbage.pem
	[[ "$stderr" == "estctl verify: garbage.pem: not a certificate"* ]] || fail "$stderr"
	run -65 --separate-stderr estctl verify "$F/leaf.pem" --cacert "$F/ca.pem" --key garbage.pem
	assert_one_line_error
}

@test "verify exits 66 when a file is missing" {
	run -66 --separate-stderr estctl verify missing.pem --cacert "$F/ca.pem"
	assert_one_line_error
	[[ "$stderr" == "estctl verify: missing.pem: "* ]] || fail "$stderr"
	run -66 --separate-stderr estctl verify "$F/leaf.pem" --cacert missing.pem
	assert_one_line_error
	run -66 --separate-stderr estctl verify "$F/leaf.pem" --cacert "$F/ca.pem" --key missing.key
	assert_one_line_error
	run -66 --separate-stderr estctl verify --csr missing.csr
	assert_one_line_error
}

@test "verify exits 64 on a command line that makes no sense" {
	run -64 --separate-stderr estctl verify "$F/leaf.pem"
	[[ "$stderr" == *"--cacert is required"* ]] || fail "$stderr"
	run -64 --separate-stderr estctl verify --cacert "$F/ca.pem"
	run -64 --separate-stderr estctl verify "$F/leaf.pem" "$F/ten.pem" --cacert "$F/ca.pem"
	run -64 --separate-stderr estctl verify "$F/leaf.pem" --cacert "$F/ca.pem" --at yesterday
	[[ "$stderr" == *"not an RFC 3339 time"* ]] || fail "$stderr"
	run -64 estctl verify "$F/leaf.pem" --cacert "$F/ca.pem" --at 2026-02-30T00:00:00Z
	run -64 --separate-stderr estctl verify "$F/leaf.pem" --cacert "$F/ca.pem" --expires-within soon
	[[ "$stderr" == *"not a duration"* ]] || fail "$stderr"
	run -64 estctl verify --csr "$F/req.csr" --cacert "$F/ca.pem"
	run -64 estctl verify "$F/leaf.pem" --csr "$F/req.csr"
	run -64 --separate-stderr estctl verify --expires-witin 30d
	[[ "$stderr" == *"did you mean '--expires-within'"* ]] || fail "$stderr"
}

@test "verify --csr accepts a CSR made by openssl req" {
	run -0 --separate-stderr estctl verify --csr "$F/req.csr"
	assert_equal "$stderr" ""
	assert_line "subject:    CN=DeviceAlpha"
	assert_line "signature:  valid"
	assert_line "profile:    none"
	run -0 --separate-stderr estctl verify --csr "$F/req.csr" --json
	printf '%s' "$output" | python3 -m json.tool >/dev/null
	assert_equal "$(json_field valid)" true
	assert_equal "$(json_field subject)" '"CN=DeviceAlpha"'
	assert_equal "$(json_field profile)" null
}

@test "verify --csr refuses a CSR whose signature was tampered with" {
	run openssl req -inform DER -in "$F/badsig.csr" -noout -verify
	assert_output --partial "verify failure"
	run -1 --separate-stderr estctl verify --csr "$F/badsig.csr"
	[[ "$stderr" == "estctl verify: "* ]] || fail "$stderr"
	assert_line "signature:  invalid"
	run -1 --separate-stderr estctl verify --csr "$F/badsig.csr" --json
	assert_equal "$(json_field valid)" false
}

@test "verify --csr shows the profile a CSR asks for" {
	run -0 --separate-stderr estctl verify --csr "$F/reqprof.csr" --json
	assert_equal "$(json_field profile.thing_name)" '"DeviceAlpha"'
	assert_equal "$(json_field profile.permissions.0.resources)" '["client/DeviceAlpha"]'
}

@test "verify --csr exits 65 on a file that is no CSR" {
	run -65 --separate-stderr estctl verify --csr "$F/leaf.pem"
	assert_one_line_error
}
