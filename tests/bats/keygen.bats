#!/usr/bin/env bats
# estctl keygen: device keys and enrollment keys, their modes, and the keys
# estctl reads back (est_key_load through tests/unit/keyload).

load helper
load keygen_helper

ASYM_TYPES="ec-p256 ec-p384 ed25519 rsa2048 rsa3072 rsa4096"

@test "keygen writes every key type so that openssl and certtool read the right algorithm" {
	for t in $ASYM_TYPES; do
		run -0 --separate-stderr estctl keygen -t "$t" -o "$t.key"
		assert_output ""
		assert_equal "$stderr" ""
		assert_equal "$(head -1 "$t.key")" "-----BEGIN PRIVATE KEY-----"
		run -0 openssl pkey -in "$t.key" -noout -text
		assert_output --partial "$(openssl_says "$t")"
		run -0 certtool --key-info --infile "$t.key"
		assert_output --partial "$(certtool_says "$t")"
	done
}

@test "keygen makes an EC P-256 key by default, on standard output" {
	run -0 --separate-stderr estctl keygen
	assert_equal "$stderr" ""
	run -0 openssl pkey -noout -text <<<"$output"
	assert_output --partial "NIST CURVE: P-256"
	assert_equal "$(dir_entries)" ""
}

@test "keygen writes keys mode 0600 even under umask 000" {
	umask 000
	for t in ec-p256 ed25519 aes256; do
		run -0 estctl keygen -t "$t" -o "$t.key"
		assert_equal "$(file_mode "$t.key")" 600
	done
	run -0 estctl keygen -o k --pub k.pub
	assert_equal "$(file_mode k)" 600
	assert_equal "$(file_mode k.pub)" 644
}

@test "keygen refuses to overwrite an existing key and leaves it untouched" {
	estctl keygen -o k
	local before; before=$(sha256sum k)
	run -73 --separate-stderr estctl keygen -o k
	assert_one_line_error
	[[ "$stderr" == "estctl keygen: k: already exists (use --force to replace it)" ]] || fail "$stderr"
	assert_equal "$(sha256sum k)" "$before"
	assert_equal "$(dir_entries)" "k"
}

@test "keygen --force replaces a key with a new one, still mode 0600" {
	printf 'old\n' > k
	chmod 644 k
	run -0 estctl keygen --force -o k
	assert_equal "$(file_mode k)" 600
	run -0 openssl pkey -in k -noout
	estctl keygen -t aes256 --force -o k
	assert_equal "$(file_mode k)" 600
	assert_equal "$(stat -c %s k)" 65
	assert_equal "$(dir_entries)" "k"
}

@test "keygen --pub writes the public key openssl derives from the private key" {
	for t in ec-p256 ed25519 rsa2048; do
		run -0 estctl keygen -t "$t" -o "$t.key" --pub "$t.pub"
		assert_equal "$(cat "$t.pub")" "$(openssl pkey -in "$t.key" -pubout)"
		run -0 openssl pkey -pubin -in "$t.pub" -noout
	done
}

@test "keygen --pub refuses an existing public key file and keeps no private key" {
	echo keep > k.pub
	run -73 --separate-stderr estctl keygen -o k --pub k.pub
	assert_one_line_error
	[[ "$stderr" == *"k.pub: already exists"* ]] || fail "$stderr"
	assert_equal "$(cat k.pub)" keep
	assert_equal "$(dir_entries)" "k.pub"
}

@test "keygen removes its new public key when the private key cannot be written" {
	echo keep > k
	run -73 --separate-stderr estctl keygen -o k --pub k.pub
	[[ "$stderr" == *"k: already exists"* ]] || fail "$stderr"
	assert_equal "$(dir_entries)" "k"
}

@test "keygen --json reports the type, the file and the SHA-256 of the public key" {
	for t in ec-p256 ed25519 rsa2048; do
		run -0 --separate-stderr estctl keygen -t "$t" -o "$t.key" --json
		assert_equal "$(json_get type)" "$t"
		assert_equal "$(json_get file)" "$t.key"
		assert_equal "$(json_get public_key_sha256)" \
			"$(openssl pkey -in "$t.key" -pubout -outform DER | sha256sum | cut -d' ' -f1)"
	done
}

@test "keygen --json for an enrollment key gives its id, the file name without extension" {
	run -0 --separate-stderr estctl keygen -t aes256 -o fleet-key-1.key --json
	assert_equal "$(json_get type)" aes256
	assert_equal "$(json_get key_id)" fleet-key-1
	assert_equal "$(json_get public_key_sha256)" ""
}

@test "keygen --json without -o is a usage error" {
	run -64 --separate-stderr estctl keygen --json
	assert_output ""
	[[ "$stderr" == *"--json"* ]] || fail "$stderr"
}

@test "keygen -t aes256 writes 64 lowercase hex characters and a newline" {
	run -0 estctl keygen -t aes256 -o e.key
	assert_equal "$(stat -c %s e.key)" 65
	assert_equal "$(tail -c 1 e.key | od -An -tx1 | tr -d ' ')" 0a
	grep -Eq '^[0-9a-f]{64}$' e.key || fail "not 64 lowercase hex: $(cat e.key)"
	assert_equal "$(wc -l < e.key)" 1
}

@test "two enrollment keys differ" {
	estctl keygen -t aes256 -o a.key
	estctl keygen -t aes256 -o b.key
	[ "$(cat a.key)" != "$(cat b.key)" ] || fail "the same key twice"
}

@test "openssl cms seals and opens with a keygen enrollment key" {
	estctl keygen -t aes256 -o e.key
	printf 'hello fleet' > msg
	run -0 openssl cms -encrypt -binary -aes-256-gcm -secretkey "$(cat e.key)" -secretkeyid 6b \
		-in msg -outform DER -out sealed.der
	run -0 openssl cms -decrypt -binary -inform DER -in sealed.der \
		-secretkey "$(cat e.key)" -secretkeyid 6b
	assert_output "hello fleet"
}

@test "keygen -t aes256 --pub is a usage error" {
	run -64 --separate-stderr estctl keygen -t aes256 -o e.key --pub e.pub
	assert_output ""
	[[ "$stderr" == *"an aes256 enrollment key has no public key"* ]] || fail "$stderr"
	assert_equal "$(dir_entries)" ""
}

@test "an unknown key type is a usage error listing the types" {
	run -64 --separate-stderr estctl keygen -t ec-p521 -o k
	assert_output ""
	[[ "$stderr" == *"unknown key type 'ec-p521' (expected ec-p256, ec-p384, ed25519, rsa2048, rsa3072, rsa4096 or aes256)"* ]] ||
		fail "$stderr"
	[[ "$stderr" == *"usage: estctl keygen"* ]] || fail "$stderr"
	assert_equal "$(dir_entries)" ""
}

@test "keygen refuses operands and unknown options" {
	run -64 --separate-stderr estctl keygen k.pem
	[[ "$stderr" == *"unexpected argument 'k.pem'"* ]] || fail "$stderr"
	run -64 --separate-stderr estctl keygen --forse
	[[ "$stderr" == *"did you mean '--force'?"* ]] || fail "$stderr"
}

@test "keygen into a missing directory exits 66 naming the path" {
	run -66 --separate-stderr estctl keygen -o nodir/k
	assert_one_line_error
	[[ "$stderr" == "estctl keygen: nodir/k: "* ]] || fail "$stderr"
	assert_equal "$(dir_entries)" ""
}

@test "keygen leaves no temporary file behind, after success or failure" {
	mkdir d
	estctl keygen -o d/k --pub d/k.pub
	estctl keygen -t aes256 -o d/e
	run -73 estctl keygen -o d/k
	run -73 estctl keygen -t aes256 -o d/e
	run -64 estctl keygen -t aes256 -o d/x --pub d/y
	assert_equal "$(ls -A1 d)" "$(printf '%s\n' e k k.pub)"
}

@test "keygen in a read-only directory fails with 74 and writes nothing" {
	[ "$(id -u)" -ne 0 ] || skip "root ignores directory permissions"
	mkdir ro && chmod 555 ro
	run -74 --separate-stderr estctl keygen -o ro/k
	assert_one_line_error
	assert_equal "$(ls -A ro)" ""
}

@test "a write failure on standard output is exit 74" {
	[ -w /dev/full ] || skip "no /dev/full"
	run -74 --separate-stderr bash -c '"$ESTCTL" keygen > /dev/full'
	[[ "$stderr" == *"write failure on standard output"* ]] || fail "$stderr"
}

@test "estctl reads back every key type keygen writes" {
	for t in $ASYM_TYPES; do
		estctl keygen -t "$t" -o "$t.key"
		run -0 keyload "$t.key"
		assert_output "$t"
	done
}

@test "estctl reads the PKCS#8 keys openssl genpkey writes, PEM and DER" {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out p256.pem
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out p384.pem
	openssl genpkey -algorithm ED25519 -out ed.pem
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.pem
	openssl pkey -in p384.pem -outform DER -out p384.der
	openssl pkey -in ed.pem -outform DER -out ed.der
	for f in p256.pem:ec-p256 p384.pem:ec-p384 ed.pem:ed25519 rsa.pem:rsa2048 \
		 p384.der:ec-p384 ed.der:ed25519; do
		run -0 keyload "${f%%:*}"
		assert_output "${f#*:}"
	done
}

@test "estctl reads traditional RSA and EC keys from openssl, PEM and DER" {
	openssl genrsa -traditional -out rsa.pem 3072 2>/dev/null
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out p8.pem
	openssl ec -in p8.pem -out ec.pem 2>/dev/null
	openssl ec -in p8.pem -outform DER -out ec.der 2>/dev/null
	openssl rsa -in rsa.pem -traditional -outform DER -out rsa.der 2>/dev/null
	assert_equal "$(head -1 rsa.pem)" "-----BEGIN RSA PRIVATE KEY-----"
	assert_equal "$(head -1 ec.pem)" "-----BEGIN EC PRIVATE KEY-----"
	for f in rsa.pem:rsa3072 ec.pem:ec-p256 ec.der:ec-p256 rsa.der:rsa3072; do
		run -0 keyload "${f%%:*}"
		assert_output "${f#*:}"
	done
}

@test "estctl reads the keys certtool writes" {
	certtool --generate-privkey --key-type ecdsa --curve secp384r1 --outfile ec.pem 2>/dev/null
	certtool --generate-privkey --key-type ed25519 --outfile ed.pem 2>/dev/null
	certtool --generate-privkey --key-type rsa --bits 2048 --outfile rsa.pem 2>/dev/null
	certtool --generate-privkey --key-type ecdsa --curve secp256r1 --pkcs8 --password '' \
		--outfile p8.pem 2>/dev/null
	for f in ec.pem:ec-p384 ed.pem:ed25519 rsa.pem:rsa2048 p8.pem:ec-p256; do
		run -0 keyload "${f%%:*}"
		assert_output "${f#*:}"
	done
}

@test "estctl refuses garbage, encrypted and public keys with 65 and one line" {
	printf 'not a key\n' > garbage
	head -c 300 /dev/urandom > random
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -aes256 -pass pass:x -out enc.pem
	openssl pkcs8 -topk8 -in enc.pem -passin pass:x -v2 aes256 -passout pass:x -outform DER -out enc.der
	openssl genrsa -traditional -aes256 -passout pass:x -out trad-enc.pem 2048 2>/dev/null
	openssl pkey -in enc.pem -passin pass:x -pubout -out pub.pem
	for f in garbage:"not a private key" random:"not a private key" \
		 enc.pem:"encrypted private keys are not supported" \
		 enc.der:"encrypted private keys are not supported" \
		 trad-enc.pem:"encrypted private keys are not supported" \
		 pub.pem:"a public key, not a private key"; do
		run -65 --separate-stderr keyload "${f%%:*}"
		assert_one_line_error
		[[ "$stderr" == "keyload: ${f%%:*}: ${f#*:}"* ]] || fail "${f%%:*}: $stderr"
	done
}

@test "estctl refuses a key type it does not use (RSA 1024, P-521)" {
	openssl genrsa -out rsa1024.pem 1024 2>/dev/null
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-521 -out p521.pem
	for f in rsa1024.pem p521.pem; do
		run -65 --separate-stderr keyload "$f"
		[[ "$stderr" == "keyload: $f: unsupported key type"* ]] || fail "$f: $stderr"
	done
}

@test "estctl reports a missing key file as missing input (66)" {
	run -66 --separate-stderr keyload nope.pem
	[[ "$stderr" == "keyload: nope.pem: "* ]] || fail "$stderr"
}

@test "the man page documents every option keygen --help lists" {
	local man="$SRCDIR/man/estctl-keygen.1" o
	for o in $(estctl keygen --list-options | sed -n 's/^--\([a-z-]*\)=\{0,1\}$/\1/p'); do
		grep -q -- "\\\\-\\\\-$o" "$man" || fail "--$o is not in estctl-keygen.1"
	done
	for t in ec-p256 ec-p384 ed25519 rsa2048 rsa3072 rsa4096 aes256; do
		grep -q -- "${t//-/\\\\-}" "$man" || fail "type $t is not in estctl-keygen.1"
	done
}
