#!/bin/sh
# The walkthrough, run by `cargo xtask demo` after topology.sh has built the
# network. Each command is printed before its output.

IP=${IPVLAN_IP:-/usr/sbin/ip}

run() {
    echo "+ $*"
    "$@"
}

run $IP -br addr
run $IP -n router -br addr
run ping -c 2 -W 2 192.168.1.1
