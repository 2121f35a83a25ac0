#!/bin/sh
# Runs a command as a machine without /dev/kvm would: in a private mount
# namespace whose /dev holds everything the real one does except kvm. Needs
# root (or CAP_SYS_ADMIN). For trying the VM fallback of `make test` on a
# machine that has KVM:  sh tests/vm/no-kvm.sh make test
set -e
if [ $# -eq 0 ]; then
	echo "usage: $0 COMMAND [ARG...]" >&2
	exit 2
fi
exec unshare --mount --propagation private sh -c '
set -e
old=$(mktemp -d /tmp/mote-dev.XXXXXX)
mount --rbind /dev "$old"
mount -t tmpfs -o mode=755,nosuid dev-without-kvm /dev
for e in "$old"/* "$old"/.[!.]*; do
	[ -e "$e" ] || [ -L "$e" ] || continue
	n=${e##*/}
	[ "$n" = kvm ] && continue
	if [ -L "$e" ]; then
		cp -P "$e" "/dev/$n"
	elif [ -d "$e" ]; then
		mkdir "/dev/$n" && mount --rbind "$e" "/dev/$n"
	else
		: > "/dev/$n" && mount --bind "$e" "/dev/$n"
	fi
done
umount -l "$old" && rmdir "$old"
exec "$@"
' sh "$@"
