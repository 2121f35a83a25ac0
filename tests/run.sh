#!/bin/sh
# Runs test programs, shows their output, and ends with the total
# "N passed, M failed" over all of them. Exits non-zero if any test failed
# or any program crashed, timed out or ended before printing its own count.
#
#   sh tests/run.sh PROGRAM... [--sandbox PROGRAM...]
#
# Programs after --sandbox start sandboxes: they run once per backend.
# - process: here, with MOTE_BACKEND=process, when this machine can run it
#   (`mote doctor --check process`); otherwise one line says why and the
#   group counts as skipped, never as passed.
# - kvm: here where /dev/kvm exists; where it does not (or with
#   MOTE_TEST_VM=1, as `make test-vm` sets) inside a QEMU VM that emulates
#   AMD SVM (tests/vm/run-in-vm.sh).
# - process-vm: the process backend in that VM, on Debian 12's own kernel
#   (6.1: no PAGEMAP_SCAN, so guest writes are tracked with soft-dirty
#   bits). By default where the KVM group needs the VM anyway.
# Each group ends with a labelled count, so the reader sees what ran where.
# MOTE_TEST_TIMEOUT: seconds a program may run here (default 600).
# MOTE_TEST_BACKENDS: the groups to run the sandbox programs in (default
# "process kvm", and process-vm where /dev/kvm is missing).
TIMEOUT=${MOTE_TEST_TIMEOUT:-600}
default_backends="process kvm"
[ -e /dev/kvm ] || default_backends="process kvm process-vm"
BACKENDS=${MOTE_TEST_BACKENDS:-$default_backends}
here=""
sandbox=""
in_sandbox=0
for a in "$@"; do
	if [ "$a" = --sandbox ]; then
		in_sandbox=1
	elif [ $in_sandbox -eq 1 ]; then
		sandbox="$sandbox $a"
	else
		here="$here $a"
	fi
done

total_passed=0
total_failed=0
labels=""

# add LABEL PASSED FAILED
add() {
	total_passed=$((total_passed + $2))
	total_failed=$((total_failed + $3))
	labels="$labels$1: $2 passed, $3 failed
"
}

# count LINE: sets p and f from an "N passed, M failed" line.
count() {
	p=$(echo "$1" | sed -E 's/^([0-9]+) passed.*/\1/')
	f=$(echo "$1" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
}

# run_here PROGRAM...: sets passed and failed.
run_here() {
	passed=0
	failed=0
	crashed=""
	for t in "$@"; do
		echo "== $t"
		out=$(timeout --foreground -k 10 "$TIMEOUT" "$t" 2>&1)
		rc=$?
		printf '%s\n' "$out" | grep -v '^PASS ' | grep -v '^[0-9]* passed, [0-9]* failed'
		if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
			crashed="$crashed $t"
			failed=$((failed + 1))
			echo "   $t timed out after $TIMEOUT s (MOTE_TEST_TIMEOUT)"
			continue
		fi
		line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
		if [ -z "$line" ]; then
			crashed="$crashed $t"
			failed=$((failed + 1))
			echo "   $t exited with status $rc without a summary"
			continue
		fi
		count "$line"
		echo "   $line"
		passed=$((passed + p))
		failed=$((failed + f))
		if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
			crashed="$crashed $t"
			failed=$((failed + 1))
			echo "   $t exited with status $rc"
		fi
	done
	[ -n "$crashed" ] && echo "programs that failed to finish:$crashed"
}

# run_vm BACKEND LABEL: the sandbox programs in the QEMU VM.
run_vm() {
	log=$(mktemp /tmp/mote-vm-tests.XXXXXX)
	# shellcheck disable=SC2086
	MOTE_BACKEND=$1 sh tests/vm/run-in-vm.sh $sandbox 2>&1 | tee "$log"
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
	rm -f "$log"
	p=0
	f=1
	[ -n "$line" ] && count "$line"
	add "$2" "$p" "$f"
}

if [ -n "$here" ]; then
	# shellcheck disable=SC2086
	run_here $here
	add host "$passed" "$failed"
fi
skipped=""
first=$(echo $sandbox | cut -d' ' -f1)
build="$(dirname "$(dirname "$first")")"
mote="$build/bin/mote"
# test_portable hands snapshot files between the groups through here, for
# machines where no one group runs both backends.
portable=""
for t in $sandbox; do
	case $t in */test_portable) portable=$t ;; esac
done
MOTE_PORTABLE_DIR=""
if [ -n "$portable" ]; then
	MOTE_PORTABLE_DIR=$(mktemp -d "$(cd "$build" && pwd)/portable.XXXXXX")
	export MOTE_PORTABLE_DIR
	trap 'rm -rf "$MOTE_PORTABLE_DIR"' EXIT
fi
ran_process=0
vm_ran=0
for backend in $BACKENDS; do
	[ -n "$sandbox" ] || break
	case $backend in
	process)
		if why=$("$mote" doctor --check process 2>&1); then
			echo "== sandbox tests on the process backend"
			# shellcheck disable=SC2086
			MOTE_BACKEND=process run_here $sandbox
			add "process" "$passed" "$failed"
			ran_process=1
		else
			echo "== process backend skipped: $why"
			skipped="$skipped
process: skipped: $why"
		fi
		;;
	kvm)
		if [ -e /dev/kvm ] && [ "${MOTE_TEST_VM:-0}" != 1 ]; then
			echo "== sandbox tests on the KVM backend"
			# shellcheck disable=SC2086
			MOTE_BACKEND=kvm run_here $sandbox
			add "kvm (/dev/kvm)" "$passed" "$failed"
		else
			run_vm kvm "kvm (QEMU VM, emulated)"
			vm_ran=1
		fi
		;;
	process-vm)
		run_vm process "process (QEMU VM, Debian's kernel)"
		;;
	*)
		echo "unknown backend '$backend' in MOTE_TEST_BACKENDS"
		add "$backend" 0 1
		;;
	esac
done
# The KVM group ran in the VM, after the process group, and saved a file for
# it (the VM could not run the process backend itself, so test_portable did
# not try both there): the process backend now starts that file.
if [ -n "$portable" ] && [ $ran_process -eq 1 ] && [ $vm_ran -eq 1 ] &&
	[ -f "$MOTE_PORTABLE_DIR/from-kvm.snap" ]; then
	echo "== the process backend starts the snapshot file KVM saved in the VM"
	MOTE_BACKEND=process run_here "$portable"
	add "process (files from the VM)" "$passed" "$failed"
fi
if [ -n "$sandbox" ]; then
	printf '%s%s\n' "$labels" "$skipped" | sed '/^$/d; s/^/   /'
fi
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
