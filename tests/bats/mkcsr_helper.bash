# Helpers for mkcsr.bats: device keys made by independent tools, and the
# profile extension of a CSR as OpenSSL parses it.

PROFILE_OID=2.25.335185497663826327032788806889900675368

# make_key TYPE FORM FILE: TYPE ec-p256|ec-p384|ed25519|rsa2048; FORM
# pkcs8 (openssl genpkey), trad (openssl ecparam/genrsa -traditional),
# der (PKCS#8 DER) or certtool (certtool --generate-privkey).
make_key() {
	local type=$1 form=$2 out=$3 tmp
	case "$form" in
	pkcs8|der)
		case "$type" in
		ec-p256) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$out.pem" ;;
		ec-p384) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$out.pem" ;;
		ed25519) openssl genpkey -algorithm ed25519 -out "$out.pem" ;;
		rsa2048) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$out.pem" ;;
		esac 2>/dev/null || return 1
		if [ "$form" = der ]; then
			openssl pkey -in "$out.pem" -outform DER -out "$out" || return 1
			rm -f "$out.pem"
		else
			mv "$out.pem" "$out"
		fi ;;
	trad)
		case "$type" in
		ec-p256) openssl ecparam -genkey -name prime256v1 -noout -out "$out" ;;
		ec-p384) openssl ecparam -genkey -name secp384r1 -noout -out "$out" ;;
		rsa2048) openssl genrsa -traditional -out "$out" 2048 ;;
		*) return 1 ;;
		esac 2>/dev/null ;;
	certtool)
		case "$type" in
		ec-p256) certtool --generate-privkey --key-type ecdsa --curve secp256r1 ;;
		ec-p384) certtool --generate-privkey --key-type ecdsa --curve secp384r1 ;;
		ed25519) certtool --generate-privkey --key-type ed25519 ;;
		rsa2048) certtool --generate-privkey --key-type rsa --bits 2048 ;;
		esac >"$out" 2>/dev/null ;;
	esac
}

# The offset of the profile extension's extnValue in CSR (PEM).
profile_offset() {
	openssl asn1parse -in "$1" | awk -v oid=":$PROFILE_OID" '
		index($0, oid) { getline; split($0, a, ":"); print a[1] + 0; exit }'
}

# The DeviceProfile inside CSR (PEM), as openssl asn1parse prints it.
profile_dump() {
	local off
	off=$(profile_offset "$1")
	[ -n "$off" ] || return 1
	openssl asn1parse -in "$1" -strparse "$off"
}

# Only the values of the dump: "INTEGER:01", "UTF8STRING:DeviceBeta", ...
profile_values() {
	profile_dump "$1" | sed -n 's/.*prim: *\([A-Z0-9]*\) *:\(.*\)$/\1:\2/p' | sed 's/ *:/:/'
}
