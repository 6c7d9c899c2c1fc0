#!/usr/bin/env bats
# The server's CA key on a PKCS#11 token: a private SoftHSM2 token per test,
# its key made by p11tool and its certificate by certtool (gnutls-bin), then
# estctl server init --ca-key pkcs11:... and enrollments signed on the token.

load helper
load server_helper

# Distinctive, so that a search for it in outputs and files cannot match a
# port number or a temporary name by chance.
PIN=hsm-pin-7391
TOKEN=estctl-ca
# The key; its PIN comes from a pin-source file (as estctl documents it) or
# from a pin-value attribute.
KEY_URI="pkcs11:token=$TOKEN;object=ca-key;type=private"

setup_file() {
	local t
	for t in softhsm2-util p11tool certtool; do
		command -v "$t" >/dev/null ||
			skip "$t is not installed (Debian packages softhsm2 and gnutls-bin)"
	done
}

setup() {
	cd "$BATS_TEST_TMPDIR" || return 1
	umask 022
	# A token of this test's own, nowhere else on the machine.
	mkdir tokens
	printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
		"$PWD" > softhsm2.conf
	export SOFTHSM2_CONF=$PWD/softhsm2.conf
	softhsm2-util --init-token --free --label "$TOKEN" --pin "$PIN" --so-pin 87654321 \
		>/dev/null || fail "softhsm2-util --init-token failed"
	# GnuTLS (so estctl, p11tool and certtool) finds modules through p11-kit;
	# without SoftHSM's registration there no token can be reached.
	p11tool --list-tokens 2>/dev/null | grep -q "token=$TOKEN\$" ||
		skip "SoftHSM2 is not registered with p11-kit (no softhsm2.module), GnuTLS cannot load it"
	make_token_ca
}

# An EC P-256 key generated on the token (never extractable) and a
# self-signed CA certificate for it in ca.pem.
make_token_ca() {
	GNUTLS_PIN=$PIN p11tool --batch --login --generate-privkey=ecdsa --curve=secp256r1 \
		--label ca-key --id 01 "pkcs11:token=$TOKEN" >/dev/null 2>&1 ||
		fail "p11tool --generate-privkey failed"
	cat > ca.tmpl <<-EOF
	cn = "estctl HSM test CA"
	expiration_days = 30
	ca
	cert_signing_key
	crl_signing_key
	EOF
	GNUTLS_PIN=$PIN certtool --generate-self-signed --load-privkey "$KEY_URI" \
		--template ca.tmpl --outfile ca.pem >/dev/null 2>&1 ||
		fail "certtool --generate-self-signed on the token failed"
}

@test "the token's CA key cannot leave it" {
	run -0 env GNUTLS_PIN=$PIN p11tool --login --list-privkeys "pkcs11:token=$TOKEN"
	assert_output --partial 'CKA_NEVER_EXTRACTABLE'
	assert_output --partial 'CKA_SENSITIVE'
	openssl x509 -in ca.pem -noout -ext basicConstraints,keyUsage | grep -q 'CA:TRUE'
	openssl x509 -in ca.pem -noout -ext keyUsage | grep -q 'Certificate Sign'
}

@test "server init imports a PKCS#11 CA key and writes no CA key file" {
	run -0 --separate-stderr estctl server init st --ca-key "$KEY_URI?pin-value=$PIN" \
		--ca-cert ca.pem --json
	assert_equal "$stderr" ""
	cmp ca.pem st/ca/cert.pem
	assert_equal "$(ls st/ca)" cert.pem
	# The only private key in the state directory is the TLS key, and it is
	# not the CA's.
	assert_equal "$(grep -rl 'PRIVATE KEY' st)" st/tls/key.pem
	[ "$(openssl pkey -in st/tls/key.pem -pubout)" != "$(openssl x509 -in ca.pem -noout -pubkey)" ]
	# The server logs in with the URI from the config, which is private
	# since this URI holds the PIN.
	assert_equal "$(jq -r .ca.key st/config.json)" "$KEY_URI?pin-value=$PIN"
	assert_equal "$(file_mode st)" 700
	assert_equal "$(file_mode st/config.json)" 600
	# The TLS certificate was signed on the token.
	openssl verify -CAfile ca.pem st/tls/cert.pem
}

@test "six devices enrolled at once all get certificates signed on the token" {
	make_state --ca-key "$KEY_URI?pin-value=$PIN" --ca-cert ca.pem
	add_user alice pw
	start_server
	local i pids=()
	for i in 1 2 3 4 5 6; do
		mkdir d$i
		(cd d$i && csr dev.key Device$i > req.b64)
	done
	for i in 1 2 3 4 5 6; do
		(cd d$i && post simpleenroll req.b64 -u alice:pw > code) 3>&- &
		pids+=($!)
	done
	for i in "${pids[@]}"; do
		wait "$i" || fail "curl $i failed"
	done
	for i in 1 2 3 4 5 6; do
		assert_equal "$(cat d$i/code)" 200
		certs_of d$i/body > d$i/cert.pem
		openssl verify -CAfile ca.pem d$i/cert.pem
		openssl x509 -in d$i/cert.pem -noout -subject | grep -q "CN *= *Device$i\$"
		cmp <(openssl x509 -in d$i/cert.pem -noout -pubkey) \
			<(openssl pkey -in d$i/dev.key -pubout)
	done
	run -0 estctl server list st --json
	assert_equal "$(jq -r '.devices[].thing' <<<"$output" | sort | tr '\n' ' ')" \
		"Device1 Device2 Device3 Device4 Device5 Device6 "
	assert_equal "$(jq '[.devices[] | select(.status == "active")] | length' <<<"$output")" 6
	stop_server
	assert_equal "$(grep -c '"event":"certificate_issued"' st/audit.log)" 6
}

@test "server init refuses a wrong PIN with 66, does not show the PIN and leaves no directory" {
	run -66 --separate-stderr estctl server init st --ca-key "$KEY_URI?pin-value=1111" \
		--ca-cert ca.pem
	assert_one_line_error
	[[ "$stderr" == "estctl server init: "*"PIN"* ]] || fail "unexpected message: $stderr"
	[[ "$stderr" != *1111* ]] || fail "the PIN is in the message: $stderr"
	[ ! -e st ]
	[ -z "$(ls -d st.init-* 2>/dev/null)" ]
}

@test "server init without a PIN is refused with 66 and leaves no directory" {
	run -66 --separate-stderr estctl server init st --ca-key "$KEY_URI" --ca-cert ca.pem
	assert_one_line_error
	[ ! -e st ]
	[ -z "$(ls -d st.init-* 2>/dev/null)" ]
}

@test "server init refuses a URI naming no key with 66 and leaves no directory" {
	run -66 --separate-stderr estctl server init st \
		--ca-key "pkcs11:token=$TOKEN;object=no-such-key;type=private?pin-value=$PIN" \
		--ca-cert ca.pem
	assert_one_line_error
	[[ "$stderr" == "estctl server init: pkcs11:token=$TOKEN;object=no-such-key;"* ]] ||
		fail "unexpected message: $stderr"
	[[ "$stderr" != *"$PIN"* ]] || fail "the PIN is in the message: $stderr"
	[ ! -e st ]
	[ -z "$(ls -d st.init-* 2>/dev/null)" ]
}

# pin_file TEXT [MODE]: write TEXT to ./pin with MODE (default 600).
pin_file() {
	printf '%s' "$1" > pin
	chmod "${2:-600}" pin
}

@test "with a pin-source file, init, serve and enroll work and the PIN is in no file or output" {
	# The PIN is the first line; what follows is the operator's business.
	pin_file "$PIN"$'\n''# the CA token, see the runbook'$'\n'
	run -0 --separate-stderr estctl server init st --ca-key "$KEY_URI?pin-source=file:$PWD/pin" \
		--ca-cert ca.pem --json
	assert_equal "$stderr" ""
	[[ "$output" != *"$PIN"* ]] || fail "the PIN is in the output: $output"
	assert_equal "$(jq -r .ca.key st/config.json)" "$KEY_URI?pin-source=file:$PWD/pin"
	assert_equal "$(file_mode st/config.json)" 600
	! grep -rqaF -- "$PIN" st || fail "the PIN is in the state directory: $(grep -rlaF -- "$PIN" st)"
	CA=$PWD/st/ca/cert.pem
	add_user alice pw
	start_server
	! grep -qaF -- "$PIN" "/proc/$SERVER_PID/cmdline" || fail "the PIN is on the server's command line"
	csr dev.key Device1 > req.b64
	run -0 post simpleenroll req.b64 -u alice:pw
	assert_output 200
	certs_of body > cert.pem
	openssl verify -CAfile ca.pem cert.pem
	cmp <(openssl x509 -in cert.pem -noout -pubkey) <(openssl pkey -in dev.key -pubout)
	stop_server
	! grep -qaF -- "$PIN" server.log server.out st/audit.log || fail "the PIN is in the server's output"
}

@test "init refuses a PIN file readable by others with 78 and one line naming it" {
	pin_file "$PIN"$'\n' 644
	run -78 --separate-stderr estctl server init st --ca-key "$KEY_URI?pin-source=file:$PWD/pin" \
		--ca-cert ca.pem
	assert_one_line_error
	assert_equal "$stderr" "estctl server init: $PWD/pin: mode 644: a PIN file must not be accessible to group or others (chmod 600)"
	[ ! -e st ]
	[ -z "$(ls -d st.init-* 2>/dev/null)" ]
}

@test "the server refuses to start with 78 once its PIN file is readable by group" {
	pin_file "$PIN"$'\n'
	make_state --ca-key "$KEY_URI?pin-source=$PWD/pin" --ca-cert ca.pem
	chmod 640 pin
	# timeout: a server that does start must fail the test, not hang it.
	run -78 --separate-stderr timeout 20 "$ESTCTL" server --dir st --listen 127.0.0.1:0
	assert_one_line_error
	[[ "$stderr" == "estctl server: $PWD/pin: mode 640: "* ]] || fail "unexpected message: $stderr"
	[[ "$stderr" != *"$PIN"* ]] || fail "the PIN is in the message: $stderr"
}

@test "init refuses a missing PIN file with 66 and one line naming it" {
	run -66 --separate-stderr estctl server init st --ca-key "$KEY_URI?pin-source=file:$PWD/pin" \
		--ca-cert ca.pem
	assert_one_line_error
	assert_equal "$stderr" "estctl server init: $PWD/pin: cannot read the PIN: No such file or directory"
	[ ! -e st ]
}

@test "init refuses a wrong PIN from the file with 66 and does not show it" {
	pin_file 1111$'\n'
	run -66 --separate-stderr estctl server init st --ca-key "$KEY_URI?pin-source=file:$PWD/pin" \
		--ca-cert ca.pem
	assert_one_line_error
	assert_equal "$stderr" "estctl server init: $PWD/pin: wrong PIN (the token refused it)"
	[ ! -e st ]
	# Refused once, not retried: the token still takes the right PIN.
	pin_file "$PIN"
	run -0 estctl server init st --ca-key "$KEY_URI?pin-source=file:$PWD/pin" --ca-cert ca.pem
}

@test "a pin-source that is not a file, or beside a pin-value, is refused with 65" {
	pin_file "$PIN"
	run -65 --separate-stderr estctl server init st --ca-key "$KEY_URI?pin-source=pin" \
		--ca-cert ca.pem
	assert_one_line_error
	[[ "$stderr" == *"pin-source: expected file:/PATH or an absolute path" ]] ||
		fail "unexpected message: $stderr"
	run -65 --separate-stderr estctl server init st \
		--ca-key "$KEY_URI?pin-source=$PWD/pin&pin-value=$PIN" --ca-cert ca.pem
	assert_one_line_error
	[[ "$stderr" != *"$PIN"* ]] || fail "the PIN is in the message: $stderr"
	[ ! -e st ]
}

@test "mkcsr and verify --key use a key on the token, its PIN from a pin-source file" {
	printf '%s\n' "$PIN" > pin
	chmod 600 pin
	local uri="$KEY_URI?pin-source=file:$PWD/pin"
	run -0 --separate-stderr estctl mkcsr --key "$uri" --thing HsmDevice -o req.pem
	assert_equal "$stderr" ""
	# openssl checks the token's signature with the CA certificate's key.
	run -0 openssl req -in req.pem -verify -noout
	assert_equal "$(openssl req -in req.pem -noout -pubkey)" "$(openssl x509 -in ca.pem -noout -pubkey)"
	run -0 estctl verify ca.pem --cacert ca.pem --key "$uri"
	[[ "$output" != *"$PIN"* ]]
}
