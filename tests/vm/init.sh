#!/bin/sh
# PID 1 of the test VM: prepare a minimal system, run the job the initramfs was
# built for (/etc/ipvlan-vm/job.sh), print the result marker, power off.
# Without a clean power-off the kernel panics and QEMU (-no-reboot) exits anyway.

export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb RUST_BACKTRACE=1
# What tests and scripts may rely on inside the guest.
export IPVLAN_VM=1
export IPVLAN_BIN=/usr/bin/ipvlan
export IPVLAN_IP=/usr/sbin/ip
export IPVLAN_TOPOLOGY=/usr/share/ipvlan-test/topology.sh

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/netns /dev/pts /dev/shm
# Terminals, as on any host (a test plays a terminal's Ctrl-C through a pty).
mount -t devpts -o ptmxmode=0666 devpts /dev/pts
hostname ipvlan-vm
/usr/sbin/ip link set lo up

kernel=$(uname -r)
echo "ipvlan-vm: booted kernel $kernel"
while read -r module params; do
    # $params unquoted: zero or more name=value words.
    insmod "/lib/modules/$kernel/kernel/$module" $params || echo "ipvlan-vm: insmod $module failed"
done < /etc/ipvlan-vm/modules

# Kernel messages would interleave with test output on the console; keep them in
# the ring buffer (run-tests.sh prints them after a failing binary).
echo 1 > /proc/sys/kernel/printk

cd /tmp
/bin/sh /etc/ipvlan-vm/job.sh
status=$?
echo "IPVLAN-VM-RESULT: $status"
sync
poweroff -f
