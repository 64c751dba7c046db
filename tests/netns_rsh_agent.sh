#!/bin/bash
# netns_rsh_agent.sh [OPTIONS] HOST COMMAND...: Open MPI's rsh agent for
# tests/test_multihost.sh (mpirun --mca plm_rsh_agent). Where ssh would log in
# to HOST and run COMMAND (one shell command line: orted and its arguments),
# this runs it inside HOST's network namespace, ${UNET_NETNS_PREFIX}HOST, in a
# UTS namespace of its own whose hostname is HOST, so the orted and its ranks
# see HOST as their host name and only that namespace's network.
set -eu
while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do shift; done # ssh-style options: none apply here
[ $# -ge 2 ] || { echo "netns_rsh_agent.sh: usage: netns_rsh_agent.sh HOST COMMAND..." >&2; exit 2; }
host=$1
shift
ns="${UNET_NETNS_PREFIX:?netns_rsh_agent.sh: UNET_NETNS_PREFIX is not set}$host"
ip netns list | awk '{print $1}' | grep -qx "$ns" || { echo "netns_rsh_agent.sh: no network namespace $ns for host $host" >&2; exit 255; }
# shellcheck disable=SC2016 # expanded by the inner shell
exec ip netns exec "$ns" unshare --uts sh -c 'hostname "$1" && shift && exec sh -c "$*"' netns-agent "$host" "$@"
