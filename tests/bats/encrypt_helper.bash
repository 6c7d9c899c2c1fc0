# Helpers for tests/bats/encrypt.bats: test CSRs, enrollment keys, and the
# hex key ids openssl cms -secretkeyid wants.

# A P-256 CSR for /CN=DeviceAlpha as DER in csr.der (key in k.pem).
make_csr() {
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-subj /CN=DeviceAlpha -keyout k.pem -outform DER -out csr.der 2>/dev/null
}

# An enrollment key file: 64 hex characters and a newline.
make_key() { openssl rand -hex 32 >"$1"; }

# The hex form of an ASCII key id, for -secretkeyid.
hexid() { printf %s "$1" | od -An -tx1 | tr -d ' \n'; }

# openssl cms -decrypt of DER envelope $1 with key file $2 and id $3 into $4.
ossl_open() {
	openssl cms -decrypt -binary -inform DER -secretkey "$(cat "$2")" \
		-secretkeyid "$(hexid "$3")" -in "$1" -out "$4"
}

# openssl cms -encrypt of file $1 with key file $2 and id $3 into DER $4.
ossl_seal() {
	openssl cms -encrypt -binary -aes-256-gcm -secretkey "$(cat "$2")" \
		-secretkeyid "$(hexid "$3")" -outform DER -in "$1" -out "$4"
}

# open_refusal FILE TAG: nothing when `encrypt -d` refuses FILE cleanly (exit
# 65, nothing on stdout, one line on stderr); otherwise " TAG" and what was wrong.
open_refusal() {
	local rc=0
	estctl encrypt -d --key-file fleet-key-1.key "$1" >out 2>err || rc=$?
	if [ "$rc" -eq 0 ]; then
		printf ' %s' "$2"
		return 0
	fi
	[ "$rc" -eq 65 ] || printf ' %s(exit)' "$2"
	[ ! -s out ] || printf ' %s(stdout)' "$2"
	[ "$(wc -l <err)" -eq 1 ] || printf ' %s(stderr)' "$2"
	return 0
}
