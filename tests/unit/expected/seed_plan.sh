#!/usr/bin/env bash
# netnskit plan for network 'seed' (link group 237438951)
set -euo pipefail

# step 1: create namespace red
ip netns add red
#   undo: ip netns del red

# step 2: mark namespace red as netnskit:seed and bring its loopback up
ip -n red link set lo up alias netnskit:seed

# step 3: create namespace blue
ip netns add blue
#   undo: ip netns del blue

# step 4: mark namespace blue as netnskit:seed and bring its loopback up
ip -n blue link set lo up alias netnskit:seed

# step 5: create namespace orange
ip netns add orange
#   undo: ip netns del orange

# step 6: mark namespace orange as netnskit:seed and bring its loopback up
ip -n orange link set lo up alias netnskit:seed

# step 7: create namespace gray
ip netns add gray
#   undo: ip netns del gray

# step 8: mark namespace gray as netnskit:seed and bring its loopback up
ip -n gray link set lo up alias netnskit:seed

# step 9: create namespace lan
ip netns add lan
#   undo: ip netns del lan

# step 10: mark namespace lan as netnskit:seed and bring its loopback up
ip -n lan link set lo up alias netnskit:seed

# step 11: create namespace internet
ip netns add internet
#   undo: ip netns del internet

# step 12: mark namespace internet as netnskit:seed and bring its loopback up
ip -n internet link set lo up alias netnskit:seed

# step 13: enable IPv4 forwarding inside namespace lan
ip netns exec lan sysctl -w net.ipv4.ip_forward=1

# step 14: create bridge v-net-0 (link group 237438951)
ip link add name v-net-0 group 237438951 up type bridge mcast_snooping 0
#   undo: ip link del v-net-0

# step 15: mark v-net-0 as netnskit:seed
ip link set v-net-0 alias netnskit:seed

# step 16: give the host the gateway address 192.168.15.5/24 on v-net-0
ip addr add 192.168.15.5/24 dev v-net-0
#   undo: ip addr del 192.168.15.5/24 dev v-net-0

# step 17: enable forwarding on v-net-0
sysctl -w net/ipv4/conf/v-net-0/forwarding=1

# step 18: connect namespace red to v-net-0 (veth-red <-> eth0)
ip link add veth-red group 237438951 master v-net-0 type veth peer name eth0 netns red
#   undo: ip link del veth-red

# step 19: mark veth-red as netnskit:seed and bring it up (no IPv6 link-local address)
ip link set veth-red alias netnskit:seed addrgenmode none up

# step 20: bring up eth0 in red (no IPv6 link-local address)
ip -n red link set eth0 addrgenmode none up
#   undo: ip -n red link set eth0 down

# step 21: address red's eth0 as 192.168.15.1/24
ip -n red addr add 192.168.15.1/24 dev eth0
#   undo: ip -n red addr del 192.168.15.1/24 dev eth0

# step 22: route default via 192.168.15.5 in red
ip -n red route add default via 192.168.15.5
#   undo: ip -n red route del default via 192.168.15.5

# step 23: connect namespace blue to v-net-0 (veth-blue <-> eth0)
ip link add veth-blue group 237438951 master v-net-0 type veth peer name eth0 netns blue
#   undo: ip link del veth-blue

# step 24: mark veth-blue as netnskit:seed and bring it up (no IPv6 link-local address)
ip link set veth-blue alias netnskit:seed addrgenmode none up

# step 25: bring up eth0 in blue (no IPv6 link-local address)
ip -n blue link set eth0 addrgenmode none up
#   undo: ip -n blue link set eth0 down

# step 26: address blue's eth0 as 192.168.15.2/24
ip -n blue addr add 192.168.15.2/24 dev eth0
#   undo: ip -n blue addr del 192.168.15.2/24 dev eth0

# step 27: route default via 192.168.15.5 in blue
ip -n blue route add default via 192.168.15.5
#   undo: ip -n blue route del default via 192.168.15.5

# step 28: connect namespace orange to v-net-0 (veth-orange <-> eth0)
ip link add veth-orange group 237438951 master v-net-0 type veth peer name eth0 netns orange
#   undo: ip link del veth-orange

# step 29: mark veth-orange as netnskit:seed and bring it up (no IPv6 link-local address)
ip link set veth-orange alias netnskit:seed addrgenmode none up

# step 30: bring up eth0 in orange (no IPv6 link-local address)
ip -n orange link set eth0 addrgenmode none up
#   undo: ip -n orange link set eth0 down

# step 31: address orange's eth0 as 192.168.15.3/24
ip -n orange addr add 192.168.15.3/24 dev eth0
#   undo: ip -n orange addr del 192.168.15.3/24 dev eth0

# step 32: route default via 192.168.15.5 in orange
ip -n orange route add default via 192.168.15.5
#   undo: ip -n orange route del default via 192.168.15.5

# step 33: connect namespace gray to v-net-0 (veth-gray <-> eth0)
ip link add veth-gray group 237438951 master v-net-0 type veth peer name eth0 netns gray
#   undo: ip link del veth-gray

# step 34: mark veth-gray as netnskit:seed and bring it up (no IPv6 link-local address)
ip link set veth-gray alias netnskit:seed addrgenmode none up

# step 35: bring up eth0 in gray (no IPv6 link-local address)
ip -n gray link set eth0 addrgenmode none up
#   undo: ip -n gray link set eth0 down

# step 36: address gray's eth0 as 192.168.15.4/24
ip -n gray addr add 192.168.15.4/24 dev eth0
#   undo: ip -n gray addr del 192.168.15.4/24 dev eth0

# step 37: route default via 192.168.15.5 in gray
ip -n gray route add default via 192.168.15.5
#   undo: ip -n gray route del default via 192.168.15.5

# step 38: create link v-lan (the host) <-> eth0 (lan)
ip link add v-lan group 237438951 up type veth peer name eth0 netns lan
#   undo: ip link del v-lan

# step 39: mark v-lan as netnskit:seed
ip link set v-lan alias netnskit:seed

# step 40: bring up eth0 in lan
ip -n lan link set eth0 up
#   undo: ip -n lan link set eth0 down

# step 41: address v-lan in the host as 192.168.1.2/24
ip addr add 192.168.1.2/24 dev v-lan
#   undo: ip addr del 192.168.1.2/24 dev v-lan

# step 42: enable forwarding on v-lan
sysctl -w net/ipv4/conf/v-lan/forwarding=1

# step 43: address eth0 in lan as 192.168.1.3/24
ip -n lan addr add 192.168.1.3/24 dev eth0
#   undo: ip -n lan addr del 192.168.1.3/24 dev eth0

# step 44: create link wan (lan) <-> eth0 (internet)
ip link add wan netns lan up type veth peer name eth0 netns internet
#   undo: ip -n lan link del wan

# step 45: bring up eth0 in internet
ip -n internet link set eth0 up
#   undo: ip -n internet link set eth0 down

# step 46: address wan in lan as 203.0.113.1/24
ip -n lan addr add 203.0.113.1/24 dev wan
#   undo: ip -n lan addr del 203.0.113.1/24 dev wan

# step 47: address eth0 in internet as 203.0.113.10/24
ip -n internet addr add 203.0.113.10/24 dev eth0
#   undo: ip -n internet addr del 203.0.113.10/24 dev eth0

# step 48: route 203.0.113.0/24 via 192.168.1.3 in the host
ip route add 203.0.113.0/24 via 192.168.1.3
#   undo: ip route del 203.0.113.0/24 via 192.168.1.3

# step 49: route default via 203.0.113.1 in internet
ip -n internet route add default via 203.0.113.1
#   undo: ip -n internet route del default via 203.0.113.1

# step 50: write hosts under /etc/netns for blue, gray, internet, lan, orange, red
mkdir -p -- /etc/netns/red /etc/netns/blue /etc/netns/orange /etc/netns/gray /etc/netns/lan /etc/netns/internet
tee -- /etc/netns/red/hosts /etc/netns/blue/hosts /etc/netns/orange/hosts /etc/netns/gray/hosts <<'NETNSKIT_EOF'
# netnskit:seed
# the nodes of network seed, nearest address first: written by netnskit up, removed by netnskit down
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
192.168.15.5	host gateway
192.168.1.2	host
192.168.15.1	red
192.168.15.2	blue
192.168.15.3	orange
192.168.15.4	gray
192.168.1.3	lan
203.0.113.1	lan
203.0.113.10	internet
NETNSKIT_EOF
tee -- /etc/netns/lan/hosts <<'NETNSKIT_EOF'
# netnskit:seed
# the nodes of network seed, nearest address first: written by netnskit up, removed by netnskit down
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
192.168.1.2	host
192.168.15.5	host gateway
192.168.15.1	red
192.168.15.2	blue
192.168.15.3	orange
192.168.15.4	gray
192.168.1.3	lan
203.0.113.1	lan
203.0.113.10	internet
NETNSKIT_EOF
tee -- /etc/netns/internet/hosts <<'NETNSKIT_EOF'
# netnskit:seed
# the nodes of network seed, nearest address first: written by netnskit up, removed by netnskit down
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
192.168.15.5	host gateway
192.168.1.2	host
192.168.15.1	red
192.168.15.2	blue
192.168.15.3	orange
192.168.15.4	gray
203.0.113.1	lan
192.168.1.3	lan
203.0.113.10	internet
NETNSKIT_EOF
chmod 0644 -- /etc/netns/red/hosts /etc/netns/blue/hosts /etc/netns/orange/hosts /etc/netns/gray/hosts /etc/netns/lan/hosts /etc/netns/internet/hosts
#   undo: rm -f -- /etc/netns/red/hosts /etc/netns/blue/hosts /etc/netns/orange/hosts /etc/netns/gray/hosts /etc/netns/lan/hosts /etc/netns/internet/hosts
#   undo: rmdir --ignore-fail-on-non-empty -- /etc/netns/red /etc/netns/blue /etc/netns/orange /etc/netns/gray /etc/netns/lan /etc/netns/internet

# step 51: firewall rules of network seed (netnskit:seed)
iptables-restore -w 10 --noflush <<'NETNSKIT_EOF'
*raw
-N NETNSKIT-PREROUTING
-A NETNSKIT-PREROUTING -i v-net-0 -s 127.0.0.0/8 -m comment --comment netnskit:seed -j DROP
-A NETNSKIT-PREROUTING -i v-net-0 -d 127.0.0.0/8 -m comment --comment netnskit:seed -j DROP
-I PREROUTING -m comment --comment netnskit -j NETNSKIT-PREROUTING
COMMIT
*nat
-N NETNSKIT-PREROUTING
-N NETNSKIT-OUTPUT
-N NETNSKIT-POSTROUTING
-A NETNSKIT-POSTROUTING -s 192.168.15.0/24 ! -o v-net-0 -m comment --comment netnskit:seed -j MASQUERADE
-A NETNSKIT-PREROUTING -p tcp -m tcp --dport 80 -m comment --comment netnskit:seed -j DNAT --to-destination 192.168.15.2:80
-A NETNSKIT-OUTPUT -p tcp -m tcp --dport 80 -m comment --comment netnskit:seed -j DNAT --to-destination 192.168.15.2:80
-A NETNSKIT-POSTROUTING -s 192.168.15.0/24 -d 192.168.15.2/32 -o v-net-0 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT --ctorigdstport 80 -m comment --comment netnskit:seed -j MASQUERADE
-A NETNSKIT-POSTROUTING -s 127.0.0.0/8 -d 192.168.15.2/32 -o v-net-0 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT --ctorigdstport 80 -m comment --comment netnskit:seed -j MASQUERADE
-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment netnskit -j NETNSKIT-PREROUTING
-A OUTPUT -m addrtype --dst-type LOCAL -m comment --comment netnskit -j NETNSKIT-OUTPUT
-A POSTROUTING -m comment --comment netnskit -j NETNSKIT-POSTROUTING
COMMIT
*filter
-N NETNSKIT-FORWARD
-N NETNSKIT-STATE
-N NETNSKIT-USER
-A NETNSKIT-FORWARD -i v-net-0 -o v-net-0 -m comment --comment netnskit:seed -j ACCEPT
-A NETNSKIT-FORWARD -s 192.168.15.0/24 -i v-net-0 -o v-lan -m comment --comment netnskit:seed -j ACCEPT
-A NETNSKIT-FORWARD -d 192.168.15.0/24 -o v-net-0 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment netnskit:seed -j ACCEPT
-A NETNSKIT-FORWARD -d 192.168.15.2/32 -o v-net-0 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT --ctorigdstport 80 -m comment --comment netnskit:seed -j ACCEPT
-A NETNSKIT-FORWARD -s 192.168.15.2/32 -i v-net-0 -p tcp -m tcp --sport 80 -m conntrack --ctstate DNAT --ctorigdstport 80 -m comment --comment netnskit:seed -j ACCEPT
-A NETNSKIT-STATE -m comment --comment "netnskit sysctl net.ipv4.ip_forward=0"
-A NETNSKIT-STATE -m comment --comment "netnskit sysctl net.ipv4.conf.v-net-0.route_localnet=0"
-I NETNSKIT-FORWARD -m comment --comment netnskit -j NETNSKIT-USER
-I FORWARD -m comment --comment netnskit -j NETNSKIT-FORWARD
COMMIT
NETNSKIT_EOF

# step 52: set net.ipv4.ip_forward=1 (was 0)
sysctl -w net.ipv4.ip_forward=1
#   undo: sysctl -w net.ipv4.ip_forward=0

# step 53: set net.ipv4.conf.v-net-0.route_localnet=1 (was 0)
sysctl -w net.ipv4.conf.v-net-0.route_localnet=1
#   undo: sysctl -w net.ipv4.conf.v-net-0.route_localnet=0

# then process web in blue: python3 -u -m http.server 80 --bind blue (in www); ready when tcp:80
