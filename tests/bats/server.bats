#!/usr/bin/env bats
# estctl server against curl and openssl: the real server on a free loopback port.

load helper
load server_helper

@test "server init makes the state directory with private keys and config.json 0600" {
	run -0 --separate-stderr estctl server init st --json
	assert_equal "$(jq -r .enrollment_key_id <<<"$output")" fleet-key-1
	for k in ca_cert tls_cert enrollment_key registry audit_log config; do
		[ -f "$(jq -r ".$k" <<<"$output")" ] || fail "$k missing"
	done
	assert_equal "$(file_mode st)" 700
	assert_equal "$(file_mode st/ca/key.pem)" 600
	assert_equal "$(file_mode st/tls/key.pem)" 600
	assert_equal "$(file_mode st/keys/fleet-key-1.key)" 600
	assert_equal "$(file_mode st/passwd)" 600
	# ca.key may be a pkcs11: URI holding the token's PIN.
	assert_equal "$(file_mode st/config.json)" 600
	openssl x509 -in st/ca/cert.pem -noout -ext basicConstraints | grep -q 'CA:TRUE'
	openssl verify -CAfile st/ca/cert.pem st/tls/cert.pem
	openssl x509 -in st/tls/cert.pem -noout -ext subjectAltName | grep -q 'IP Address:127.0.0.1'
	jq -e '.labels[""].auth == ["sealed","basic"]' st/config.json
}

@test "server init refuses an existing directory with 73 and leaves it alone" {
	mkdir st
	touch st/mine
	run -73 --separate-stderr estctl server init st
	assert_one_line_error
	[[ "$stderr" == *"st: exists"* ]]
	assert_equal "$(ls st)" mine
}

@test "server init imports an existing CA key and certificate" {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
		-out ca.pem -subj /CN=Imported -days 30 -addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign 2>/dev/null
	run -0 estctl server init st --ca-key ca.key --ca-cert ca.pem
	cmp ca.pem st/ca/cert.pem
	assert_equal "$(file_mode st/ca/key.pem)" 600
	openssl verify -CAfile ca.pem st/tls/cert.pem
}

@test "server init refuses a CA certificate that does not match the key" {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
		-out ca.pem -subj /CN=A -days 30 -addext basicConstraints=critical,CA:TRUE 2>/dev/null
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out other.key 2>/dev/null
	run --separate-stderr estctl server init st --ca-key other.key --ca-cert ca.pem
	[ "$status" -ne 0 ]
	[ ! -e st ]
	[ -z "$(ls -d st.init-* 2>/dev/null)" ]
}

@test "cacerts returns the CA as certs-only PKCS#7 in 64-character base64 lines" {
	make_state
	start_server
	run -0 curl -sS -o body -D hdr -w '%{http_code}' --cacert "$CA" "$URL/cacerts"
	assert_output 200
	assert_equal "$(header Content-Type)" "application/pkcs7-mime; smime-type=certs-only"
	assert_equal "$(header Content-Length)" "$(stat -c %s body)"
	[ -z "$(header Content-Transfer-Encoding)" ]
	! awk 'length($0) > 64' body | grep -q .
	[ "$(tail -c1 body | od -An -c | tr -d ' ')" = '\n' ]
	certs_of body | openssl x509 > got.pem
	cmp <(openssl x509 -in "$CA") got.pem
}

@test "simpleenroll with HTTP Basic issues a certificate that openssl verifies" {
	make_state
	add_user alice 'correct horse'
	start_server
	csr dev.key DeviceAlpha "" 0 client/DeviceAlpha 1 topic/DeviceAlpha/telemetry > req.b64
	run -0 post simpleenroll req.b64 -u 'alice:correct horse'
	assert_output 200
	assert_equal "$(header Content-Type)" "application/pkcs7-mime; smime-type=certs-only"
	assert_equal "$(header Content-Length)" "$(stat -c %s body)"
	! awk 'length($0) > 64' body | grep -q .
	certs_of body > cert.pem
	openssl verify -CAfile "$CA" cert.pem
	openssl x509 -in cert.pem -noout -subject | grep -q 'CN *= *DeviceAlpha'
	cmp <(openssl x509 -in cert.pem -noout -pubkey) <(openssl pkey -in dev.key -pubout)
	run -0 estctl server show st DeviceAlpha --json
	assert_equal "$(jq -r .status <<<"$output")" active
	grep -q '"event":"certificate_issued"' st/audit.log
	grep -q '"auth":"basic:alice"' st/audit.log
}

@test "simpleenroll accepts base64 without line breaks" {
	make_state
	add_user alice pw
	start_server
	csr dev.key DeviceAlpha | tr -d '\n' > req.b64
	run -0 post simpleenroll req.b64 -u alice:pw
	assert_output 200
}

@test "simpleenroll without credentials is 401 with WWW-Authenticate" {
	make_state
	start_server
	csr dev.key DeviceAlpha > req.b64
	run -0 post simpleenroll req.b64
	assert_output 401
	assert_equal "$(header WWW-Authenticate)" 'Basic realm="estctl"'
	assert_equal "$(header Content-Type)" "text/plain; charset=utf-8"
	assert_equal "$(wc -l < body)" 1
}

@test "simpleenroll with a wrong password is 401 and audited" {
	make_state
	add_user alice right
	start_server
	csr dev.key DeviceAlpha > req.b64
	run -0 post simpleenroll req.b64 -u alice:wrong
	assert_output 401
	[ -n "$(header WWW-Authenticate)" ]
	grep -q '"event":"request_refused".*wrong user name or password' st/audit.log
	! grep -q wrong st/passwd
	! grep -q right st/passwd
}

@test "a sealed CSR made by openssl cms is enrolled" {
	make_state
	start_server
	csr dev.key DeviceBeta > /dev/null
	openssl cms -encrypt -binary -aes-256-gcm -in req.der -outform DER -out sealed.der \
		-secretkey "$(cat st/keys/fleet-key-1.key)" \
		-secretkeyid "$(printf fleet-key-1 | od -An -tx1 | tr -d ' \n')"
	base64 sealed.der > sealed.b64
	CT=$SEALED run -0 post simpleenroll sealed.b64
	assert_output 200
	certs_of body | openssl verify -CAfile "$CA"
	grep -q '"auth":"sealed:fleet-key-1"' st/audit.log
}

@test "a sealed CSR under an unknown key id is 401" {
	make_state
	start_server
	csr dev.key DeviceBeta > /dev/null
	openssl cms -encrypt -binary -aes-256-gcm -in req.der -outform DER -out sealed.der \
		-secretkey "$(cat st/keys/fleet-key-1.key)" -secretkeyid 6f74686572
	base64 sealed.der > sealed.b64
	CT=$SEALED run -0 post simpleenroll sealed.b64
	assert_output 401
}

@test "a sealed CSR with a flipped tag byte is refused" {
	make_state
	start_server
	csr dev.key DeviceBeta > /dev/null
	openssl cms -encrypt -binary -aes-256-gcm -in req.der -outform DER -out sealed.der \
		-secretkey "$(cat st/keys/fleet-key-1.key)" \
		-secretkeyid "$(printf fleet-key-1 | od -An -tx1 | tr -d ' \n')"
	size=$(stat -c %s sealed.der)
	flip_byte sealed.der $((size - 3)) sealed.der
	base64 sealed.der > sealed.b64
	CT=$SEALED run -0 post simpleenroll sealed.b64
	assert_output 401
	run -0 estctl server list st --json
	assert_equal "$(jq '.devices | length' <<<"$output")" 0
}

@test "malformed bodies are 400: bad base64, bad DER, bad signature" {
	make_state
	add_user alice pw
	start_server
	printf 'not base64 at all!' > bad.b64
	run -0 post simpleenroll bad.b64 -u alice:pw
	assert_output 400
	printf 'hello world' | base64 > notder.b64
	run -0 post simpleenroll notder.b64 -u alice:pw
	assert_output 400
	csr dev.key DeviceAlpha > /dev/null
	size=$(stat -c %s req.der)
	flip_byte req.der $((size - 5)) req.der
	base64 req.der > badsig.b64
	run -0 post simpleenroll badsig.b64 -u alice:pw
	assert_output 400
	assert_equal "$(wc -l < body)" 1
	! grep -qi 'gnutls\|asn1\|error in' body
}

@test "unknown paths are 404, wrong methods 405, wrong content types 415" {
	make_state
	add_user alice pw
	start_server
	run -0 curl -sS -o body -w '%{http_code}' --cacert "$CA" "https://127.0.0.1:$PORT/"
	assert_output 404
	run -0 curl -sS -o body -w '%{http_code}' --cacert "$CA" "$URL/nosuchop"
	assert_output 404
	run -0 curl -sS -o body -w '%{http_code}' --cacert "$CA" "$URL/nolabel/cacerts"
	assert_output 404
	run -0 curl -sS -o body -D hdr -w '%{http_code}' --cacert "$CA" -X POST "$URL/cacerts"
	assert_output 405
	assert_equal "$(header Allow)" GET
	run -0 curl -sS -o body -w '%{http_code}' --cacert "$CA" "$URL/simpleenroll"
	assert_output 405
	csr dev.key DeviceAlpha > req.b64
	CT=text/plain run -0 post simpleenroll req.b64 -u alice:pw
	assert_output 415
	# a sealed CSR is refused on a label that does not take them
	edit_config '.labels.basiconly = {"auth": ["basic"]}'
	reload_server
	URL=$URL/basiconly CT=$SEALED run -0 post simpleenroll req.b64 -u alice:pw
	assert_output 415
}

@test "a body over the limit is 413" {
	make_state
	add_user alice pw
	start_server
	head -c 100000 /dev/zero | base64 > big.b64
	run -0 post simpleenroll big.b64 -u alice:pw
	assert_output 413
	# Over 1 MiB declared, the answer comes before the body: a client that
	# waits for "100 Continue" gets it without sending the body at all.
	head -c 1600000 /dev/zero | base64 > huge.b64
	run -0 post simpleenroll huge.b64 -u alice:pw -H 'Expect: 100-continue'
	assert_output 413
	grep -q '"POST /.well-known/est/simpleenroll" 413 .*body over the limit' server.log
	# A small Content-Length beside Transfer-Encoding does not make the
	# server read a large chunked body: it is cut at 1 MiB.
	head -c 3000000 /dev/zero > chunked.bin
	run curl -sS -o /dev/null -w '%{http_code}' --cacert "$CA" -u alice:pw \
		-H 'Content-Type: application/pkcs10' -H 'Transfer-Encoding: chunked' \
		-H 'Content-Length: 100000' --data-binary @chunked.bin "$URL/simpleenroll"
	[ "$output" != 200 ]
	grep -q '413 0 .*body over the limit, cut' server.log
	run -0 curl -sS -o /dev/null -w '%{http_code}' --cacert "$CA" "$URL/cacerts"
	assert_output 200
}

@test "csrattrs names the profile OID and P-256, parsed by openssl" {
	make_state
	start_server
	run -0 curl -sS -o body -D hdr -w '%{http_code}' --cacert "$CA" "$URL/csrattrs"
	assert_output 200
	assert_equal "$(header Content-Type)" application/csrattrs
	base64 -d body > attrs.der
	run -0 openssl asn1parse -inform DER -in attrs.der
	assert_output --partial "$PROFILE_OID"
	assert_output --partial id-ecPublicKey
	assert_output --partial prime256v1
	assert_output --partial ecdsa-with-SHA256
}

@test "serverkeygen returns a PKCS#8 key and the certificate for it" {
	make_state
	add_user alice pw
	start_server
	csr dev.key DeviceGamma > req.b64
	run -0 post serverkeygen req.b64 -u alice:pw
	assert_output 200
	[[ "$(header Content-Type)" == "multipart/mixed; boundary="* ]]
	b=$(header Content-Type | sed 's/.*boundary=//')
	awk -v b="--$b" '$0 ~ /^\r?$/ {body=1; next} index($0, b) == 1 {n++; body=0; next}
		body && n == 1 {print > "key.b64"} body && n == 2 {print > "cert.b64"}' body
	grep -q 'Content-Type: application/pkcs8' body
	tr -d '\r' < key.b64 | base64 -d | openssl pkey -inform DER -out newkey.pem
	tr -d '\r' < cert.b64 > c.b64
	certs_of c.b64 > cert.pem
	openssl verify -CAfile "$CA" cert.pem
	cmp <(openssl x509 -in cert.pem -noout -pubkey) <(openssl pkey -in newkey.pem -pubout)
	! cmp -s <(openssl pkey -in dev.key -pubout) <(openssl pkey -in newkey.pem -pubout)
}

# enroll_basic THING KEY: a device certificate in THING.pem
enroll_basic() {
	csr "$2" "$1" > req.b64
	[ "$(post simpleenroll req.b64 -u alice:pw)" = 200 ] || fail "enroll $1: $(cat body)"
	certs_of body > "$1.pem"
}

@test "simplereenroll over mutual TLS renews and rekeys, superseding the old certificate" {
	make_state
	add_user alice pw
	start_server
	enroll_basic DeviceAlpha dev.key
	old=$(openssl x509 -in DeviceAlpha.pem -noout -serial | cut -d= -f2 | tr A-F a-f)
	csr new.key DeviceAlpha > req.b64
	run -0 post simplereenroll req.b64 --cert DeviceAlpha.pem --key dev.key
	assert_output 200
	certs_of body > new.pem
	openssl verify -CAfile "$CA" new.pem
	cmp <(openssl x509 -in new.pem -noout -pubkey) <(openssl pkey -in new.key -pubout)
	run -0 estctl server show st DeviceAlpha --json
	assert_equal "$(jq -r --arg s "$old" '.certificates[] | select(.serial == $s) | .status' <<<"$output")" superseded
	# the superseded certificate no longer works
	csr new2.key DeviceAlpha > req.b64
	run -0 post simplereenroll req.b64 --cert DeviceAlpha.pem --key dev.key
	assert_output 403
	# the same key again (renew) works with the new certificate
	csr new.key DeviceAlpha > req.b64
	run -0 post simplereenroll req.b64 --cert new.pem --key new.key
	assert_output 200
}

@test "simplereenroll without a client certificate is 401" {
	make_state
	start_server
	csr dev.key DeviceAlpha > req.b64
	run -0 post simplereenroll req.b64
	assert_output 401
	[ -n "$(header WWW-Authenticate)" ]
}

@test "re-enrollment with a changed subject is refused" {
	make_state
	add_user alice pw
	start_server
	enroll_basic DeviceAlpha dev.key
	csr dev.key DeviceAlpha "/CN=DeviceAlpha/O=Evil" > req.b64
	run -0 post simplereenroll req.b64 --cert DeviceAlpha.pem --key dev.key
	assert_output 403
	grep -q 'subject differs' body
	csr dev.key DeviceBeta > req.b64
	run -0 post simplereenroll req.b64 --cert DeviceAlpha.pem --key dev.key
	assert_output 403
}

@test "a revoked device can neither re-enroll nor enroll again" {
	make_state
	add_user alice pw
	start_server
	enroll_basic DeviceAlpha dev.key
	run -0 estctl server revoke st DeviceAlpha
	csr dev.key DeviceAlpha > req.b64
	run -0 post simplereenroll req.b64 --cert DeviceAlpha.pem --key dev.key
	assert_output 403
	csr other.key DeviceAlpha > req.b64
	run -0 post simpleenroll req.b64 -u alice:pw
	assert_output 403
	grep -q revoked body
	grep -q '"event":"device_revoked"' st/audit.log
}

@test "a ThingName takeover by a new key is refused until an operator resets it" {
	make_state
	add_user alice pw
	start_server
	enroll_basic DeviceAlpha dev.key
	csr thief.key DeviceAlpha > req.b64
	run -0 post simpleenroll req.b64 -u alice:pw
	assert_output 403
	grep -q 'already registered' body
	run -0 estctl server reset st DeviceAlpha
	run -0 post simpleenroll req.b64 -u alice:pw
	assert_output 200
}

@test "every operator reset from another process takes effect in the running server" {
	make_state
	add_user alice pw
	start_server
	enroll_basic DeviceAlpha k1.key
	for k in k2 k3 k4; do
		run -0 estctl server reset st DeviceAlpha
		enroll_basic DeviceAlpha $k.key
		cmp <(openssl x509 -in DeviceAlpha.pem -noout -pubkey) <(openssl pkey -in $k.key -pubout)
	done
	# the registry file itself holds every issuance, not a WAL the server alone sees
	[ -e st/registry.db-wal ]
	run -0 estctl server show st DeviceAlpha --json
	assert_equal "$(jq -r '[.certificates[].status] | join(",")' <<<"$output")" \
		active,revoked,revoked,revoked
	stop_server
	run -0 sqlite3 st/registry.db "SELECT count(*) FROM certificates WHERE thing_name = 'DeviceAlpha'"
	assert_output 4
}

@test "a revoke from another process after a reset refuses the device at once" {
	make_state
	add_user alice pw
	start_server
	enroll_basic DeviceAlpha k1.key
	run -0 estctl server reset st DeviceAlpha
	enroll_basic DeviceAlpha k2.key
	run -0 estctl server revoke st DeviceAlpha
	csr k2.key DeviceAlpha > req.b64
	run -0 post simplereenroll req.b64 --cert DeviceAlpha.pem --key k2.key
	assert_output 403
	csr k3.key DeviceAlpha > req.b64
	run -0 post simpleenroll req.b64 -u alice:pw
	assert_output 403
	grep -q revoked body
	run -0 estctl server reset st DeviceAlpha
	run -0 post simpleenroll req.b64 -u alice:pw
	assert_output 200
}

@test "approvals from another process are seen by the running server every time" {
	make_state
	add_user alice pw
	edit_config '.labels.manual = {"auth": ["basic"], "approval": "manual"}'
	start_server
	for k in k1 k2 k3; do
		csr $k.key DeviceAlpha > req.b64
		run -0 post manual/simpleenroll req.b64 -u alice:pw
		assert_output 202
		run -0 estctl server approve st DeviceAlpha
		run -0 post manual/simpleenroll req.b64 -u alice:pw
		assert_output 200
		run -0 estctl server reset st DeviceAlpha
	done
}

# cert_count THING: the certificates the registry holds for THING.
cert_count() {
	sqlite3 st/registry.db "SELECT count(*) FROM certificates WHERE thing_name = '$1'"
}

@test "the same request again gets the same certificate back, audited as returned again" {
	make_state
	add_user alice pw
	start_server
	csr dev.key DeviceAlpha "" 0 client/DeviceAlpha 1 topic/DeviceAlpha/telemetry > req.b64
	run -0 post simpleenroll req.b64 -u alice:pw
	assert_output 200
	certs_of body > first.pem
	serial=$(openssl x509 -in first.pem -noout -serial | cut -d= -f2 | tr A-F a-f)
	# The very same CSR, and a new CSR for the same key and profile (what a
	# client killed before it kept the reply sends when it runs again).
	run -0 post simpleenroll req.b64 -u alice:pw
	assert_output 200
	assert_equal "$(header Content-Type)" "application/pkcs7-mime; smime-type=certs-only"
	certs_of body > second.pem
	csr dev.key DeviceAlpha "" 0 client/DeviceAlpha 1 topic/DeviceAlpha/telemetry > again.b64
	! cmp -s req.b64 again.b64 || fail "openssl made the same CSR twice"
	run -0 post simpleenroll again.b64 -u alice:pw
	assert_output 200
	certs_of body > third.pem
	cmp first.pem second.pem
	cmp first.pem third.pem
	openssl verify -CAfile "$CA" second.pem
	cmp <(openssl x509 -in third.pem -noout -pubkey) <(openssl pkey -in dev.key -pubout)
	# Nothing new was issued: one certificate, still the active one.
	assert_equal "$(cert_count DeviceAlpha)" 1
	run -0 estctl server show st DeviceAlpha --json
	assert_equal "$(jq -r '[.status, .certificate.serial] | join(" ")' <<<"$output")" "active $serial"
	run -0 jq -r 'select(.thing == "DeviceAlpha") | [.event, .serial, .auth, .remote] | join(" ")' \
		st/audit.log
	assert_output "device_registered $serial basic:alice 127.0.0.1
certificate_issued $serial basic:alice 127.0.0.1
certificate_returned_again $serial basic:alice 127.0.0.1
certificate_returned_again $serial basic:alice 127.0.0.1"
	# Authentication still applies in full.
	run -0 post simpleenroll req.b64 -u alice:wrong
	assert_output 401
	stop_server
	run -0 estctl verify --audit st/audit.log
}

@test "a request again with another key, another profile or subject, or after revocation is refused" {
	make_state
	add_user alice pw
	start_server
	csr dev.key DeviceAlpha "" 0 client/DeviceAlpha 1 topic/DeviceAlpha/telemetry > req.b64
	run -0 post simpleenroll req.b64 -u alice:pw
	assert_output 200
	# Another key for the same thing and profile: a takeover.
	csr other.key DeviceAlpha "" 0 client/DeviceAlpha 1 topic/DeviceAlpha/telemetry > other.b64
	run -0 post simpleenroll other.b64 -u alice:pw
	assert_output 403
	assert_equal "$(cat body)" "thing 'DeviceAlpha' is already registered: only its current certificate (simplereenroll) or an operator can replace it"
	# The same key asking for another profile (one permission fewer, or more).
	csr dev.key DeviceAlpha "" 0 client/DeviceAlpha > fewer.b64
	run -0 post simpleenroll fewer.b64 -u alice:pw
	assert_output 403
	grep -q "already registered" body
	csr dev.key DeviceAlpha "" 0 client/DeviceAlpha 1 topic/DeviceAlpha/telemetry \
		3 topic/DeviceAlpha/cmd > more.b64
	run -0 post simpleenroll more.b64 -u alice:pw
	assert_output 403
	# The same key and profile under another subject.
	csr dev.key DeviceAlpha /CN=DeviceAlpha/O=Other 0 client/DeviceAlpha \
		1 topic/DeviceAlpha/telemetry > subject.b64
	run -0 post simpleenroll subject.b64 -u alice:pw
	assert_output 403
	assert_equal "$(cert_count DeviceAlpha)" 1
	[ "$(grep -c '"event":"certificate_returned_again"' st/audit.log)" = 0 ] ||
		fail "a changed request was returned the certificate"
	# After a re-enrollment with a new key, the old key's request is refused
	# and the new key's is answered with the new certificate.
	run -0 post simpleenroll req.b64 -u alice:pw
	assert_output 200
	certs_of body > DeviceAlpha.pem
	csr new.key DeviceAlpha "" 0 client/DeviceAlpha 1 topic/DeviceAlpha/telemetry > new.b64
	run -0 post simplereenroll new.b64 --cert DeviceAlpha.pem --key dev.key
	assert_output 200
	certs_of body > new.pem
	run -0 post simpleenroll req.b64 -u alice:pw
	assert_output 403
	run -0 post simpleenroll new.b64 -u alice:pw
	assert_output 200
	certs_of body > new-again.pem
	cmp new.pem new-again.pem
	# A revoked device gets nothing, not even its own certificate.
	run -0 estctl server revoke st DeviceAlpha
	run -0 post simpleenroll new.b64 -u alice:pw
	assert_output 403
	assert_equal "$(cat body)" "thing 'DeviceAlpha' is revoked"
	assert_equal "$(cert_count DeviceAlpha)" 2
	assert_equal "$(grep -c '"event":"certificate_returned_again"' st/audit.log)" 2
}

@test "a wildcard permission is refused with the policy rule" {
	make_state
	add_user alice pw
	start_server
	csr dev.key DeviceAlpha "" 3 'topic/#' > req.b64
	run -0 post simpleenroll req.b64 -u alice:pw
	assert_output 403
	grep -q '^policy: ' body
	csr dev2.key DeviceAlpha "" 1 'topic/DeviceBeta/telemetry' > req.b64
	run -0 post simpleenroll req.b64 -u alice:pw
	assert_output 403
	run -0 estctl server list st --json
	assert_equal "$(jq '.devices | length' <<<"$output")" 0
}

@test "a manual-approval label answers 202 until the operator approves" {
	make_state
	add_user alice pw
	edit_config '.labels.manual = {"auth": ["basic"], "approval": "manual"}'
	start_server
	csr dev.key DeviceAlpha > req.b64
	run -0 curl -sS -o body -D hdr -w '%{http_code}' --cacert "$CA" -u alice:pw \
		-H 'Content-Type: application/pkcs10' --data-binary @req.b64 "$URL/manual/simpleenroll"
	assert_output 202
	[[ "$(header Retry-After)" =~ ^[0-9]+$ ]]
	run -0 estctl server approve st DeviceAlpha
	run -0 curl -sS -o body -w '%{http_code}' --cacert "$CA" -u alice:pw \
		-H 'Content-Type: application/pkcs10' --data-binary @req.b64 "$URL/manual/simpleenroll"
	assert_output 200
}

@test "a bootstrap client certificate authenticates on a cert label" {
	make_state
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout mfr.key \
		-out mfr.pem -subj /CN=Manufacturer -days 30 \
		-addext basicConstraints=critical,CA:TRUE 2>/dev/null
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout boot.key \
		-subj /CN=serial-1234 -out boot.csr 2>/dev/null
	openssl x509 -req -in boot.csr -CA mfr.pem -CAkey mfr.key -CAcreateserial -days 30 \
		-out boot.pem 2>/dev/null
	cp mfr.pem st/anchors.pem
	edit_config '.labels.factory = {"auth": ["cert"], "bootstrap_anchors": "anchors.pem"}'
	start_server
	csr dev.key DeviceAlpha > req.b64
	run -0 curl -sS -o body -w '%{http_code}' --cacert "$CA" --cert boot.pem --key boot.key \
		-H 'Content-Type: application/pkcs10' --data-binary @req.b64 "$URL/factory/simpleenroll"
	assert_output 200
	run -0 curl -sS -o body -w '%{http_code}' --cacert "$CA" \
		-H 'Content-Type: application/pkcs10' --data-binary @req.b64 "$URL/factory/simpleenroll"
	assert_output 401
}

@test "proof of possession refuses a CSR without the channel binding" {
	make_state
	add_user alice pw
	edit_config '.labels.pop = {"auth": ["basic"], "proof_of_possession": true}'
	start_server
	csr dev.key DeviceAlpha > req.b64
	run -0 curl -sS -o body -w '%{http_code}' --cacert "$CA" -u alice:pw \
		-H 'Content-Type: application/pkcs10' --data-binary @req.b64 "$URL/pop/simpleenroll"
	assert_output 403
	grep -q challengePassword body
	echo 'not-the-binding' > chal
	estctl mkcsr --key dev.key --thing DeviceAlpha --challenge-file chal --der -o c.der
	base64 c.der > req.b64
	run -0 curl -sS -o body -w '%{http_code}' --cacert "$CA" -u alice:pw \
		-H 'Content-Type: application/pkcs10' --data-binary @req.b64 "$URL/pop/simpleenroll"
	assert_output 403
	grep -q 'does not match' body
}

@test "proof of possession accepts the tls-unique binding of the connection (TLS 1.2)" {
	make_state
	add_user alice pw
	edit_config '.labels.pop = {"auth": ["basic"], "proof_of_possession": true}'
	start_server
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out dev.key 2>/dev/null
	# several connections, so bindings whose base64 holds '+' or '/' are among them
	for i in 1 2 3 4 5 6 7 8; do
		run -0 python3 "$BATS_TEST_DIRNAME/server_pop.py" "$PORT" "$CA" "$ESTCTL" dev.key Pop$i
		assert_output 200
	done
}

@test "TLS 1.1 is refused, TLS 1.2 and 1.3 work" {
	make_state
	start_server
	run -0 curl -sS -o /dev/null -w '%{http_code}' --tlsv1.2 --tls-max 1.2 --cacert "$CA" "$URL/cacerts"
	assert_output 200
	run -0 curl -sS -o /dev/null -w '%{http_code}' --tlsv1.3 --cacert "$CA" "$URL/cacerts"
	assert_output 200
	run curl -sS -o /dev/null --tlsv1.1 --tls-max 1.1 --ciphers DEFAULT@SECLEVEL=0 --cacert "$CA" "$URL/cacerts"
	[ "$status" -ne 0 ]
}

@test "the audit chain verifies, and an edited line is named" {
	make_state
	add_user alice pw
	start_server
	enroll_basic DeviceAlpha dev.key
	enroll_basic DeviceBeta dev2.key
	run -0 post simpleenroll req.b64 -u alice:nope
	stop_server
	run -0 --separate-stderr estctl verify --audit st/audit.log
	n=$(grep -n '"thing":"DeviceAlpha"' st/audit.log | head -1 | cut -d: -f1)
	sed -i "${n}s/DeviceAlpha/DeviceAlphb/" st/audit.log
	run -1 --separate-stderr estctl verify --audit st/audit.log
	[[ "$stderr$output" == *"line $n"* ]]
}

@test "a client sending one byte a second is cut off" {
	make_state
	edit_config '.limits.timeout = 3 | .limits.request_timeout = 3'
	start_server
	run -0 python3 -c '
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
t0 = time.time()
try:
    for i in range(60):
        s.send(b"\x16")
        s.settimeout(1.0)
        try:
            if s.recv(1) == b"":
                break
        except socket.timeout:
            pass
except OSError:
    pass
print("cut" if time.time() - t0 < 30 else "not cut")
' "$PORT"
	assert_output cut
	run -0 curl -sS -o /dev/null -w '%{http_code}' --cacert "$CA" "$URL/cacerts"
	assert_output 200
}

@test "garbage requests never crash the server" {
	make_state
	start_server
	for i in $(seq 1 20); do
		head -c $((i * 37)) /dev/urandom | timeout 5 openssl s_client -quiet \
			-connect 127.0.0.1:$PORT >/dev/null 2>&1 || true
		head -c $((i * 53)) /dev/urandom | timeout 5 bash -c \
			"cat > /dev/tcp/127.0.0.1/$PORT" 2>/dev/null || true
	done
	for req in 'GET / HTTP/1.1\r\n\r\n' 'POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n' \
		'GET /.well-known/est/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n' \
		'POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/pkcs10\r\n\r\nzz\r\n\r\n' \
		'GET /.well-known/est/cacerts HTTP/1.1\r\nHost: x\r\nAuthorization: Basic !!!\r\n\r\n'; do
		printf "$req" | timeout 5 openssl s_client -quiet -connect 127.0.0.1:$PORT >/dev/null 2>&1 || true
	done
	kill -0 "$SERVER_PID"
	run -0 curl -sS -o /dev/null -w '%{http_code}' --cacert "$CA" "$URL/cacerts"
	assert_output 200
}

# threads: how many threads the server has now.
threads() { ls "/proc/$SERVER_PID/task" | wc -l; }

# hold_connections N: N TLS connections that stay open (and idle) for 20 s,
# or until release_connections (HELD, local to the test, holds them).
hold_connections() {
	local i
	for i in $(seq 1 "$1"); do
		sleep 20 | openssl s_client -quiet -connect 127.0.0.1:$PORT >/dev/null 2>&1 3>&- &
		HELD+=($!)
	done
}
release_connections() {
	kill "${HELD[@]}" 2>/dev/null || true
	HELD=()
}

@test "connections take no threads of their own; --threads sets the request workers" {
	make_state
	add_user alice s3cret
	start_server
	local base i curls=() HELD=() t2 t6
	base=$(threads)
	hold_connections 6
	sleep 0.5
	[ "$(threads)" -eq "$base" ] || fail "6 idle connections took threads: $base -> $(threads)"
	# A request is served while those connections sit idle.
	csr dev.key DeviceAlpha > req.b64
	run -0 post simpleenroll req.b64 -u alice:s3cret
	assert_output 200
	release_connections
	stop_server

	start_server --threads 2
	t2=$(threads)
	for i in 1 2 3 4; do
		csr "d$i.key" "Device$i" > "req$i.b64"
		curl -sS -o "out$i" -w '%{http_code}' --cacert "$CA" -u alice:s3cret \
			-H 'Content-Type: application/pkcs10' --data-binary @"req$i.b64" \
			"$URL/simpleenroll" > "code$i" 3>&- &
		curls+=($!)
	done
	wait "${curls[@]}"
	for i in 1 2 3 4; do
		[ "$(cat "code$i")" = 200 ] || fail "Device$i: HTTP $(cat "code$i")"
	done
	stop_server
	start_server --threads 6
	t6=$(threads)
	[ $((t6 - t2)) -eq 4 ] || fail "--threads 2: $t2 threads, --threads 6: $t6"
	run -0 estctl server list st --json
	[ "$(jq '.devices | length' <<<"$output")" -eq 5 ]
}

@test "--threads takes 1 to 256" {
	make_state
	for n in 0 257 x; do
		run -64 --separate-stderr estctl server --dir st --threads "$n"
		[[ "$stderr" == *--threads* ]] || fail "--threads $n: $stderr"
	done
}

@test "SIGHUP reloads users, SIGTERM exits 0" {
	make_state
	start_server
	csr dev.key DeviceAlpha > req.b64
	run -0 post simpleenroll req.b64 -u bob:pw
	assert_output 401
	add_user bob pw
	reload_server
	run -0 post simpleenroll req.b64 -u bob:pw
	assert_output 200
	stop_server
	grep -q 'stopped' server.log
}

@test "SIGTERM during a keep-alive burst: requests in flight are answered, every 200 is in the registry" {
	make_state
	add_user alice pw
	start_server
	local i j n pids=() opts t0 t1
	for i in $(seq 1 8); do
		csr "k$i.key" "Burst$i" > "req$i.b64"
	done
	# Eight clients, each on one keep-alive connection enrolling its device
	# again and again (the same key gets the same certificate back).
	for i in $(seq 1 8); do
		opts=()
		for j in $(seq 1 40); do
			opts+=(-o "cert$i.$j" "$URL/simpleenroll")
		done
		curl -sS --cacert "$CA" -u alice:pw -H 'Content-Type: application/pkcs10' \
			--data-binary @"req$i.b64" -w '%{http_code}\n' "${opts[@]}" \
			> "codes$i" 2>/dev/null 3>&- &
		pids+=($!)
	done
	for i in $(seq 1 1500); do
		[ "$(grep -c '" 200 ' server.log)" -ge 16 ] && break
		sleep 0.02
	done
	[ "$(grep -c '" 200 ' server.log)" -ge 16 ] || fail "16 answers took more than 30 s"
	t0=$(date +%s)
	kill -TERM "$SERVER_PID"
	local rc=0
	wait "$SERVER_PID" || rc=$?
	t1=$(date +%s)
	SERVER_PID=
	wait "${pids[@]}" || true
	[ "$rc" -eq 0 ] || fail "server exited $rc on SIGTERM"
	# Keep-alive clients are told to close, so the stop does not sit out
	# its 10 s grace.
	[ $((t1 - t0)) -lt 8 ] || fail "the stop took $((t1 - t0)) s"
	# Every answer was whole: a 200 carries its device's certificate; after
	# the stop a client gets no connection, never a 5xx.
	local ok=0
	for i in $(seq 1 8); do
		j=0
		while read -r code; do
			j=$((j + 1))
			case $code in
			200) ok=$((ok + 1))
			     openssl base64 -d -in "cert$i.$j" | openssl pkcs7 -inform DER -print_certs \
				     -out "got$i.$j.pem" || fail "Burst$i #$j: the 200 reply is not a PKCS#7"
			     grep -q "Burst$i" <(openssl x509 -in "got$i.$j.pem" -noout -subject) ||
				     fail "Burst$i #$j: not its certificate" ;;
			000) ;;
			*) fail "Burst$i #$j: HTTP $code" ;;
			esac
		done < "codes$i"
	done
	[ "$ok" -ge 16 ] || fail "only $ok requests answered 200"
	[ "$(grep -c '" 200 ' server.log)" -eq "$ok" ] ||
		fail "the server answered $(grep -c '" 200 ' server.log) with 200, clients got $ok"
	grep -q stopped server.log
	# The devices registered are those that got a 200, each with one
	# certificate, and every 200 returned exactly it.
	run -0 estctl server list st --json
	echo "$output" > list.json
	[ "$(jq '[.devices[] | select(.thing | startswith("Burst"))] | length' list.json)" -eq \
		"$(ls got*.pem | cut -d. -f1 | sort -u | wc -l)" ]
	for f in got*.pem; do
		n=${f#got}; i=${n%%.*}
		serial=$(openssl x509 -in "$f" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f')
		[ "$serial" = "$(jq -r --arg t "Burst$i" \
			'.devices[] | select(.thing == $t) | .certificate.serial' list.json)" ] ||
			fail "$f: serial $serial is not the registry's for Burst$i"
	done
	run -0 estctl verify --audit st/audit.log
}

@test "after SIGTERM a request in flight is finished and new connections are turned away" {
	make_state
	add_user alice pw
	start_server
	csr dev.key DeviceSlow > req.b64
	# A client whose headers are in but whose body comes 4 s later.
	{
		printf 'POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: localhost\r\n'
		printf 'Authorization: Basic %s\r\n' "$(printf alice:pw | base64)"
		printf 'Content-Type: application/pkcs10\r\nContent-Length: %s\r\n\r\n' \
			"$(stat -c %s req.b64)"
		sleep 4
		cat req.b64
	} | openssl s_client -quiet -connect "127.0.0.1:$PORT" >slow.out 2>slow.err 3>&- &
	local slow=$! rc=0
	sleep 2
	kill -TERM "$SERVER_PID"
	sleep 0.5
	# The server still runs (it waits for the slow request), but takes no one new.
	kill -0 "$SERVER_PID" || fail "the server did not wait for the request in flight"
	run --separate-stderr curl -sS -o /dev/null -w '%{http_code}' --max-time 5 \
		--cacert "$CA" "$URL/cacerts"
	assert_output 000
	[ "$status" -ne 0 ] || fail "curl succeeded"
	wait "$SERVER_PID" || rc=$?
	SERVER_PID=
	[ "$rc" -eq 0 ] || fail "server exited $rc on SIGTERM"
	wait "$slow" || true
	grep -q '^HTTP/1.1 200' slow.out || fail "the request in flight got: $(head -1 slow.out)"
	grep -qi '^connection: close' slow.out || fail "its answer did not close the connection"
	run -0 estctl server show st DeviceSlow
}

@test "a broken config is refused on start (78) and on reload keeps the old one" {
	make_state
	cp st/config.json good.json
	edit_config '.limits.nonsense = 1'
	run -78 --separate-stderr estctl server --dir st --listen 127.0.0.1:0
	[[ "$stderr" == *"limits.nonsense: unknown key"* ]]
	cp good.json st/config.json
	start_server
	edit_config '.labels[""].auth = ["telepathy"]'
	reload_server 'reload failed'
	run -0 curl -sS -o /dev/null -w '%{http_code}' --cacert "$CA" "$URL/cacerts"
	assert_output 200
}

@test "server list and show report devices; --expiring filters" {
	make_state
	add_user alice pw
	start_server
	enroll_basic DeviceAlpha dev.key
	run -0 estctl server list st
	assert_output --partial DeviceAlpha
	run -0 estctl server list st --json
	assert_equal "$(jq -r '.devices[0].thing' <<<"$output")" DeviceAlpha
	run -0 estctl server list st --json --expiring 30d
	assert_equal "$(jq '.devices | length' <<<"$output")" 0
	run -0 estctl server list st --json --expiring 400d
	assert_equal "$(jq '.devices | length' <<<"$output")" 1
	run -0 estctl server show st DeviceAlpha --json
	jq -e '.iot_policy.Version == "2012-10-17"' <<<"$output"
	run -66 --separate-stderr estctl server show st Nobody
}

@test "server passwd stores a salted PBKDF2 hash, never the password" {
	make_state
	printf 'hunter2\n' | estctl server passwd st carol
	printf 'hunter2\n' | estctl server passwd st dave
	run -0 grep -c '^carol:\$pbkdf2-sha256\$' st/passwd
	! grep -q hunter2 st/passwd
	[ "$(cut -d'$' -f4 st/passwd | sort -u | wc -l)" -eq 2 ]
	assert_equal "$(file_mode st/passwd)" 600
	run -64 --separate-stderr estctl server passwd st 'bad:user'
}
