# fleet-hosts.sh - stand-in "hosts" for rollout tests and demos: network
# namespaces TAGh0..TAGh<N-1>, each joined to the root namespace by a veth
# pair on its own /30 (10.99.S.4i+1 on the root side, 10.99.S.4i+2 inside).
# Sourced (bash) by tests/bats/ops_hosts.bats and scripts/ops-demo.
#
# TAG must be unique to the run (include $$): it names the namespaces and
# links, so parallel runs never touch each other's. Needs CAP_SYS_ADMIN.

# fleet_free_subnet - print an S for 10.99.S.0/24 that no interface uses.
fleet_free_subnet() {
	local s=$(( $$ % 250 )) _

	for _ in $(seq 250); do
		ip -4 -o addr show | grep -q " 10\.99\.$s\." || break
		s=$(( (s + 1) % 250 ))
	done
	echo "$s"
}

# fleet_addr S I - the address host I's server binds.
fleet_addr() {
	echo "10.99.$1.$(( 4 * $2 + 2 ))"
}

# fleet_up TAG N S - create the N hosts on subnet S. Returns non-zero, with
# the error on stderr and what it made removed, when any step fails.
fleet_up() {
	local tag=$1 n=$2 s=$3 i ns

	for ((i = 0; i < n; i++)); do
		ns=${tag}h$i
		if ! { ip netns add "$ns" &&
		       ip link add "${tag}r$i" type veth peer name "${tag}n$i" &&
		       ip link set "${tag}n$i" netns "$ns" &&
		       ip addr add "10.99.$s.$((4 * i + 1))/30" dev "${tag}r$i" &&
		       ip link set "${tag}r$i" up &&
		       ip -n "$ns" addr add "$(fleet_addr "$s" "$i")/30" \
				dev "${tag}n$i" &&
		       ip -n "$ns" link set "${tag}n$i" up &&
		       ip -n "$ns" link set lo up; }; then
			fleet_down "$tag" "$n"
			return 1
		fi
	done
}

# fleet_down TAG N - remove the hosts; safe on a partial or absent fleet.
# Deleting a namespace does not kill its processes: stop them first.
fleet_down() {
	local tag=$1 n=$2 i

	for ((i = 0; i < n; i++)); do
		ip link del "${tag}r$i" 2>/dev/null || true
		ip netns del "${tag}h$i" 2>/dev/null || true
	done
	! ip netns list | grep -q "^${tag}h"
}
