package netslot

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Inside every namespace the guest side looks the same, so snapshots of one
// template restore unchanged in any slot (docs/GUEST.md, "Network").
const (
	tapName        = "tap0"  // the TAP, inside the namespace
	nsVeth         = "veth0" // the namespace end of the veth pair
	guestPrefixLen = 30
	netnsDir       = "/run/netns"
)

var (
	guestIP   = netip.MustParseAddr("169.254.0.21")
	tapIP     = netip.MustParseAddr("169.254.0.22")
	linkLocal = netip.MustParsePrefix("169.254.0.0/16")
)

// tapMAC is the TAP's fixed address. A guest restored from a snapshot keeps
// the gateway's MAC in its ARP cache; with a per-slot random MAC the TAP
// would drop its frames as addressed to another host until that entry aged.
func tapMAC() net.HardwareAddr { return net.HardwareAddr{0x02, 0x77, 0x72, 0x6e, 0x00, 0x01} }

// Slot is one sandbox's network. Everything about it derives from its index
// i and the Manager's Config, so a restarted agent can recompute it:
//
//	namespace      <Name>-<i>, pinned at /run/netns/<Name>-<i> (`ip netns list` shows it)
//	in the namespace:
//	  tap0         TAP for QEMU (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR, persistent),
//	               169.254.0.22/30, MAC 02:77:72:6e:00:01; the guest is 169.254.0.21/30
//	  veth0        HostCIDR.base + 2i + 1 (/31)   = HostIP: the host reaches the guest here
//	  default route via HostCIDR.base + 2i
//	on the host:
//	  <LinkPrefix><i>h   HostCIDR.base + 2i (/31) = HostVethIP: the namespace's gateway
//
// With the default 10.201.0.0/16: slot 0 is 10.201.0.0 (host) ↔ 10.201.0.1
// (HostIP), slot 300 is 10.201.2.88 ↔ 10.201.2.89, and the last of the 32768
// slots is 10.201.255.254 ↔ 10.201.255.255. A /31 (RFC 3021) has no network or
// broadcast address, so every address is used and the kernel's connected
// route is the only route: the host needs no per-slot routes or rules.
//
// NAT, in the namespace's own nftables table: traffic from the guest leaving
// by veth0 is SNATed to HostIP; anything the host sends to HostIP is DNATed to
// the guest. On the host, traffic from HostCIDR leaving by any non-slot
// interface is masqueraded.
type Slot struct {
	Index     int
	Namespace string // name under /run/netns
	TapName   string
	TapMAC    net.HardwareAddr
	GuestIP   netip.Addr // the guest's own address, in every slot
	TapIP     netip.Addr // the guest's gateway, in every slot
	HostIP    netip.Addr // host-reachable address of the sandbox (DNAT to the guest)

	HostVeth   string     // host end of the veth pair
	HostVethIP netip.Addr // its address; the namespace's default gateway

	path string    // the namespace's bind mount
	dns  *resolver // the sandbox's resolver, from SetEgress on
}

func (l scheme) slot(i int) *Slot {
	hostEnd, nsEnd := l.slotAddrs(i)
	ns := l.namespace(i)
	return &Slot{
		Index:      i,
		Namespace:  ns,
		TapName:    tapName,
		TapMAC:     tapMAC(),
		GuestIP:    guestIP,
		TapIP:      tapIP,
		HostIP:     nsEnd,
		HostVeth:   l.hostVeth(i),
		HostVethIP: hostEnd,
		path:       filepath.Join(netnsDir, ns),
	}
}

// GuestPrefix is the guest's address with its prefix length (169.254.0.21/30),
// as the guest kernel command line wants it.
func (s *Slot) GuestPrefix() netip.Prefix { return netip.PrefixFrom(s.GuestIP, guestPrefixLen) }

// Path is the namespace's bind mount, for tools that enter it by path.
func (s *Slot) Path() string { return s.path }

// Do runs fn on an OS thread inside the slot's namespace, for tests and
// diagnostics. Sockets fn opens belong to the namespace for good; goroutines
// fn starts do not run in it.
func (s *Slot) Do(fn func() error) error {
	return doInNamespace(s.path, fn)
}

// OpenTap opens the slot's TAP device and returns its queue, to be handed to
// QEMU in ExtraFiles (`-netdev tap,fd=N,vhost=off`). The descriptor is
// blocking, close-on-exec in this process, and belongs to the caller. Only
// one descriptor may be attached at a time: the next OpenTap succeeds once
// the previous one is closed.
func (s *Slot) OpenTap() (*os.File, error) {
	fd := -1
	err := s.Do(func() error {
		var err error
		if fd, err = openTap(s.TapName); err != nil {
			return err
		}
		return activate(s.TapName)
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("open tap %s in %s: %w", s.TapName, s.Namespace, err)
	}
	return os.NewFile(uintptr(fd), "tap:"+s.Namespace), nil
}

// activate cycles a TAP that just got its descriptor down and up. Attaching
// turns the carrier on, but the kernel swaps the device's "noop" qdisc, which
// drops every packet, for a real one only when its link watcher gets round to
// it, and that runs at most about once a second while other links change: the
// first packets to a freshly started guest would be lost (a 1 s TCP
// retransmit). Bringing the device up with carrier present activates the
// qdisc at once.
func activate(name string) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	if err := netlink.LinkSetDown(link); err != nil {
		return fmt.Errorf("set %s down: %w", name, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}
