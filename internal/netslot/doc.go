// Package netslot owns each sandbox's network: a named network namespace
// holding the TAP device QEMU's virtio-net uses, a veth pair joining that
// namespace to the host, the NAT that lets the guest out and lets the host
// in, and the nftables rules that keep a sandbox away from the host and from
// every other sandbox.
//
// A [Manager] hands out [Slot]s, keeps a few of them ready so creating a
// sandbox never builds a namespace inline, tears them down on release,
// re-attaches to live ones after a host-agent restart ([Manager.Adopt]) and
// removes what a crashed process left behind ([Manager.Sweep]).
//
// Only the host agent imports this package. It needs root (CAP_NET_ADMIN and
// CAP_SYS_ADMIN) and never shells out: it speaks netlink and nftables
// directly.
//
// Host state it changes:
//   - net.ipv4.ip_forward is set to 1 if it is 0 (logged), and left on.
//   - one nftables table, inet <Config.Name> (default "wrenn"), replaced
//     atomically by [NewManager]; no other table is read or touched.
//   - /run/netns is made a shared mount point, as `ip netns add` does.
//   - per slot: a namespace pinned at /run/netns/<name>-<index> and a host
//     veth <link prefix><index>h (with IPv6 off and strict rp_filter on that
//     interface only).
package netslot
