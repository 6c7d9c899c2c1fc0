# Helpers for rotate.bats: device directories with certificates of a chosen
# age, signed by certtool (not estctl) with the responder's CA.

load client_helper

# make_device DIR THING START_DAYS DAYS [URL]: DIR as enroll --config writes
# it, holding a certificate for THING valid from START_DAYS (negative: in the
# past) for DAYS days, issued by $PKI's CA; est.json points at URL
# (default $PLAIN_URL) and carries the profile.
make_device() {
	local dir=$1 thing=$2 start=$3 days=$4 url=${5:-$PLAIN_URL} nb na
	[ -n "$days" ] || { echo "make_device DIR THING START_DAYS DAYS [URL]" >&2; return 1; }
	mkdir -p "$dir"
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/key.pem" 2>/dev/null
	chmod 600 "$dir/key.pem"
	nb=$(( $(date +%s) + start * 86400 ))
	na=$(( nb + days * 86400 ))
	cat >"$dir/tmpl" <<-T
	cn = "$thing"
	activation_date = "$(date -u -d "@$nb" '+%Y-%m-%d %H:%M:%S')"
	expiration_date = "$(date -u -d "@$na" '+%Y-%m-%d %H:%M:%S')"
	signing_key
	tls_www_client
	T
	certtool --generate-certificate --load-privkey "$dir/key.pem" --load-ca-certificate \
		"$PKI/ca.pem" --load-ca-privkey "$PKI/ca.key" --template "$dir/tmpl" \
		--outfile "$dir/cert.pem" 2>/dev/null || { echo "certtool failed for $thing" >&2; return 1; }
	rm -f "$dir/tmpl"
	cp "$dir/cert.pem" "$dir/chain.pem"
	cp "$PKI/ca.pem" "$dir/ca.pem"
	cat >"$dir/est.json" <<-J
	{ "url": "$url",
	  "IoTDetails": { "ThingName": "$thing", "Policies": { "Connect": true },
	                  "Topics": { "Connect": [ "client/$thing" ] } } }
	J
}

# The SHA-256 of the public key in a certificate or private key file.
pubkey_of() {
	if grep -q CERTIFICATE "$1"; then
		openssl x509 -in "$1" -noout -pubkey
	else
		openssl pkey -in "$1" -pubout
	fi | sha256sum | cut -c1-64
}

# A checksum of every file of DIR, names included, to show nothing changed.
dir_sum() { (cd "$1" && sha256sum $(ls -A | sort)) | sha256sum | cut -c1-64; }

# The due time of a certificate by the man page's formula, in Python (not
# estctl's code): prints RFC 3339. ARGS: CERT AT BEFORE_SECONDS (-1: use AT).
due_by_formula() {
	python3 - "$@" <<-'P'
	import datetime, hashlib, subprocess, sys
	cert, at, before = sys.argv[1], eval(sys.argv[2]), int(sys.argv[3])
	def field(opt):
	    return subprocess.check_output(["openssl", "x509", "-in", cert, "-noout", opt],
	                                   text=True).split("=", 1)[1].strip()
	def when(s):
	    return int(datetime.datetime.strptime(s, "%b %d %H:%M:%S %Y %Z")
	               .replace(tzinfo=datetime.timezone.utc).timestamp())
	nb, na = when(field("-startdate")), when(field("-enddate"))
	serial = bytes.fromhex(field("-serial").rjust(2, "0") if len(field("-serial")) % 2 == 0
	                       else "0" + field("-serial"))
	if serial[0] & 0x80:
	    serial = b"\0" + serial                 # DER: a positive INTEGER
	life = na - nb
	start = na - before if before >= 0 else nb + int(life * at)
	m = min(life // 10, (na - start) // 2 if start < na else 0)
	h = int.from_bytes(hashlib.sha256(serial).digest()[:8], "big")
	due = start + (h % (m + 1) if m > 0 else 0)
	print(datetime.datetime.fromtimestamp(due, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
	P
}
