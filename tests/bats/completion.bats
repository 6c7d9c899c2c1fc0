#!/usr/bin/env bats
# The bash completion script, completions/estctl, driven by the binary's
# --list-commands, --list-options and --help.

load helper

# complete WORDS...: run the completion function on the command line WORDS
# (the last one being completed) and put the candidates in $reply, one a line.
complete_words() {
	COMP_WORDS=("$@")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMP_LINE="$*"
	COMP_POINT=${#COMP_LINE}
	COMPREPLY=()
	_estctl
	reply=$(printf '%s\n' "${COMPREPLY[@]}")
}

setup() {
	cd "$BATS_TEST_TMPDIR" || return 1
	PATH="$(dirname "$ESTCTL"):$PATH"
	unset -f estctl     # the completion runs the binary, as in a user's shell
	# shellcheck source=/dev/null
	source "$SRCDIR/completions/estctl"
}

@test "the script registers a completion for estctl" {
	run -0 complete -p estctl
	assert_output "complete -F _estctl estctl"
}

@test "estctl k completes to the keygen verb" {
	complete_words estctl k
	assert_equal "$reply" keygen
}

@test "estctl with nothing typed offers every verb and help" {
	complete_words estctl ""
	assert_equal "$reply" "$(estctl --list-commands; echo help)"
}

@test "estctl - offers the global options" {
	complete_words estctl --
	assert_equal "$reply" "$(printf '%s\n' --help --version --list-commands)"
}

@test "estctl keygen --f completes to --force" {
	complete_words estctl keygen --f
	assert_equal "$reply" --force
}

@test "estctl keygen -- offers every keygen option, arguments marked by =" {
	complete_words estctl keygen --
	assert_equal "$reply" "$(printf '%s\n' --type= --out= --force --pub= --json --help)"
}

@test "estctl keygen -t ec offers the EC key types" {
	complete_words estctl keygen -t ec
	assert_equal "$reply" "$(printf '%s\n' ec-p256 ec-p384)"
	complete_words estctl keygen --type ""
	assert_equal "$(wc -l <<<"$reply")" 7
	complete_words estctl keygen --type = r
	assert_equal "$reply" "$(printf '%s\n' rsa2048 rsa3072 rsa4096)"
}

@test "estctl keygen -o and --pub complete file names" {
	mkdir keys && touch keys/a.pem keys/b.pem other
	complete_words estctl keygen -o keys/
	# compgen -f lists in directory order (newest first on tmpfs); readline sorts.
	assert_equal "$(LC_ALL=C sort <<<"$reply")" "$(printf '%s\n' keys/a.pem keys/b.pem)"
	complete_words estctl keygen -t ed25519 --pub o
	assert_equal "$reply" other
}

@test "a flag is not taken for an option with an argument" {
	complete_words estctl keygen --force --j
	assert_equal "$reply" --json
}

@test "estctl help k completes the verb" {
	complete_words estctl help k
	assert_equal "$reply" keygen
	complete_words estctl help keygen ""
	assert_equal "$reply" ""
}

@test "the completion follows the binary named on the command line" {
	complete_words "$ESTCTL" ke
	assert_equal "$reply" keygen
}

@test "estctl server offers its subcommands, then each subcommand's own options" {
	complete_words estctl server ""
	assert_equal "$reply" "$(printf '%s\n' init passwd approve list show revoke reset)"
	complete_words estctl server re
	assert_equal "$reply" "$(printf '%s\n' revoke reset)"
	complete_words estctl server list --
	assert_equal "$reply" "$(printf '%s\n' --json --expiring= --help)"
	complete_words estctl server init --ca-key-t
	assert_equal "$reply" "--ca-key-type="
}
