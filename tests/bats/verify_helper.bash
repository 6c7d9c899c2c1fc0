# Certificates for verify.bats, made with openssl and certtool (independent
# implementations), never with estctl itself.

# The OID as the code defines it, so the tests follow the header.
VERIFY_PROFILE_OID=$(sed -n 's/^#define EST_PROFILE_OID "\(.*\)"$/\1/p' "$SRCDIR/lib/profile.h")
VERIFY_LEGACY_OID=$(sed -n 's/^#define EST_LEGACY_PROFILE_OID "\(.*\)"$/\1/p' "$SRCDIR/lib/profile.h")
VERIFY_LEGACY_JSON='{"ThingName":"DeviceBeta","Policies":{"Connect":true,"Publish":false,"Receive":null,"Subscribe":null},"Topics":{"Connect":{"Name1":"client/DeviceBeta"},"Publish":{"Name1":"topic/DeviceBeta/telemetry"}}}'

# True when every arc of the profile OID fits in 63 bits: libtasn1 (under
# GnuTLS) fails to decode any certificate or CSR holding a larger arc.
profile_oid_decodable() {
	python3 -c 'import sys; sys.exit(any(int(a) >= 2**63 for a in sys.argv[1].split(".")))' \
		"$VERIFY_PROFILE_OID"
}

# Standard input as colon-separated hex, for openssl's DER: extension values.
hexcolons() {
	od -An -v -tx1 | tr -s ' \n' '::' | sed 's/^://; s/:$//'
}

# new_key FILE: a P-256 key.
new_key() {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

# new_ca NAME SUBJECT: a self-signed CA NAME.pem with key NAME.key.
new_ca() {
	new_key "$1.key"
	openssl req -x509 -new -key "$1.key" -out "$1.pem" -subj "/CN=$2" -days 3650 \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

# issue NAME CA DAYS [EXTFILE]: key NAME.key and certificate NAME.pem, CN=NAME,
# signed by CA (CA.pem, CA.key) for DAYS days.
issue() {
	local name="$1" ca="$2" days="$3" ext="${4:-leaf.ext}"
	[ -f "$name.key" ] || new_key "$name.key"
	openssl req -new -key "$name.key" -subj "/CN=$name" -out "$name.csr" 2>/dev/null
	openssl x509 -req -in "$name.csr" -CA "$ca.pem" -CAkey "$ca.key" -CAcreateserial \
		-days "$days" -sha256 -extfile "$ext" -out "$name.pem" 2>/dev/null
}

# The DeviceProfile of DESIGN.md 4.2 as an openssl ASN1_generate_nconf config.
profile_genconf() {
	cat <<-'EOF'
	asn1 = SEQUENCE:profile
	[profile]
	version = INTEGER:1
	thing = UTF8:DeviceAlpha
	perms = SEQUENCE:perms
	[perms]
	p1 = SEQUENCE:connect
	p2 = SEQUENCE:publish
	[connect]
	action = ENUMERATED:0
	effect = ENUMERATED:0
	res = SEQUENCE:connect_res
	[connect_res]
	r1 = UTF8:client/DeviceAlpha
	[publish]
	action = ENUMERATED:1
	effect = ENUMERATED:1
	res = SEQUENCE:publish_res
	[publish_res]
	r1 = UTF8:topic/DeviceAlpha/telemetry
	r2 = UTF8:topic/DeviceAlpha/debug
	EOF
}

# A minimal `openssl ca` setup, for certificates with chosen start and end dates.
ca_config() {
	cat <<-EOF
	[ca]
	default_ca = test
	[test]
	dir = $PWD/cadb
	database = \$dir/index.txt
	new_certs_dir = \$dir
	serial = \$dir/serial
	default_md = sha256
	policy = anything
	copy_extensions = none
	unique_subject = no
	x509_extensions = leaf
	[anything]
	commonName = supplied
	[leaf]
	basicConstraints = critical,CA:FALSE
	keyUsage = critical,digitalSignature
	extendedKeyUsage = clientAuth
	EOF
}

# flip_last_byte IN OUT: the DER in IN with its last byte inverted (a
# signature that still parses but no longer verifies).
flip_last_byte() {
	python3 -c 'import sys
d = bytearray(open(sys.argv[1], "rb").read())
d[-1] ^= 0xff
open(sys.argv[2], "wb").write(d)' "$1" "$2"
}

# make_verify_fixtures DIR: every certificate the tests use.
make_verify_fixtures() {
	mkdir -p "$1" && cd "$1" || return 1
	printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
		"extendedKeyUsage=clientAuth" "subjectKeyIdentifier=hash" \
		"authorityKeyIdentifier=keyid" >leaf.ext
	printf '%s\n' "basicConstraints=critical,CA:TRUE" "keyUsage=critical,keyCertSign,cRLSign" \
		"subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" >ca.ext

	new_ca ca "Test Root CA"
	new_ca other "Other Root CA"
	issue inter ca 1000 ca.ext
	issue leaf ca 365
	issue ten ca 10
	issue sub inter 365
	issue stranger other 365
	issue long inter 2000
	new_key wrong.key
	cat sub.pem inter.pem >sub-chain.pem
	cat sub.pem inter.pem ca.pem >sub-fullchain.pem
	cat ca.pem inter.pem >bundle-with-inter.pem
	cat other.pem ca.pem >two-roots.pem

	# A leaf issued by certtool from a template.
	new_key gt.key
	printf '%s\n' 'cn = "gt"' 'serial = 4660' 'expiration_days = 100' 'tls_www_client' \
		'signing_key' >gt.tmpl
	certtool --generate-certificate --load-privkey gt.key --load-ca-certificate ca.pem \
		--load-ca-privkey ca.key --template gt.tmpl --outfile gt.pem 2>/dev/null

	# A leaf that really expired: openssl ca takes explicit dates.
	mkdir -p cadb && : >cadb/index.txt && echo 1000 >cadb/serial
	ca_config >ca.cnf
	new_key old.key
	openssl req -new -key old.key -subj /CN=old -out old.csr 2>/dev/null
	openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in old.csr -out old.pem \
		-startdate 20240101000000Z -enddate 20250101000000Z -notext 2>/dev/null
	openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in old.csr \
		-out future.pem -startdate 20990101000000Z -enddate 20991231000000Z -notext \
		2>/dev/null

	# A leaf carrying the device profile extension, DER built by openssl.
	profile_genconf >profile.cnf
	openssl asn1parse -genconf profile.cnf -out profile.der -noout
	cp leaf.ext prof.ext
	echo "$VERIFY_PROFILE_OID=DER:$(hexcolons <profile.der)" >>prof.ext
	issue prof ca 365 prof.ext

	# The seed's legacy extension: the raw JSON of IoTDetails.
	cp leaf.ext legacy.ext
	echo "$VERIFY_LEGACY_OID=DER:$(printf %s "$VERIFY_LEGACY_JSON" | hexcolons)" >>legacy.ext
	issue legacy ca 365 legacy.ext

	# A leaf whose signature was tampered with.
	openssl x509 -in leaf.pem -outform DER -out leaf.der
	flip_last_byte leaf.der badsig.der

	# CSRs: one from openssl req, and the same with its signature broken.
	openssl req -new -key leaf.key -subj /CN=DeviceAlpha -out req.csr 2>/dev/null
	openssl req -in req.csr -outform DER -out req.der
	flip_last_byte req.der badsig.csr
	openssl req -new -key leaf.key -subj /CN=DeviceAlpha -out reqprof.csr \
		-addext "$(tail -n 1 prof.ext)" 2>/dev/null
	for f in ca other inter leaf ten sub stranger long gt old future prof legacy; do
		[ -s reqprof.csr ] || return 1
		[ -s "$f.pem" ] || { echo "fixture $f.pem was not made" >&2; return 1; }
	done
}
