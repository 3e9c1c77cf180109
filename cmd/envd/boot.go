package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// bootConfig is what the host tells the guest on the kernel command line
// (docs/GUEST.md): wrenn.ip=ADDR/PREFIX wrenn.gw=ADDR wrenn.dns=A[,B]
// wrenn.hostname=NAME, and wrenn.emulated=1 under emulation (TCG).
type bootConfig struct {
	IP       string
	Gateway  string
	DNS      []string
	Hostname string
	Emulated bool
}

func parseCmdline(s string) bootConfig {
	var c bootConfig
	for _, w := range strings.Fields(s) {
		k, v, ok := strings.Cut(w, "=")
		if !ok {
			continue
		}
		switch k {
		case "wrenn.ip":
			c.IP = v
		case "wrenn.gw":
			c.Gateway = v
		case "wrenn.dns":
			c.DNS = nil
			for d := range strings.SplitSeq(v, ",") {
				if d != "" {
					c.DNS = append(c.DNS, d)
				}
			}
		case "wrenn.hostname":
			c.Hostname = v
		case "wrenn.emulated":
			c.Emulated = v == "1"
		}
	}
	return c
}

// mount is one filesystem init mounts.
type mount struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

func bootMounts() []mount {
	const nsd = unix.MS_NOSUID | unix.MS_NODEV
	return []mount{
		{"proc", "/proc", "proc", nsd | unix.MS_NOEXEC, ""},
		{"sysfs", "/sys", "sysfs", nsd | unix.MS_NOEXEC, ""},
		{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
		{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666"},
		{"tmpfs", "/dev/shm", "tmpfs", nsd, "mode=1777"},
		{"tmpfs", "/run", "tmpfs", nsd, "mode=0755"},
		{"tmpfs", "/tmp", "tmpfs", nsd, "mode=1777"},
	}
}

// mountAll mounts what a Linux userland expects. A filesystem already
// there (the kernel mounts devtmpfs on /dev itself) is fine.
func mountAll(log *slog.Logger) {
	for _, m := range bootMounts() {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			log.Warn("mount", slog.String(attrTarget, m.target), slog.Any(attrError, err))
			continue
		}
		err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data)
		if err != nil && !errors.Is(err, unix.EBUSY) {
			log.Warn("mount", slog.String(attrTarget, m.target), slog.Any(attrError, err))
		}
	}
	// What udev would add and shells rely on (<(...), /dev/stdin).
	for link, to := range map[string]string{
		"/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0",
		"/dev/stdout": "/proc/self/fd/1", "/dev/stderr": "/proc/self/fd/2",
		"/dev/ptmx": "pts/ptmx",
	} {
		if _, err := os.Lstat(link); errors.Is(err, os.ErrNotExist) {
			os.Symlink(to, link)
		}
	}
}

// ensureConsole points stdin, stdout and stderr at /dev/console when the
// kernel could not (it opens the console before any /dev exists).
func ensureConsole() {
	var st unix.Stat_t
	if unix.Fstat(2, &st) == nil {
		return
	}
	fd, err := unix.Open("/dev/console", unix.O_RDWR, 0)
	if err != nil {
		return
	}
	for i := range 3 {
		unix.Dup2(fd, i)
	}
	if fd > 2 {
		unix.Close(fd)
	}
}

// configureNetwork brings lo up, and eth0 with the address and default
// route of c.
func configureNetwork(c bootConfig) error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	if c.IP == "" {
		return nil
	}
	addr, err := netlink.ParseAddr(c.IP)
	if err != nil {
		return fmt.Errorf("wrenn.ip %q: %w", c.IP, err)
	}
	var eth netlink.Link
	for range 20 { // the NIC's driver may still be probing
		if eth, err = netlink.LinkByName("eth0"); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("find eth0: %w", err)
	}
	if err := netlink.AddrReplace(eth, addr); err != nil {
		return fmt.Errorf("eth0 address: %w", err)
	}
	if err := netlink.LinkSetUp(eth); err != nil {
		return fmt.Errorf("eth0 up: %w", err)
	}
	if c.Gateway == "" {
		return nil
	}
	gw := net.ParseIP(c.Gateway)
	if gw == nil {
		return fmt.Errorf("wrenn.gw %q is not an address", c.Gateway)
	}
	if err := netlink.RouteReplace(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: gw}); err != nil {
		return fmt.Errorf("default route: %w", err)
	}
	return nil
}

// writeResolvConf writes the nameservers of c. It writes in place: the file
// may be a bind mount; a symlink (to a resolver that does not run here) is
// replaced.
func writeResolvConf(path string, c bootConfig) error {
	if len(c.DNS) == 0 {
		return nil
	}
	var b strings.Builder
	for _, d := range c.DNS {
		if net.ParseIP(d) == nil {
			return fmt.Errorf("wrenn.dns %q is not an address", d)
		}
		fmt.Fprintf(&b, "nameserver %s\n", d)
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		os.Remove(path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
