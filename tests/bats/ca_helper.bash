# Helpers for ca.bats: the issue_tool driver and CSRs made by openssl alone,
# with the DeviceProfile DER built by `openssl asn1parse -genconf`.
ISSUE_TOOL="${BUILDDIR:-$BATS_TEST_DIRNAME/../..}/tests/unit/issue_tool"
PROFILE_OID=2.25.335185497663826327032788806889900675368

issue_tool() { "$ISSUE_TOOL" "$@"; }

# profile_hex THING CONNECT_RESOURCE PUBLISH_RESOURCE: the DER as hex.
profile_hex() {
	cat > profile.cnf <<-CNF
	asn1=SEQUENCE:profile
	[profile]
	version=INT:1
	thing=UTF8:$1
	perms=SEQUENCE:perms
	[perms]
	p1=SEQUENCE:connect
	p2=SEQUENCE:publish
	[connect]
	action=ENUMERATED:0
	effect=ENUMERATED:0
	res=SEQUENCE:cres
	[cres]
	r1=UTF8:$2
	[publish]
	action=ENUMERATED:1
	effect=ENUMERATED:0
	res=SEQUENCE:pres
	[pres]
	r1=UTF8:$3
	CNF
	openssl asn1parse -genconf profile.cnf -noout -out profile.der >/dev/null &&
		od -An -v -tx1 profile.der | tr -d ' \n'
}

# make_csr OUT THING CONNECT PUBLISH [ec|ed25519|rsa]: OUT (PEM) and OUT.key.
make_csr() {
	local out=$1 thing=$2 conn=$3 pub=$4 hex
	hex=$(profile_hex "$thing" "$conn" "$pub") || return 1
	case ${5:-ec} in
	ec) set -- -newkey ec -pkeyopt ec_paramgen_curve:P-256 ;;
	ed25519) set -- -newkey ed25519 ;;
	rsa) set -- -newkey rsa:2048 ;;
	esac
	openssl req -new -nodes -keyout "$out.key" -subj "/CN=$thing" \
		-addext "$PROFILE_OID=DER:$hex" -out "$out" "$@" 2>/dev/null
}
