#!/bin/sh
# Installs the Debian packages mote needs, only those that are missing:
# the packages named as arguments, or by default those of the build. Run by
# `make demo` and `make test` so a fresh Debian 12 machine needs no manual
# step. Needs root (or sudo) only when something is missing.
set -e
need="gcc make libc6-dev libssl-dev pkg-config clang lld libclang-rt-14-dev wabt wasi-libc
      libdw-dev libelf-dev gdb libclang-rt-14-dev-wasm32"
[ $# -gt 0 ] && need="$*"
missing=""
for p in $need; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "mote: installing Debian packages:$missing"
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get update -q
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing
fi
if [ $# -eq 0 ] && { [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; }; then
	echo "mote: note: /dev/kvm is not accessible: sandboxes run on the process" \
		"backend here (mote doctor says why), and make test runs the KVM tests" \
		"in a QEMU VM" >&2
fi
