#!/bin/sh
# The main job behind `make demo`: build a guest with mote-cc, start it from
# its ELF, save a snapshot, start again from the snapshot file, and measure
# cold starts across heap sizes against each backend's floor.
set -e
B=${1:-build}
MOTE="$B/bin/mote"
DIR=$(mktemp -d /tmp/mote-demo-XXXXXX)
trap 'rm -rf "$DIR"' EXIT

step() { printf '\n== %s\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

step "0. Which backends this machine runs (the demo uses the one auto picks)"
show "$MOTE" doctor

step "1. Build a guest with mote-cc (examples/hello/hello.c)"
show "$B/bin/mote-cc" -o "$DIR/hello.elf" examples/hello/hello.c

step "2. Start it from the ELF and call a function"
show "$MOTE" run "$DIR/hello.elf" hello world

step "3. Boot it with a 1 GiB heap, warm it up with one call, save a snapshot"
show "$MOTE" snapshot "$DIR/hello.elf" --heap 1G -o "$DIR/hello.snap" --call hello warm-up
ls -l "$DIR/hello.snap" | awk '{print "   file size: " $5 " bytes (only written pages are stored)"}'
show "$MOTE" inspect "$DIR/hello.snap"

step "4. Start from the snapshot file: no ELF parsing, no init, memory mapped copy-on-write"
show "$MOTE" run "$DIR/hello.snap" hello snapshot

step "5. A host program embedding libmote, giving the guest one host function"
show "$B/examples/embed" "$B/examples/hostcall.elf"

step "6. A WebAssembly module inside a sandbox, embedded in a host program"
show "$B/examples/wasm-host" "$B/examples/pricing.wasm"
show "$MOTE" wasm run "$B/examples/fib.wasm" --invoke fib 25
show "$MOTE" wasm snapshot "$B/examples/fib.wasm" -o "$DIR/fib.snap"
show "$MOTE" run "$DIR/fib.snap" fib 25
printf '   compiled ahead of time (translated to C, gcc -O2), it runs at native speed:\n'
show "$MOTE" wasm compile --no-cache "$B/examples/fib.wasm" -o "$DIR/fib.elf"
show "$MOTE" wasm run "$DIR/fib.elf" --invoke fib 30

step "7. Cold start across heap sizes, against each backend's floor measured in the same run"
"$MOTE" bench coldstart restore --runs 11
