#!/bin/sh
# The walkthrough topology: the host's eth0 (192.168.1.250/24) is one end of a
# veth pair; the other end, `trunk`, sits in the namespace `router`, which plays
# the upstream switch and router (untagged and VLAN gateways, forwarding on).
#
#   topology.sh up     build it (fails if any part already exists)
#   topology.sh down   remove it (ignores parts already gone)
#
# iproute2 is called by full path: busybox's own `ip` lacks vlan/ipvlan support.

IP=${IPVLAN_IP:-/usr/sbin/ip}

# It adds and deletes `eth0` in the current namespace: never on a real host.
if [ "${IPVLAN_VM:-}" != 1 ]; then
    echo "topology.sh: runs only inside the test VM (IPVLAN_VM=1)" >&2
    exit 1
fi

up() {
    set -e
    $IP netns add router
    $IP -n router link set lo up
    $IP link add eth0 type veth peer name trunk netns router
    $IP addr add 192.168.1.250/24 dev eth0
    $IP link set eth0 up
    $IP -n router addr add 192.168.1.1/24 dev trunk
    $IP -n router link set trunk up
    for vlan in 20 30 40 114 139 140; do
        $IP -n router link add link trunk name "trunk.$vlan" type vlan id "$vlan"
        $IP -n router link set "trunk.$vlan" up
    done
    $IP -n router addr add 192.168.20.1/24 dev trunk.20
    $IP -n router addr add 192.168.30.1/24 dev trunk.30
    $IP -n router addr add 192.168.40.1/24 dev trunk.40
    # VLAN 114 starts without addresses (walkthrough step 5 adds them).
    $IP -n router addr add 2001:db8:abc2::22/64 dev trunk.139 nodad
    $IP -n router addr add 192.168.140.1/24 dev trunk.140
    $IP -n router addr add 192.168.142.1/24 dev trunk.140
    $IP -n router addr add 2001:db8:abc9::22/64 dev trunk.140 nodad
    $IP netns exec router sysctl -q -w net.ipv4.ip_forward=1
    $IP netns exec router sysctl -q -w net.ipv6.conf.all.forwarding=1
}

down() {
    $IP link del eth0 2>/dev/null
    $IP netns del router 2>/dev/null
    return 0
}

case "${1:-up}" in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 [up|down]" >&2; exit 2 ;;
esac
