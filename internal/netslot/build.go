package netslot

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// build makes slot i from nothing, as named steps; if one fails, everything
// the earlier ones made is removed again before it returns.
func (l scheme) build(ctx context.Context, i int) (_ *Slot, err error) {
	s := l.slot(i)
	var undo cleanup
	defer func() {
		if err != nil {
			if uerr := undo.run(); uerr != nil {
				err = errors.Join(err, fmt.Errorf("unwind: %w", uerr))
			}
		}
	}()
	steps := []struct {
		name string
		fn   func() error
	}{
		{"create namespace file", func() error {
			if err := createNamespaceFile(s.path); err != nil {
				return err
			}
			undo.add("remove namespace "+s.Namespace, func() error { return deleteNamespace(s.path) })
			return nil
		}},
		{"configure namespace", func() error {
			return onNamespaceThread(
				func() error { return enterNewNamespace(s.path) },
				func(home int) error { return configureInside(s, home, &undo) })
		}},
		// The namespace's rules are in place before the host end comes up.
		{"install namespace firewall", func() error { return installNamespaceFirewall(l, s) }},
		{"configure host veth", func() error { return configureHostVeth(s) }},
		{"link the veth ends", func() error { return linkVethEnds(ctx, s) }},
	}
	for _, st := range steps {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("build slot %d: %w", i, err)
		}
		if err := st.fn(); err != nil {
			return nil, fmt.Errorf("build slot %d: %s: %w", i, st.name, err)
		}
	}
	return s, nil
}

// nsSysctls are set in every new namespace before any interface exists, so
// the "default" values reach tap0 and veth0 too.
func nsSysctls() [][2]string {
	kv := [][2]string{
		{"net.ipv4.ip_forward", "1"},
		{"net.ipv4.conf.all.rp_filter", "1"}, // strict: the guest cannot spoof through tap0
		{"net.ipv4.conf.default.rp_filter", "1"},
	}
	if haveIPv6() {
		kv = append(kv,
			[2]string{"net.ipv6.conf.all.disable_ipv6", "1"},
			[2]string{"net.ipv6.conf.default.disable_ipv6", "1"})
	}
	return kv
}

// configureInside runs on a thread inside the new namespace; home is the host
// namespace, where the veth's host end goes.
func configureInside(s *Slot, home int, undo *cleanup) error {
	for _, kv := range nsSysctls() {
		if err := writeSysctl(kv[0], kv[1]); err != nil {
			return err
		}
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}

	if err := createTap(s.TapName); err != nil {
		return err
	}
	tap, err := netlink.LinkByName(s.TapName)
	if err != nil {
		return fmt.Errorf("find %s: %w", s.TapName, err)
	}
	if err := netlink.LinkSetHardwareAddr(tap, s.TapMAC); err != nil {
		return fmt.Errorf("set %s mac: %w", s.TapName, err)
	}
	if err := addrUp(tap, netip.PrefixFrom(s.TapIP, guestPrefixLen)); err != nil {
		return err
	}

	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: nsVeth},
		PeerName:      s.HostVeth,
		PeerNamespace: netlink.NsFd(home),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("veth %s: %w", s.HostVeth, errExists)
		}
		return fmt.Errorf("add veth %s/%s: %w", nsVeth, s.HostVeth, err)
	}
	undo.add("delete veth "+s.HostVeth, func() error { return deleteLink(s.HostVeth) })
	if err := addrUp(veth, netip.PrefixFrom(s.HostIP, 31)); err != nil {
		return err
	}
	err = netlink.RouteAdd(&netlink.Route{
		LinkIndex: veth.Attrs().Index,
		Gw:        s.HostVethIP.AsSlice(),
		Flags:     int(netlink.FLAG_ONLINK), // the host end is still down
	})
	if err != nil {
		return fmt.Errorf("add default route via %s: %w", s.HostVethIP, err)
	}
	return nil
}

// configureHostVeth sets up the host end of the veth: IPv6 off before it
// comes up (no link-local address, no IPv6 path to the host), strict reverse
// path filtering, its address, up.
func configureHostVeth(s *Slot) error {
	if haveIPv6() {
		if err := writeSysctl("net.ipv6.conf."+s.HostVeth+".disable_ipv6", "1"); err != nil {
			return err
		}
	}
	if err := writeSysctl("net.ipv4.conf."+s.HostVeth+".rp_filter", "1"); err != nil {
		return err
	}
	link, err := netlink.LinkByName(s.HostVeth)
	if err != nil {
		return fmt.Errorf("find %s: %w", s.HostVeth, err)
	}
	return addrUp(link, netip.PrefixFrom(s.HostVethIP, 31))
}

// vethUpTimeout bounds linkVethEnds' wait; the kernel usually needs a few ms.
const vethUpTimeout = 2 * time.Second

// linkVethEnds pins each end of s's veth pair in the other's neighbour table
// and waits until both ends are operationally up.
//
// Pinned neighbours mean the pair never ARPs: a host packet sent to HostIP
// while the slot was being built (a FIN still retried to the last sandbox at
// that address, say) can leave the host's entry waiting on an ARP retry, and
// the next sandbox's first connection would then stall for a second.
//
// The wait is for the kernel: when the second end comes up it activates the
// pair's transmit queues asynchronously (its link watcher sets the
// operational state just before), and until then each end silently drops
// what it sends.
func linkVethEnds(ctx context.Context, s *Slot) error {
	fd, err := unix.Open(s.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open namespace: %w", err)
	}
	defer unix.Close(fd)
	in, err := netlink.NewHandleAt(netns.NsHandle(fd))
	if err != nil {
		return fmt.Errorf("netlink in namespace: %w", err)
	}
	defer in.Close()
	host, err := netlink.LinkByName(s.HostVeth)
	if err != nil {
		return fmt.Errorf("find %s: %w", s.HostVeth, err)
	}
	peer, err := in.LinkByName(nsVeth)
	if err != nil {
		return fmt.Errorf("find %s: %w", nsVeth, err)
	}
	err = netlink.NeighSet(&netlink.Neigh{
		LinkIndex: host.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
		IP: s.HostIP.AsSlice(), HardwareAddr: peer.Attrs().HardwareAddr,
	})
	if err != nil {
		return fmt.Errorf("pin %s on %s: %w", s.HostIP, s.HostVeth, err)
	}
	err = in.NeighSet(&netlink.Neigh{
		LinkIndex: peer.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
		IP: s.HostVethIP.AsSlice(), HardwareAddr: host.Attrs().HardwareAddr,
	})
	if err != nil {
		return fmt.Errorf("pin %s on %s: %w", s.HostVethIP, nsVeth, err)
	}

	deadline := time.Now().Add(vethUpTimeout)
	for host.Attrs().OperState != netlink.OperUp || peer.Attrs().OperState != netlink.OperUp {
		if time.Now().After(deadline) {
			return fmt.Errorf("veth %s/%s not up after %s (%s/%s)", s.HostVeth, nsVeth, vethUpTimeout,
				host.Attrs().OperState, peer.Attrs().OperState)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
		if host, err = netlink.LinkByName(s.HostVeth); err != nil {
			return fmt.Errorf("find %s: %w", s.HostVeth, err)
		}
		if peer, err = in.LinkByName(nsVeth); err != nil {
			return fmt.Errorf("find %s: %w", nsVeth, err)
		}
	}
	return nil
}

// addrUp gives link address p and brings it up.
func addrUp(link netlink.Link, p netip.Prefix) error {
	name := link.Attrs().Name
	ipnet := &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}
	if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: ipnet}); err != nil {
		return fmt.Errorf("add %s to %s: %w", p, name, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

// deleteLink deletes a host link by name; a missing one is no error.
func deleteLink(name string) error {
	link, err := netlink.LinkByName(name)
	if _, ok := errors.AsType[netlink.LinkNotFoundError](err); ok {
		return nil
	}
	if err != nil {
		return err
	}
	if err := netlink.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return err
	}
	return nil
}

// teardown removes everything slot s is made of. Deleting the host veth
// takes its namespace end with it at once; unpinning the namespace frees the
// TAP (when QEMU's descriptor is closed) and the namespace's own connection
// tracking. The host's conntrack entries for HostIP go too, so the next
// sandbox on this index inherits no NAT mapping or flow of the last one.
func teardown(s *Slot) error {
	var errs []error
	if err := deleteLink(s.HostVeth); err != nil {
		errs = append(errs, fmt.Errorf("delete veth %s: %w", s.HostVeth, err))
	}
	if err := deleteNamespace(s.path); err != nil {
		errs = append(errs, fmt.Errorf("delete namespace %s: %w", s.Namespace, err))
	}
	if err := flushConntrack(s.HostIP); err != nil {
		errs = append(errs, fmt.Errorf("flush conntrack for %s: %w", s.HostIP, err))
	}
	return errors.Join(errs...)
}

// flushConntrack deletes the host's connection-tracking entries to or from a.
func flushConntrack(a netip.Addr) error {
	from := &netlink.ConntrackFilter{}
	if err := from.AddIP(netlink.ConntrackOrigSrcIP, a.AsSlice()); err != nil {
		return err
	}
	to := &netlink.ConntrackFilter{}
	if err := to.AddIP(netlink.ConntrackOrigDstIP, a.AsSlice()); err != nil {
		return err
	}
	_, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, netlink.FAMILY_V4, from, to)
	return err
}
