#!/bin/sh
# Docker's ipvlan walkthrough, run by `cargo xtask demo` after
# topology.sh has built the network: the host's eth0 (192.168.1.250/24) is one
# end of a veth pair whose other end, `trunk`, sits in the namespace `router`,
# which plays the upstream switch and router for the untagged LAN and VLANs
# 20, 30, 40, 114, 139 and 140. Every command is printed before its output.
# A step that must fail says so; the demo stops at the first surprise.

IP=${IPVLAN_IP:-/usr/sbin/ip}
export IPVLAN_STATE_DIR=${IPVLAN_STATE_DIR:-/var/lib/ipvlan}
surprises=0

step() {
    echo
    echo "=== $* ==="
}

run() {
    echo "+ $*"
    if ! "$@"; then
        echo "!!! unexpected failure of: $*"
        surprises=$((surprises + 1))
        exit 1
    fi
}

# A command that must fail (isolation, refused input): shows its error output.
must_fail() {
    echo "+ $*    # must fail"
    if "$@"; then
        echo "!!! this should have failed: $*"
        exit 1
    fi
    echo "(failed, as it should)"
}

# `ipvlan inspect`'s IPv4 or IPv6 address of a container, without the prefix.
address_of() {
    ipvlan network inspect "$1" | grep -A6 "\"Name\": \"$2\"" |
        sed -n "s/.*\"$3\": \"\([^\"/]*\)\/.*/\1/p" | head -n 1
}

step "1. L2 on the host's network"
run ipvlan network create -d ipvlan --subnet=192.168.1.0/24 --gateway=192.168.1.1 -o ipvlan_mode=l2 -o parent=eth0 db_net
run ipvlan run --net=db_net --rm ip addr show eth0
run ipvlan run --net=db_net --rm ip route
run ipvlan run --net=db_net --rm ping -c 2 -W 2 192.168.1.1
echo "# the host's own address on the parent is not reachable from a container (ipvlan isolation):"
must_fail ipvlan run --net=db_net --rm ping -c 1 -W 1 192.168.1.250
run ipvlan network rm db_net

step "2. Defaults (mode l2, gateway .1) and name resolution"
run ipvlan network create -d ipvlan --subnet=192.168.1.0/24 -o parent=eth0 db_net_ipv
run ipvlan run --net=db_net_ipv --name=ipv1 -itd /bin/sh
run ipvlan run --net=db_net_ipv --name=ipv2 --rm ping -c 4 ipv1
run ipvlan network inspect db_net_ipv

step "3. Isolated networks (dummy parents, no default route)"
run ipvlan network create -d ipvlan --subnet=192.168.10.0/24 isolated1
run ipvlan network create -d ipvlan --subnet=192.168.11.0/24 --internal isolated2
run ipvlan network create -d ipvlan isolated3
run ipvlan run --net=isolated1 --name=cid1 -itd /bin/sh
run ipvlan run --net=isolated2 --name=cid2 -itd /bin/sh
run ipvlan run --net=isolated3 --name=cid3 -itd /bin/sh
run ipvlan run --net=isolated1 --name=cid4 -itd /bin/sh
run ipvlan exec cid1 ip route
run ipvlan exec cid3 ip addr show eth0
run ipvlan exec cid1 ping -c 2 -W 2 cid4
run $IP -br link show type dummy
run ipvlan network ls

step "4. 802.1Q trunk, L2 (eth0.20 and eth0.30 created on the fly)"
run ipvlan network create -d ipvlan --subnet=192.168.20.0/24 --gateway=192.168.20.1 -o parent=eth0.20 ipvlan20
run ipvlan network create -d ipvlan --subnet=192.168.30.0/24 --gateway=192.168.30.1 -o parent=eth0.30 -o ipvlan_mode=l2 ipvlan30
run $IP -d link show eth0.20
run ipvlan run --net=ipvlan20 -itd --name ivlan_test1 /bin/sh
run ipvlan run --net=ipvlan20 -itd --name ivlan_test2 /bin/sh
run ipvlan run --net=ipvlan30 -itd --name ivlan_test3 /bin/sh
run ipvlan run --net=ipvlan30 -itd --name ivlan_test4 /bin/sh
run ipvlan exec ivlan_test1 ping -c 2 -W 2 ivlan_test2
run ipvlan exec ivlan_test1 ping -c 2 -W 2 192.168.20.1
run ipvlan exec ivlan_test3 ip route
test4=$(address_of ipvlan30 ivlan_test4 IPv4Address)
echo "# VLAN 20 reaches VLAN 30 only through the router:"
run ipvlan exec ivlan_test1 ping -c 2 -W 2 "$test4"
run ipvlan rm -f ivlan_test1 ivlan_test2 ivlan_test3 ivlan_test4
run ipvlan network rm ipvlan20 ipvlan30
must_fail $IP link show eth0.20

step "5. Multi-subnet L2 on VLAN 114"
run ipvlan network create -d ipvlan --subnet=192.168.114.0/24 --subnet=192.168.116.0/24 --gateway=192.168.114.254 --gateway=192.168.116.254 -o parent=eth0.114 -o ipvlan_mode=l2 ipvlan114
run ipvlan run --net=ipvlan114 --ip=192.168.114.10 --name=v114 -itd /bin/sh
run ipvlan run --net=ipvlan114 --ip=192.168.116.10 --name=v116 -itd /bin/sh
run ipvlan exec v114 ip route
run ipvlan exec v116 ip route
echo "# the router has no address on VLAN 114 yet:"
must_fail ipvlan exec v114 ping -c 1 -W 1 192.168.116.10
run $IP -n router addr add 192.168.114.254/24 dev trunk.114
run $IP -n router addr add 192.168.116.254/24 dev trunk.114
run ipvlan exec v114 ping -c 2 -W 2 192.168.116.10

step "6. L3, no parent, two subnets"
run ipvlan network create -d ipvlan --subnet=192.168.214.0/24 --subnet=10.1.214.0/24 -o ipvlan_mode=l3 ipnet210
run ipvlan run --net=ipnet210 --ip=192.168.214.10 -itd /bin/sh
run ipvlan run --net=ipnet210 --ip=10.1.214.10 -itd /bin/sh
run ipvlan run --net=ipnet210 --ip=192.168.214.9 -it --rm ping -c 2 10.1.214.10
run ipvlan run --net=ipnet210 --ip=10.1.214.9 -it --rm ping -c 2 192.168.214.10
run ipvlan run --net=ipnet210 --rm ip route
run ipvlan run --net=ipnet210 --rm ip link show eth0

step "7. IPv6 L2 on VLAN 139"
run ipvlan network create -d ipvlan --ipv6 --subnet=2001:db8:abc2::/64 --gateway=2001:db8:abc2::22 -o parent=eth0.139 v6ipvlan139
run ipvlan run --net=v6ipvlan139 --name=v6a -itd /bin/sh
run ipvlan run --net=v6ipvlan139 --name=v6b -itd /bin/sh
run ipvlan exec v6a ip addr show eth0
run ipvlan exec v6a ip -6 route
v6a=$(address_of v6ipvlan139 v6a IPv6Address)
run ipvlan exec v6b ping -6 -c 2 -W 2 "$v6a"
run ipvlan exec v6a ping -6 -c 2 -W 2 2001:db8:abc2::22

step "8. Dual stack L2 on VLAN 140"
run ipvlan network create -d ipvlan --subnet=192.168.140.0/24 --subnet=192.168.142.0/24 --gateway=192.168.140.1 --gateway=192.168.142.1 --subnet=2001:db8:abc9::/64 --gateway=2001:db8:abc9::22 -o parent=eth0.140 -o ipvlan_mode=l2 ipvlan140
run ipvlan run --net=ipvlan140 --name=ds1 -itd /bin/sh
run ipvlan exec ds1 ip addr show eth0
run ipvlan exec ds1 ip route
run ipvlan exec ds1 ip -6 route
echo "# the docs' --ip6 lies in no subnet of ipvlan140:"
must_fail ipvlan run --net=ipvlan140 --ip6=2001:db8:abc2::51 -it --rm /bin/sh
run ipvlan run --net=ipvlan140 --ip6=2001:db8:abc9::51 -it --rm ip -6 addr show eth0
run ipvlan run --net=ipvlan140 --ip=192.168.140.10 -it --rm ip addr show eth0

step "9. Dual stack L3 on the host's parent"
run ipvlan rm -f ipv1
run ipvlan network rm db_net_ipv
run ipvlan network create -d ipvlan --subnet=192.168.110.0/24 --subnet=192.168.112.0/24 --subnet=2001:db8:abc6::/64 -o parent=eth0 -o ipvlan_mode=l3 ipnet110
run ipvlan run --net=ipnet110 --name=l3a -itd /bin/sh
run ipvlan run --net=ipnet110 --name=l3b --ip6=2001:db8:abc6::10 -itd /bin/sh
run ipvlan run --net=ipnet110 --name=l3c --ip=192.168.112.30 -itd /bin/sh
run ipvlan run --net=ipnet110 --name=l3d --ip6=2001:db8:abc6::50 --ip=192.168.112.50 -itd /bin/sh
run ipvlan exec l3d ip addr show eth0
run ipvlan exec l3d ip route
run ipvlan exec l3d ip -6 route
run ipvlan ps

step "10. The reuse bug (Address already in use) does not exist"
run ipvlan rm -f l3d
for i in 1 2 3 4 5; do
    run ipvlan run --net=ipnet110 --ip6=2001:db8:abc6::50 --ip=192.168.112.50 -it --rm ip -br addr show eth0
done

step "11. Links made by hand are used and left alone"
run $IP link add link eth0 name eth0.40 type vlan id 40
run $IP link set eth0.40 up
run ipvlan network create -d ipvlan --subnet=192.168.40.0/24 --gateway=192.168.40.1 -o parent=eth0.40 ipvlan40
run ipvlan run --net=ipvlan40 -itd --name ivlan_test5 /bin/sh
run ipvlan run --net=ipvlan40 -itd --name ivlan_test6 /bin/sh
run ipvlan exec ivlan_test5 ping -c 2 -W 2 ivlan_test6
run ipvlan exec ivlan_test5 ping -c 2 -W 2 192.168.40.1
run ipvlan rm -f ivlan_test5 ivlan_test6
run ipvlan network rm ipvlan40
run $IP -br link show eth0.40
run $IP link del eth0.40
run $IP link add link eth0 name foo type vlan id 40
run $IP link set foo up
run ipvlan network create -d ipvlan --subnet=192.168.40.0/24 --gateway=192.168.40.1 -o parent=foo ipvlan40
run ipvlan run --net=ipvlan40 -itd --name ivlan_test5 /bin/sh
run ipvlan exec ivlan_test5 ping -c 2 -W 2 192.168.40.1
run ipvlan rm -f ivlan_test5
run ipvlan network rm ipvlan40
run $IP -br link show foo
run $IP link del foo

step "12. Restart: parents deleted behind our back, then ipvlan restore"
run ipvlan network ls
run $IP link del eth0.140
for dummy in $($IP -br link show type dummy | cut -d' ' -f1 | cut -d@ -f1); do
    run $IP link del "$dummy"
done
must_fail ipvlan exec ds1 ip addr show eth0
run ipvlan restore
run ipvlan exec ds1 ip addr show eth0
run ipvlan exec cid1 ping -c 2 -W 2 cid4
run ipvlan ps

echo
echo "demo: all 12 steps of the walkthrough ran as the docs describe"
