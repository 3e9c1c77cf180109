package netslot

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
)

// enableForwarding turns on IPv4 forwarding on the host if it is off:
// sandbox traffic is routed through the host. It stays on.
func enableForwarding(log *slog.Logger) error {
	const key = "net.ipv4.ip_forward"
	v, err := readSysctl(key)
	if err != nil {
		return err
	}
	if v == "1" {
		return nil
	}
	if err := writeSysctl(key, "1"); err != nil {
		return err
	}
	log.Info("enabled IPv4 forwarding on the host; sandboxes route through it", logSysctl, key, logWas, v)
	return nil
}

// checkHost refuses a scheme that would make the host table's name-prefix
// rules hit someone else's interface, or whose block is already routed on
// the host.
func checkHost(l scheme) error {
	links, err := linkList()
	if err != nil {
		return err
	}
	ours := map[int]bool{}
	for _, link := range links {
		name := link.Attrs().Name
		if !strings.HasPrefix(name, l.linkPrefix) {
			continue
		}
		if _, ok := l.indexOfHostVeth(name); !ok {
			return fmt.Errorf("interface %s starts with the slot prefix %q: the isolation rules would apply to it", name, l.linkPrefix)
		}
		ours[link.Attrs().Index] = true
	}
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	for _, rt := range routes {
		if rt.Dst == nil || ours[rt.LinkIndex] {
			continue
		}
		ones, _ := rt.Dst.Mask.Size()
		a, ok := netip.AddrFromSlice(rt.Dst.IP)
		if ok && ones > 0 && l.cidr.Overlaps(netip.PrefixFrom(a.Unmap(), ones)) {
			return fmt.Errorf("host cidr %s overlaps the host's route to %s", l.cidr, rt.Dst)
		}
	}
	return nil
}

// linkList lists the host's links. A dump that links changing under it
// interrupted (a namespace going away takes its veth peer with it, a
// moment later) is read again.
func linkList() ([]netlink.Link, error) {
	for try := 0; ; try++ {
		links, err := netlink.LinkList()
		if errors.Is(err, netlink.ErrDumpInterrupted) && try < 10 {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list links: %w", err)
		}
		return links, nil
	}
}

// scanHost finds the slot indexes that have a namespace or a host veth on
// this host, whoever made them.
func scanHost(l scheme) (map[int]bool, error) {
	found := map[int]bool{}
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("read %s: %w", netnsDir, err)
	}
	for _, e := range entries {
		if i, ok := l.indexOfNamespace(e.Name()); ok {
			found[i] = true
		}
	}
	links, err := linkList()
	if err != nil {
		return nil, err
	}
	for _, link := range links {
		if i, ok := l.indexOfHostVeth(link.Attrs().Name); ok {
			found[i] = true
		}
	}
	return found, nil
}
