#!/bin/sh
# Runs test programs that need /dev/kvm inside a QEMU VM whose KVM is real:
# QEMU's software emulator (TCG) emulates AMD SVM with nested paging, so
# Debian's kernel booted in it loads kvm_amd and offers /dev/kvm on any
# x86-64 machine, with or without KVM of its own. The same VM runs the
# process backend on Debian 12's own kernel (MOTE_BACKEND=process).
#
#   sh tests/vm/run-in-vm.sh PROGRAM...
#
# The VM sees the host's root filesystem read-only over virtio-9p and runs
# the programs, unchanged, from this checkout with tests/run.sh; their output
# streams here as they run and the last line is "N passed, M failed". A VM
# that does not boot, a kvm_amd that does not load or a program that times
# out counts as failed, with the reason. QEMU never outlives this script.
#
# Environment: MOTE_VM_MEM (MiB, default 6144), MOTE_TEST_TIMEOUT (seconds
# per program, default 900), MOTE_VM_TIMEOUT (seconds for the whole VM,
# default 2400), MOTE_VM_DIR (kernel, initramfs and runs; default build/vm),
# MOTE_VM_CPU (QEMU's -cpu, default max; max,-svm shows a VM without KVM).
set -u
cd "$(dirname "$0")/../.."
top=$(pwd)
VM_DIR=${MOTE_VM_DIR:-build/vm}
MEM=${MOTE_VM_MEM:-6144}
PROGRAM_TIMEOUT=${MOTE_TEST_TIMEOUT:-900}
VM_TIMEOUT=${MOTE_VM_TIMEOUT:-2400}
CPU=${MOTE_VM_CPU:-max}
label="${MOTE_BACKEND:-kvm} (QEMU VM)"

# The closing line when the VM could not run the programs at all.
give_up() {
	echo "   $label: $*" >&2
	echo "0 passed, 1 failed"
	exit 1
}

[ $# -gt 0 ] || give_up "no test programs given"
for p in "$@"; do
	[ -x "$p" ] || give_up "$p is not an executable test program"
done
[ "$(uname -m)" = x86_64 ] || give_up "the test VM needs an x86-64 host (it emulates AMD SVM)"

sh scripts/deps.sh qemu-system-x86 cpio kmod >&2 || give_up "cannot install qemu-system-x86, cpio, kmod"
mkdir -p "$VM_DIR" || give_up "cannot create $VM_DIR"
VM_DIR=$(cd "$VM_DIR" && pwd)
# Paths go on QEMU's and the kernel's command lines, which split at these.
case "$VM_DIR$top" in
*[[:space:],\'\"]*) give_up "the checkout and MOTE_VM_DIR paths must not contain spaces, commas or quotes" ;;
esac

# ---- Debian's kernel, unpacked into the build tree (not installed) ----
kernel_package() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1
}
KDIR="$VM_DIR/kernel"
want="kvm-amd virtio_pci 9pnet_virtio 9p overlay"
if [ ! -f "$KDIR/vmlinuz" ] || [ ! -f "$KDIR/modules.order" ] ||
	[ "$(cat "$KDIR/wanted" 2>/dev/null)" != "$want" ]; then
	pkg=$(kernel_package)
	if [ -z "$pkg" ]; then
		apt-get update -q >&2 || true
		pkg=$(kernel_package)
	fi
	[ -n "$pkg" ] || give_up "apt-cache knows no linux-image-amd64 (Debian's kernel)"
	rm -rf "$KDIR" && mkdir -p "$KDIR/deb" || give_up "cannot create $KDIR"
	echo "   $label: fetching Debian's kernel $pkg" >&2
	(cd "$KDIR/deb" && apt-get download "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed') >&2
	deb=$(ls "$KDIR"/deb/*.deb 2>/dev/null | head -n 1)
	[ -n "$deb" ] || give_up "apt-get download $pkg failed"
	dpkg-deb --fsys-tarfile "$deb" | tar -t > "$KDIR/files" || give_up "cannot read $deb"
	vmlinuz=$(grep '^\./boot/vmlinuz-' "$KDIR/files" | head -n 1)
	[ -n "$vmlinuz" ] || give_up "$deb holds no kernel image"
	dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$KDIR" "$vmlinuz" || give_up "cannot unpack $vmlinuz"
	mv "$KDIR/$vmlinuz" "$KDIR/vmlinuz"

	# Only the modules the VM needs and what they depend on, read from each
	# module's own .modinfo (the package ships no modules.dep): one pass
	# over the package per level of dependencies.
	module_path() { # NAME: its path in the package, - and _ alike
		n=$(echo "$1" | tr - _)
		grep -E "/kernel/.*/($n|$(echo "$n" | tr _ -))\.ko$" "$KDIR/files" | head -n 1
	}
	deps_of() {
		modinfo -F depends "$KDIR/$(module_path "$1")" | tr , ' '
	}
	todo=$want
	seen=" "
	while [ -n "$todo" ]; do
		paths=""
		for m in $todo; do
			n=$(echo "$m" | tr - _)
			case "$seen" in *" $n "*) continue ;; esac
			seen="$seen$n "
			path=$(module_path "$m")
			[ -n "$path" ] || give_up "module $m is not in $deb"
			paths="$paths $path"
		done
		[ -n "$paths" ] || break
		# shellcheck disable=SC2086
		dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$KDIR" $paths ||
			give_up "cannot unpack modules from $deb"
		todo=""
		for path in $paths; do
			todo="$todo $(modinfo -F depends "$KDIR/$path" | tr , ' ')"
		done
	done
	# Load order: dependencies first (sh has no locals, so everything
	# after the recursion is derived from $1 again).
	ordered=" "
	order() {
		n=$(echo "$1" | tr - _)
		case "$ordered" in *" $n "*) return 0 ;; esac
		ordered="$ordered$n "
		for d in $(deps_of "$1"); do
			order "$d"
		done
		echo "$KDIR/$(module_path "$1")" >> "$KDIR/modules.order.tmp"
	}
	: > "$KDIR/modules.order.tmp"
	for m in $want; do
		order "$m"
	done
	echo "$pkg" > "$KDIR/package"
	echo "$want" > "$KDIR/wanted"
	mv "$KDIR/modules.order.tmp" "$KDIR/modules.order"
	rm -rf "$KDIR/deb"
fi

# ---- The initramfs: our init (tests/vm/init.c) and the modules ----
INITRD="$VM_DIR/initrd.img"
if [ ! -f "$INITRD" ] || [ tests/vm/init.c -nt "$INITRD" ] || [ "$0" -nt "$INITRD" ] ||
	[ "$KDIR/modules.order" -nt "$INITRD" ]; then
	root="$VM_DIR/initramfs"
	rm -rf "$root" && mkdir -p "$root/modules" "$root/dev" "$root/proc" "$root/sys" "$root/host"
	${CC:-gcc} -static -O2 -Wall -Wextra -Werror -o "$root/init" tests/vm/init.c ||
		give_up "cannot build tests/vm/init.c"
	while read -r ko; do
		cp "$ko" "$root/modules/" && basename "$ko"
	done < "$KDIR/modules.order" > "$root/modules/order"
	(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > "$INITRD.tmp" &&
		mv "$INITRD.tmp" "$INITRD" || give_up "cannot write $INITRD"
fi

# ---- One run: a results folder the VM writes through a second 9p share ----
# Folders of runs whose script was killed (SIGKILL leaves no chance to clean).
for d in "$VM_DIR"/run.*; do
	[ -d "$d" ] && ! kill -0 "${d##*.}" 2>/dev/null && rm -rf "$d"
done
RUN="$VM_DIR/run.$$"
rm -rf "$RUN" && mkdir "$RUN" || give_up "cannot create $RUN"
qemu_pid=""
tail_pid=""
cleanup() {
	for p in $qemu_pid $tail_pid; do
		kill -KILL "$p" 2>/dev/null
	done
	wait 2>/dev/null
	rm -rf "$RUN"
}
trap cleanup EXIT
trap 'cleanup; trap - EXIT; exit 130' INT TERM HUP

: > "$RUN/output"
mkdir -p "$RUN/out"
{
	echo "cd '$top' || exit 1"
	# Settings that change how the tests run go in with them.
	env | grep -E '^(MOTE_[A-Z0-9_]*|ASAN_OPTIONS|UBSAN_OPTIONS|LSAN_OPTIONS)=' |
		grep -v '^MOTE_TEST_VM=' | sed "s/'/'\\\\''/g; s/=/='/; s/\$/'/; s/^/export /"
	# Files the tests hand to later groups (test_portable) go out here.
	echo "export MOTE_PORTABLE_OUT='$RUN/out'"
	echo "MOTE_TEST_TIMEOUT=$PROGRAM_TIMEOUT sh tests/run.sh $* > '$RUN/output' 2>&1"
	echo "echo \$? > '$RUN/status'"
} > "$RUN/cmd.sh"

echo "   $label: booting Debian's $(cat "$KDIR/package" 2>/dev/null) in qemu-system-x86_64 (TCG, emulated SVM)" >&2
started=$(date +%s)
# pdeathsig on timeout and on QEMU: if this script dies, so do they.
setpriv --pdeathsig KILL timeout -k 10 "$VM_TIMEOUT" \
	setpriv --pdeathsig KILL qemu-system-x86_64 \
	-accel tcg,thread=single -cpu "$CPU" -smp 1 -m "$MEM" \
	-nodefaults -nographic -no-reboot -monitor none -serial "file:$RUN/console" \
	-kernel "$KDIR/vmlinuz" -initrd "$INITRD" \
	-append "console=ttyS0 quiet panic=-1 mote.run=$RUN" \
	-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
	-virtfs "local,path=$RUN,mount_tag=results,security_model=none,multidevs=remap" \
	> "$RUN/qemu.log" 2>&1 &
qemu_pid=$!
# The programs' output as it comes; the count is printed once, at the end.
tail -n +1 -f --pid="$qemu_pid" "$RUN/output" 2>/dev/null |
	grep --line-buffered -v -E '^[0-9]+ passed, [0-9]+ failed$' &
tail_pid=$!
wait "$qemu_pid"
qemu_rc=$?
qemu_pid=""
wait "$tail_pid" 2>/dev/null
tail_pid=""
elapsed=$(($(date +%s) - started))

why=""
if [ "$qemu_rc" -eq 124 ] || { [ "$qemu_rc" -eq 137 ] && [ "$elapsed" -ge "$VM_TIMEOUT" ]; }; then
	why="the VM ran past MOTE_VM_TIMEOUT=$VM_TIMEOUT s and was killed"
elif [ -s "$RUN/vm-error" ]; then
	why="the VM could not run the tests: $(cat "$RUN/vm-error")"
elif grep -q 'mote-vm: error: ' "$RUN/console" 2>/dev/null; then
	# Failed before the results folder was mounted: the console has it.
	why="the VM could not run the tests: $(sed -n 's/^.*mote-vm: error: //p' "$RUN/console" | tail -n 1)"
elif [ ! -s "$RUN/status" ]; then
	why="the VM stopped before the tests finished (QEMU exit status $qemu_rc)"
fi
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$RUN/output" | tail -n 1)
if [ -n "${MOTE_PORTABLE_DIR:-}" ] && [ -d "$MOTE_PORTABLE_DIR" ]; then
	cp "$RUN/out"/* "$MOTE_PORTABLE_DIR"/ 2>/dev/null
fi
if [ -n "$why" ] || [ -z "$line" ]; then
	echo "   $label: ${why:-the test run printed no summary}" >&2
	for f in qemu.log console; do
		if [ -s "$RUN/$f" ]; then
			echo "   --- last lines of $f:" >&2
			tail -n 15 "$RUN/$f" | tr -cd '\11\12\40-\176' | sed 's/^/   | /' >&2
		fi
	done
	if [ -n "$line" ]; then
		p=${line%% passed*}
		f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
		echo "$p passed, $((f + 1)) failed"
	else
		echo "0 passed, 1 failed"
	fi
	exit 1
fi
kernel_line=$(head -n 1 "$RUN/vm-log" 2>/dev/null)
echo "   $label: $kernel_line; ${elapsed} s from boot to power-off" >&2
echo "$line"
[ "$(cat "$RUN/status")" = 0 ]
