#!/bin/sh
# The main job behind `make demo`: build a guest with mote-cc, run it, embed
# libmote in a host program, and measure mote against the bare-KVM floor.
set -e
B=${1:-build}
echo "== A guest built with mote-cc, called from the mote command"
echo "\$ mote run hello.elf hello world"
"$B/bin/mote" run "$B/examples/hello.elf" hello world
echo
echo "== A host program embedding libmote, giving the guest one host function"
"$B/examples/embed" "$B/examples/hostcall.elf"
echo
echo "== What it costs (bare-KVM floor measured in the same run)"
"$B/bin/mote" bench --runs 11
