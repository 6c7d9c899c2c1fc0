# Helpers for keygen.bats: the key-loading check program and independent
# readers of the keys estctl writes.

: "${BUILDDIR:=$BATS_TEST_DIRNAME/../..}"

# keyload FILE: est_key_load FILE and print the type it found (tests/unit/keyload.c).
keyload() { "$BUILDDIR/tests/unit/keyload" "$@"; }

# json_get FIELD: FIELD of the JSON object in $output ("" when absent).
json_get() {
	python3 -c 'import json, sys; print(json.loads(sys.argv[1]).get(sys.argv[2], ""))' "$output" "$1"
}

# What `openssl pkey -text` and `certtool --key-info` print for each key type.
openssl_says() {
	case $1 in
	ec-p256) echo "NIST CURVE: P-256" ;;
	ec-p384) echo "NIST CURVE: P-384" ;;
	ed25519) echo "ED25519 Private-Key:" ;;
	rsa*) echo "Private-Key: (${1#rsa} bit, 2 primes)" ;;
	esac
}
certtool_says() {
	case $1 in
	ec-p256) echo "curve:	SECP256R1" ;;
	ec-p384) echo "curve:	SECP384R1" ;;
	ed25519) echo "Public Key Algorithm: EdDSA (Ed25519)" ;;
	rsa*) echo "(${1#rsa} bits)" ;;
	esac
}

# The entries of the current directory, hidden ones included, one per line
# (less the files bats keeps for `run --separate-stderr`).
dir_entries() { ls -A1 . | grep -v "^separate-stderr-" || true; }
