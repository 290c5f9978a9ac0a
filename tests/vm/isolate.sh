#!/bin/sh
# Runs a command as if on a freshly booted guest: run-tests.sh starts each test
# binary through `unshare -m -n` and this script, so the binary gets its own
# network namespace (only `lo`) and private, empty /run (with /run/netns), /tmp,
# /var/lib and /etc/netns, and its own copy of /etc/hosts. Nothing one binary
# leaves behind (links, namespaces, state, the topology) reaches the next.
#
#   unshare -m -n --propagation private /bin/sh isolate.sh PROGRAM [ARGS]...

set -e
mount -t sysfs sysfs /sys
for dir in /run /tmp /var/lib /etc/netns; do
    mkdir -p "$dir"
    mount -t tmpfs tmpfs "$dir"
done
mkdir -p /run/netns
cp /etc/hosts /run/hosts.orig
mount --bind /run/hosts.orig /etc/hosts
/usr/sbin/ip link set lo up
cd /tmp
set +e
exec "$@"
