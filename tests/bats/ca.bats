#!/usr/bin/env bats
# Issued certificates, certs-only replies and the init certificates, judged by
# openssl and certtool (independent implementations).
load helper
load ca_helper

setup_ca() {
	run -0 --separate-stderr issue_tool ca "${1:-ec-p256}" - "${2:-3650}" ca.key ca.pem
	make_csr dev.csr Dev-1 client/Dev-1 topic/Dev-1/telemetry "${3:-ec}"
}

@test "an issued certificate verifies with openssl as a TLS client certificate" {
	setup_ca
	run -0 --separate-stderr issue_tool issue ca.key ca.pem dev.csr 365 cert.pem reply.p7
	run -0 openssl verify -CAfile ca.pem -purpose sslclient cert.pem
	assert_output "cert.pem: OK"
	run -2 openssl verify -CAfile ca.pem -purpose sslserver cert.pem
}

@test "openssl sees a positive 20-byte serial, CN=ThingName and the extensions of DESIGN.md 4.5" {
	setup_ca
	run -0 --separate-stderr issue_tool issue ca.key ca.pem dev.csr 365 cert.pem reply.p7
	serial=${output%% *}
	run -0 openssl x509 -in cert.pem -noout -serial
	assert_output "serial=${serial^^}"
	[[ $output =~ ^serial=[0-7][0-9A-F]{39}$ ]]
	[[ ${output:7:2} != 00 ]]
	run -0 openssl x509 -in cert.pem -noout -subject -ext basicConstraints,keyUsage,extendedKeyUsage,subjectKeyIdentifier,authorityKeyIdentifier
	assert_line "subject=CN = Dev-1"
	assert_line "X509v3 Basic Constraints: critical"
	assert_line --regexp "^ +CA:FALSE$"
	assert_line "X509v3 Key Usage: critical"
	assert_line --regexp "^ +Digital Signature$"
	assert_line --regexp "^ +TLS Web Client Authentication$"
	assert_line "X509v3 Subject Key Identifier: "
	run -0 openssl x509 -in cert.pem -noout -text
	refute_output --partial "$PROFILE_OID"
	refute_output --partial "Alternative Name"
	# the AKI is the CA's SKI
	aki=$(openssl x509 -in cert.pem -noout -ext authorityKeyIdentifier | sed -n '2s/^ *//p')
	ski=$(openssl x509 -in ca.pem -noout -ext subjectKeyIdentifier | sed -n '2s/^ *//p')
	assert_equal "$aki" "$ski"
}

@test "the certs-only reply holds the device and CA certificates for openssl" {
	setup_ca
	run -0 --separate-stderr issue_tool issue ca.key ca.pem dev.csr 365 cert.pem reply.p7
	run -0 openssl pkcs7 -inform DER -in reply.p7 -print_certs
	assert_line "subject=CN = Dev-1"
	assert_line "subject=CN = estctl CA"
	openssl pkcs7 -inform DER -in reply.p7 -print_certs -out chain.pem
	run -0 openssl verify -CAfile ca.pem cert.pem
	run -0 openssl cms -cmsout -inform DER -in reply.p7 -print -noout
	assert_output --partial "signerInfos:"
	assert_output --partial "<ABSENT>"
}

@test "certtool reads the certificate and verifies it under the CA" {
	setup_ca
	run -0 --separate-stderr issue_tool issue ca.key ca.pem dev.csr 365 cert.pem reply.p7
	run -0 certtool --certificate-info --infile cert.pem
	assert_output --partial "Subject: CN=Dev-1"
	assert_output --partial "TLS WWW Client."
	run -0 certtool --verify --load-ca-certificate ca.pem --infile cert.pem
	assert_output --partial "Verified. The certificate is trusted."
	run -0 certtool --p7-info --inder --infile reply.p7
	assert_output --partial "Number of certificates: 2"
}

@test "every CA key type issues certificates openssl verifies, with the matching signature" {
	for spec in "ec-p384 ecdsa-with-SHA384 ec" "ed25519 ED25519 ed25519" "rsa2048 sha256WithRSAEncryption rsa"; do
		set -- $spec
		rm -f ca.key ca.pem dev.csr dev.csr.key cert.pem reply.p7
		setup_ca "$1" 3650 "$3"
		run -0 --separate-stderr issue_tool issue ca.key ca.pem dev.csr 30 cert.pem reply.p7
		run -0 openssl verify -CAfile ca.pem cert.pem
		run -0 openssl x509 -in cert.pem -noout -text
		assert_line --regexp "Signature Algorithm: $2\$"
	done
}

@test "validity stops at the CA's notAfter" {
	setup_ca ec-p256 10
	run -0 --separate-stderr issue_tool issue ca.key ca.pem dev.csr 365 cert.pem reply.p7
	assert_equal "$(openssl x509 -in cert.pem -noout -enddate)" "$(openssl x509 -in ca.pem -noout -enddate)"
}

@test "a CSR asking for another device's topic is refused, naming the rule" {
	setup_ca
	make_csr other.csr Dev-1 client/Dev-1 topic/Dev-2/telemetry
	run -77 --separate-stderr issue_tool issue ca.key ca.pem other.csr 365 cert.pem reply.p7
	assert_equal "$stderr" "issue_tool issue: policy: publish resource 'topic/Dev-2/telemetry' does not match any allowed pattern (topic/\${thingName}/*)"
	[ ! -e cert.pem ]
}

@test "a CSR with a flipped signature byte is refused as bad data" {
	setup_ca
	openssl req -in dev.csr -outform DER -out dev.der
	size=$(stat -c %s dev.der)
	flip_byte dev.der $((size - 4)) dev.der
	run -65 --separate-stderr issue_tool issue ca.key ca.pem dev.der 365 cert.pem reply.p7
	assert_output ""
	[[ $stderr == *"signature"* ]]
	[ ! -e cert.pem ]
}

@test "a device certificate cannot be opened as the CA" {
	setup_ca
	run -0 --separate-stderr issue_tool issue ca.key ca.pem dev.csr 365 cert.pem reply.p7
	run -78 --separate-stderr issue_tool issue dev.csr.key cert.pem dev.csr 365 c2.pem r2.p7
	assert_output ""
	[[ $stderr == *"not a CA"* ]]
}

@test "the TLS certificate is for localhost, 127.0.0.1 and ::1 and openssl accepts it as a server" {
	setup_ca
	run -0 --separate-stderr issue_tool tls ca.key ca.pem tls.key tls.pem
	assert_equal "$(file_mode tls.key)" 600
	run -0 openssl x509 -in tls.pem -noout -ext subjectAltName
	assert_line --regexp "^ +DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1 *$"
	run -0 openssl verify -CAfile ca.pem -purpose sslserver -verify_hostname localhost tls.pem
	run -0 openssl verify -CAfile ca.pem -purpose sslserver -verify_ip 127.0.0.1 tls.pem
	run -0 openssl verify -CAfile ca.pem -purpose sslserver -verify_ip ::1 tls.pem
	run -2 openssl verify -CAfile ca.pem -purpose sslserver -verify_hostname example.com tls.pem
}

@test "the CA certificate is a pathlen-0 CA with keyCertSign and cRLSign" {
	run -0 --separate-stderr issue_tool ca ec-p256 "CN=Acme Fleet CA,O=Acme" 30 ca.key ca.pem
	assert_equal "$(file_mode ca.key)" 600
	run -0 openssl x509 -in ca.pem -noout -subject -ext basicConstraints,keyUsage
	# RFC 4514 strings list the RDNs last first
	assert_line "subject=O = Acme, CN = Acme Fleet CA"
	assert_line --regexp "^ +CA:TRUE, pathlen:0$"
	assert_line --regexp "^ +Certificate Sign, CRL Sign$"
	run -0 openssl verify -CAfile ca.pem ca.pem
}
