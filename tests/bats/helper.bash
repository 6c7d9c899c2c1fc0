# Shared setup for the bats suites: the built binary, a scratch directory,
# bats-support and bats-assert.
bats_require_minimum_version 1.5.0
load /usr/lib/bats/bats-support/load.bash
load /usr/lib/bats/bats-assert/load.bash

: "${ESTCTL:=$BATS_TEST_DIRNAME/../../estctl}"
: "${SRCDIR:=$BATS_TEST_DIRNAME/../..}"
export ESTCTL SRCDIR

estctl() { "$ESTCTL" "$@"; }

setup() {
	cd "$BATS_TEST_TMPDIR" || return 1
	umask 022
}

# flip_byte IN OFFSET OUT: a copy of IN with byte OFFSET xor'ed with 0x01 in
# OUT (IN and OUT may be the same file). A corruption must change the byte:
# writing a fixed value changes nothing when the byte already holds it.
flip_byte() {
	python3 -c 'import sys
d = bytearray(open(sys.argv[1], "rb").read())
d[int(sys.argv[2])] ^= 1
open(sys.argv[3], "wb").write(d)' "$1" "$2" "$3"
}

# Mode of a file as octal digits (600, 644).
file_mode() { stat -c %a "$1"; }

# Assert that the last `run` failed with a single-line message on stderr.
assert_one_line_error() {
	[ -n "$stderr" ] || fail "expected a message on stderr"
	[ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ] || fail "expected one line on stderr, got: $stderr"
	assert_equal "$output" ""
}
