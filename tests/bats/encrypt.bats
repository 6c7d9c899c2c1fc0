#!/usr/bin/env bats
# estctl encrypt: the sealed CSR of DESIGN.md 4.3, checked against openssl cms
# in both directions, and its refusals (exit 65, one line, nothing on stdout).

load helper
load encrypt_helper

setup() {
	cd "$BATS_TEST_TMPDIR" || return 1
	umask 022
	make_csr
	make_key fleet-key-1.key
}

@test "encrypt seals a CSR that openssl cms opens to the identical DER" {
	run -0 --separate-stderr estctl encrypt --key-file fleet-key-1.key -o env.der csr.der
	assert_output ""
	ossl_open env.der fleet-key-1.key fleet-key-1 back.der
	cmp back.der csr.der
}

@test "encrypt -d opens an envelope made by openssl cms to the identical CSR" {
	ossl_seal csr.der fleet-key-1.key fleet-key-1 env.der
	estctl encrypt -d --key-file fleet-key-1.key env.der >back.der
	cmp back.der csr.der
}

@test "encrypt writes the same structure as openssl cms" {
	ossl_seal csr.der fleet-key-1.key fleet-key-1 theirs.der
	estctl encrypt --key-file fleet-key-1.key csr.der >ours.der
	# Same tags, lengths and OIDs everywhere; only the random bytes differ.
	# (An OCTET STRING of printable random bytes is shown as text, not a hex dump.)
	strip() { openssl asn1parse -inform DER -in "$1" | sed -E 's/(prim: OCTET STRING +).*/\1/'; }
	assert_equal "$(strip ours.der)" "$(strip theirs.der)"
	run -0 openssl asn1parse -inform DER -in ours.der
	assert_output --partial "id-smime-ct-authEnvelopedData"
	assert_output --partial "id-aes256-wrap"
	assert_output --partial "aes-256-gcm"
	assert_output --partial ":fleet-key-1"
}

@test "encrypt and encrypt -d round-trip stdin to stdout" {
	estctl encrypt --key-file fleet-key-1.key <csr.der | estctl encrypt -d --key-file fleet-key-1.key - >back.der
	cmp back.der csr.der
}

@test "encrypt --base64 writes 64-character lines that decode to a DER envelope" {
	run -0 --separate-stderr estctl encrypt --base64 --key-file fleet-key-1.key csr.der
	local lines
	lines=$(printf '%s\n' "$output" | wc -l)
	[ "$lines" -ge 2 ]
	# Every line but the last is exactly 64 characters; the last at most 64.
	printf '%s\n' "$output" | head -n -1 | awk 'length($0) != 64 { exit 1 }'
	[ "$(printf '%s\n' "$output" | tail -n 1 | awk '{ print length($0) }')" -le 64 ]
	printf '%s\n' "$output" | openssl base64 -d >env.der
	ossl_open env.der fleet-key-1.key fleet-key-1 back.der
	cmp back.der csr.der
}

@test "encrypt -d reads base64 input, with or without line breaks" {
	ossl_seal csr.der fleet-key-1.key fleet-key-1 env.der
	openssl base64 -in env.der >env.b64
	estctl encrypt -d --key-file fleet-key-1.key env.b64 >back1.der
	cmp back1.der csr.der
	openssl base64 -A -in env.der >env1.b64
	estctl encrypt -d --key-file fleet-key-1.key <env1.b64 >back2.der
	cmp back2.der csr.der
}

@test "encrypt -d reads an openssl PEM envelope" {
	openssl cms -encrypt -binary -aes-256-gcm -secretkey "$(cat fleet-key-1.key)" \
		-secretkeyid "$(hexid fleet-key-1)" -outform PEM -in csr.der -out env.pem
	estctl encrypt -d --key-file fleet-key-1.key env.pem >back.der
	cmp back.der csr.der
}

@test "encrypt reads a CSR as PEM or base64 and seals its DER" {
	openssl req -inform DER -in csr.der -outform PEM -out csr.pem
	openssl base64 -in csr.der >csr.b64
	for f in csr.pem csr.b64; do
		estctl encrypt --key-file fleet-key-1.key -o "$f.env" "$f"
		ossl_open "$f.env" fleet-key-1.key fleet-key-1 back.der
		cmp back.der csr.der
	done
}

@test "encrypt -d --pem writes the CSR as PEM that openssl reads" {
	estctl encrypt --key-file fleet-key-1.key -o env.der csr.der
	run -0 --separate-stderr estctl encrypt -d --pem --key-file fleet-key-1.key env.der
	assert_line --index 0 "-----BEGIN CERTIFICATE REQUEST-----"
	assert_equal "$output" "$(openssl req -inform DER -in csr.der -outform PEM)"
}

@test "the key id defaults to the key file's name without its extension" {
	mkdir keys
	make_key keys/fleet-key-7.key
	estctl encrypt --key-file keys/fleet-key-7.key -o env.der csr.der
	run -0 openssl asn1parse -inform DER -in env.der
	assert_output --partial "OCTET STRING      :fleet-key-7"
	ossl_open env.der keys/fleet-key-7.key fleet-key-7 back.der
	cmp back.der csr.der
}

@test "--key-id names the key in the envelope and must match on opening" {
	estctl encrypt --key-file fleet-key-1.key --key-id KV_Fleet/A -o env.der csr.der
	ossl_open env.der fleet-key-1.key KV_Fleet/A back.der
	cmp back.der csr.der
	estctl encrypt -d --key-file fleet-key-1.key --key-id KV_Fleet/A env.der >back2.der
	cmp back2.der csr.der
	run -65 --separate-stderr estctl encrypt -d --key-file fleet-key-1.key env.der
	assert_one_line_error
	assert_equal "$stderr" "estctl encrypt: env.der: unknown key id 'KV_Fleet/A' (the key given is 'fleet-key-1')"
}

@test "encrypt -d refuses a wrong key with one line and nothing on stdout" {
	estctl encrypt --key-file fleet-key-1.key -o env.der csr.der
	mkdir other
	make_key other/fleet-key-1.key
	run -65 --separate-stderr estctl encrypt -d --key-file other/fleet-key-1.key env.der
	assert_one_line_error
	assert_equal "$stderr" "estctl encrypt: env.der: authentication failed"
}

@test "encrypt -d refuses an envelope sealed for another key id" {
	ossl_seal csr.der fleet-key-1.key fleet-key-2 env.der
	run -65 --separate-stderr estctl encrypt -d --key-file fleet-key-1.key env.der
	assert_one_line_error
	[[ "$stderr" == *"unknown key id 'fleet-key-2'"* ]]
}

@test "encrypt -d refuses a flipped byte in the tag" {
	estctl encrypt --key-file fleet-key-1.key -o env.der csr.der
	flip_byte env.der $(( $(stat -c %s env.der) - 1 )) bad.der
	run -65 --separate-stderr estctl encrypt -d --key-file fleet-key-1.key bad.der
	assert_one_line_error
	assert_equal "$stderr" "estctl encrypt: bad.der: authentication failed"
}

@test "encrypt -d refuses every flipped byte of an openssl envelope" {
	ossl_seal csr.der fleet-key-1.key fleet-key-1 env.der
	local n i bad=""
	n=$(stat -c %s env.der)
	for ((i = 0; i < n; i++)); do
		flip_byte env.der "$i" bad.der
		bad="$bad$(open_refusal bad.der "$i")"
	done
	assert_equal "$bad" ""
}

@test "encrypt -d refuses every truncation of an envelope" {
	estctl encrypt --key-file fleet-key-1.key -o env.der csr.der
	local n i bad=""
	n=$(stat -c %s env.der)
	for ((i = 0; i < n; i++)); do
		head -c "$i" env.der >cut.der
		bad="$bad$(open_refusal cut.der "$i")"
	done
	assert_equal "$bad" ""
}

@test "encrypt -d with -o leaves no file behind when it fails" {
	estctl encrypt --key-file fleet-key-1.key -o env.der csr.der
	flip_byte env.der 200 bad.der
	run -65 --separate-stderr estctl encrypt -d --key-file fleet-key-1.key -o out.der bad.der
	assert_one_line_error
	[ ! -e out.der ]
}

@test "encrypt refuses input that is not a CSR" {
	openssl ecparam -name prime256v1 -genkey -outform DER -out notcsr.der 2>/dev/null
	run -65 --separate-stderr estctl encrypt --key-file fleet-key-1.key notcsr.der
	assert_one_line_error
	[[ "$stderr" == "estctl encrypt: notcsr.der: not a CSR"* ]]
}

@test "encrypt refuses a CSR whose signature does not verify" {
	flip_byte csr.der $(( $(stat -c %s csr.der) - 3 )) bad.der
	run -65 --separate-stderr estctl encrypt --key-file fleet-key-1.key bad.der
	assert_one_line_error
}

@test "encrypt -d refuses input that is not an envelope" {
	run -65 --separate-stderr estctl encrypt -d --key-file fleet-key-1.key csr.der
	assert_one_line_error
	assert_equal "$stderr" "estctl encrypt: csr.der: not a sealed CSR (DER, PEM or base64 expected)"
}

@test "a missing key file exits 66" {
	run -66 --separate-stderr estctl encrypt --key-file nope.key csr.der
	assert_one_line_error
	[[ "$stderr" == *"nope.key"* ]]
}

@test "a missing input file exits 66" {
	run -66 --separate-stderr estctl encrypt --key-file fleet-key-1.key nope.der
	assert_one_line_error
}

@test "a key file that is not 64 hex characters exits 65" {
	printf 'not a key\n' >bad.key
	run -65 --separate-stderr estctl encrypt --key-file bad.key csr.der
	assert_one_line_error
}

@test "encrypt reports usage problems with exit 64" {
	run -64 --separate-stderr estctl encrypt csr.der
	[[ "$stderr" == *"--key-file is required"* ]]
	run -64 --separate-stderr estctl encrypt --pem --key-file fleet-key-1.key csr.der
	run -64 --separate-stderr estctl encrypt -d --base64 --key-file fleet-key-1.key csr.der
	run -64 --separate-stderr estctl encrypt --key-file fleet-key-1.key --key-id 'a b' csr.der
	run -64 --separate-stderr estctl encrypt --key-file fleet-key-1.key csr.der extra
	run -64 --separate-stderr estctl encrypt --key-file - csr.der
	assert_output ""
}

@test "encrypt --help names every option" {
	run -0 estctl encrypt --help
	for o in --decrypt --key-file --key-id --base64 --pem --output; do
		assert_output --partial -- "$o"
	done
}

@test "the man page documents every option of --help" {
	local o man
	man=$(sed 's/\\-/-/g' "$SRCDIR/man/estctl-encrypt.1")
	for o in $(estctl encrypt --list-options | grep '^--' | tr -d '='); do
		grep -qF -- "$o" <<<"$man" || fail "$o missing"
	done
}

@test "an enrollment key from estctl keygen -t aes256 seals and opens" {
	run estctl keygen --help
	[[ "$status" -eq 0 && "$output" == *aes256* ]] || skip "keygen -t aes256 is not in this build"
	estctl keygen -t aes256 -o fleet-key-9.key
	[ "$(file_mode fleet-key-9.key)" = 600 ]
	estctl encrypt --key-file fleet-key-9.key -o env.der csr.der
	ossl_open env.der fleet-key-9.key fleet-key-9 back.der
	cmp back.der csr.der
}
