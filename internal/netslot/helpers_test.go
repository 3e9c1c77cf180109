package netslot

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/wrennhq/wrenn"
	"golang.org/x/sys/unix"
)

// testConfig is the config tests use unless they need another: the
// defaults, a log that goes to the test's output, and no pool.
func testConfig(tb testing.TB) Config {
	return Config{
		Logger:   slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
		PoolSize: -1,
		Upstream: []string{netip.AddrPortFrom(inetAddr, 53).String()},
	}
}

// MustManager starts a Manager that RemoveAll cleans up after the test.
func MustManager(tb testing.TB, c Config) *Manager {
	tb.Helper()
	requireIsolatedRoot(tb)
	m, err := NewManager(context.Background(), c)
	if err != nil {
		tb.Fatalf("new manager: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := m.RemoveAll(ctx); err != nil {
			tb.Errorf("remove all: %v", err)
		}
	})
	return m
}

// MustAcquire acquires a slot and releases it when the test ends, unless
// the test released it already.
func MustAcquire(tb testing.TB, m *Manager) *Slot {
	tb.Helper()
	s, err := m.Acquire(context.Background())
	if err != nil {
		tb.Fatalf("acquire: %v", err)
	}
	if err := m.SetEgress(context.Background(), s, wrenn.DefaultNetwork); err != nil {
		tb.Fatalf("set egress: %v", err)
	}
	tb.Cleanup(func() {
		if err := m.Release(context.Background(), s); err != nil && !errors.Is(err, ErrNotHeld) {
			tb.Errorf("release slot %d: %v", s.Index, err)
		}
	})
	return s
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// hostState is what a slot may change on the host, to compare before and after.
type hostState struct {
	Links  []string
	Addrs  []string
	Routes []string
	Netns  []string
	Tables []string
	Rules  []string // chains and rules of the manager's table, counters left out
	FDs    int
}

func MustSnapshot(tb testing.TB, tableName string) hostState {
	tb.Helper()
	var st hostState
	links, err := netlink.LinkList()
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range links {
		a := l.Attrs()
		st.Links = append(st.Links, fmt.Sprintf("%d %s %s %s", a.Index, a.Name, l.Type(), a.Flags))
		addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			tb.Fatal(err)
		}
		for _, ad := range addrs {
			st.Addrs = append(st.Addrs, a.Name+" "+ad.IPNet.String())
		}
	}
	routes, err := netlink.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil {
		tb.Fatal(err)
	}
	for _, r := range routes {
		st.Routes = append(st.Routes, r.String())
	}
	entries, err := os.ReadDir(netnsDir)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range entries {
		st.Netns = append(st.Netns, e.Name())
	}
	c, err := nftables.New()
	if err != nil {
		tb.Fatal(err)
	}
	tables, err := c.ListTables()
	if err != nil {
		tb.Fatal(err)
	}
	for _, t := range tables {
		st.Tables = append(st.Tables, fmt.Sprintf("%d %s", t.Family, t.Name))
		if t.Name == tableName && t.Family == nftables.TableFamilyINet {
			st.Rules = MustListRules(tb, c, t)
		}
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatal(err)
	}
	st.FDs = len(fds)
	slices.Sort(st.Links)
	slices.Sort(st.Addrs)
	slices.Sort(st.Routes)
	slices.Sort(st.Tables)
	return st
}

func MustListRules(tb testing.TB, c *nftables.Conn, t *nftables.Table) []string {
	tb.Helper()
	chains, err := c.ListChainsOfTableFamily(t.Family)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, ch := range chains {
		if ch.Table.Name != t.Name {
			continue
		}
		out = append(out, fmt.Sprintf("chain %s %s hook=%v prio=%v", ch.Name, ch.Type, *ch.Hooknum, *ch.Priority))
		rules, err := c.GetRules(t, ch)
		if err != nil {
			tb.Fatal(err)
		}
		for _, r := range rules {
			var kinds []string
			for _, e := range r.Exprs {
				kinds = append(kinds, fmt.Sprintf("%T", e))
			}
			out = append(out, fmt.Sprintf("  rule %q %s", r.UserData, strings.Join(kinds, " ")))
		}
	}
	slices.Sort(out)
	return out
}

// diff lists what differs between two snapshots.
func (a hostState) diff(b hostState) string {
	var out []string
	list := func(what string, x, y []string) {
		for _, s := range x {
			if !slices.Contains(y, s) {
				out = append(out, fmt.Sprintf("%s gone: %s", what, s))
			}
		}
		for _, s := range y {
			if !slices.Contains(x, s) {
				out = append(out, fmt.Sprintf("%s new: %s", what, s))
			}
		}
	}
	list("link", a.Links, b.Links)
	list("addr", a.Addrs, b.Addrs)
	list("route", a.Routes, b.Routes)
	list("netns", a.Netns, b.Netns)
	list("nft table", a.Tables, b.Tables)
	list("nft rule", a.Rules, b.Rules)
	if a.FDs != b.FDs {
		out = append(out, fmt.Sprintf("open fds: %d then %d", a.FDs, b.FDs))
	}
	return strings.Join(out, "\n")
}

// mustSameHost fails the test if the host differs from before.
func mustSameHost(tb testing.TB, before hostState, table string) {
	tb.Helper()
	var d string
	// Deleting a veth is synchronous, but give the kernel a moment anyway.
	for range 50 {
		if d = before.diff(MustSnapshot(tb, table)); d == "" {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	tb.Fatalf("host differs from before:\n%s", d)
}

// do runs fn in some network namespace; hostDo is this process's own.
type do func(fn func() error) error

func hostDo(fn func() error) error { return fn() }

// MustNamespace makes a helper namespace (the stand-in guest, the stand-in
// internet) that the test removes when it ends. setup runs inside it with a
// descriptor of the host namespace.
func MustNamespace(tb testing.TB, name string, setup func(home int) error) do {
	tb.Helper()
	path := filepath.Join(netnsDir, name)
	if err := createNamespaceFile(path); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := deleteNamespace(path); err != nil {
			tb.Errorf("delete namespace %s: %v", name, err)
		}
	})
	err := onNamespaceThread(func() error { return enterNewNamespace(path) }, func(home int) error {
		if haveIPv6() {
			if err := writeSysctl("net.ipv6.conf.all.disable_ipv6", "1"); err != nil {
				return err
			}
		}
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return err
		}
		return setup(home)
	})
	if err != nil {
		tb.Fatalf("set up namespace %s: %v", name, err)
	}
	return func(fn func() error) error { return doInNamespace(path, fn) }
}

// guest stands in for a VM: a namespace whose eth0 is a TAP configured as
// the guest configures itself (169.254.0.21/30 via 169.254.0.22), joined to
// the slot's TAP by a userspace wire that copies frames between the two TAP
// descriptors, as QEMU's virtio-net would. So the slot's real TAP, opened by
// OpenTap, carries every test packet.
type guest struct {
	do   do
	stop func()
}

func MustGuest(tb testing.TB, s *Slot) *guest {
	tb.Helper()
	var gfd = -1
	g := &guest{}
	g.do = MustNamespace(tb, s.Namespace+"-guest", func(int) error {
		fd, err := openTap("eth0")
		if err != nil {
			return err
		}
		gfd = fd
		eth, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetHardwareAddr(eth, net.HardwareAddr{0x02, 0, 0, 0, 0, 0x21}); err != nil {
			return err
		}
		if err := addrUp(eth, s.GuestPrefix()); err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: s.TapIP.AsSlice()})
	})
	guestTap := MustPollable(tb, gfd)
	slotTap, err := s.OpenTap()
	if err != nil {
		tb.Fatal(err)
	}
	sfd, err := unix.Dup(int(slotTap.Fd()))
	slotTap.Close()
	if err != nil {
		tb.Fatal(err)
	}
	hostTap := MustPollable(tb, sfd)
	var wg sync.WaitGroup
	pipe := func(dst, src *os.File) {
		defer wg.Done()
		buf := make([]byte, 70000)
		for {
			n, err := src.Read(buf)
			if err != nil {
				return
			}
			dst.Write(buf[:n]) // a lost frame is a lost frame, as on a wire
		}
	}
	wg.Add(2)
	go pipe(guestTap, hostTap)
	go pipe(hostTap, guestTap)
	var once sync.Once
	g.stop = func() {
		once.Do(func() {
			guestTap.Close()
			hostTap.Close()
			wg.Wait()
		})
	}
	tb.Cleanup(g.stop)
	return g
}

// MustPollable wraps a descriptor as a non-blocking *os.File, so Close
// interrupts a pending Read.
func MustPollable(tb testing.TB, fd int) *os.File {
	tb.Helper()
	if err := unix.SetNonblock(fd, true); err != nil {
		tb.Fatal(err)
	}
	return os.NewFile(uintptr(fd), "tap")
}

// The stand-in internet: a namespace at 198.51.100.2 (TEST-NET-2, which
// sandboxes may reach like any public address) behind the host's uplink0
// (198.51.100.1), which is the isolated host's default route. It also
// holds 169.254.169.254, as a cloud metadata service would be reachable
// off-host, and 10.99.0.2, as an internal service on the operator's
// private network would be.
var (
	inetAddr     = netip.MustParseAddr("198.51.100.2")
	uplinkAddr   = netip.MustParseAddr("198.51.100.1")
	metadataAddr = netip.MustParseAddr("169.254.169.254")
	internalAddr = netip.MustParseAddr("10.99.0.2")
)

func MustInternet(tb testing.TB) do {
	tb.Helper()
	const uplink = "uplink0"
	tb.Cleanup(func() {
		if err := deleteLink(uplink); err != nil {
			tb.Errorf("delete %s: %v", uplink, err)
		}
	})
	inet := MustNamespace(tb, "test-internet", func(home int) error {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: uplink, PeerNamespace: netlink.NsFd(home)}
		if err := netlink.LinkAdd(veth); err != nil {
			return err
		}
		if err := addrUp(veth, netip.PrefixFrom(inetAddr, 24)); err != nil {
			return err
		}
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		for _, a := range []netip.Addr{metadataAddr, internalAddr} {
			if err := netlink.AddrAdd(lo, &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(32, 32)}}); err != nil {
				return err
			}
		}
		return nil
	})
	link, err := netlink.LinkByName(uplink)
	if err != nil {
		tb.Fatal(err)
	}
	if err := addrUp(link, netip.PrefixFrom(uplinkAddr, 24)); err != nil {
		tb.Fatal(err)
	}
	// Only in the isolated host namespace may a test own the default route.
	if os.Getenv(isolatedEnv) != "1" {
		tb.Fatal("refusing to change the default route outside the isolated test namespace")
	}
	if err := netlink.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: inetAddr.AsSlice()}); err != nil {
		tb.Fatal(err)
	}
	return inet
}

// MustServe listens on addr inside a namespace and answers every connection
// with "<name> <the peer address it sees>\n".
func MustServe(tb testing.TB, in do, name, addr string) netip.AddrPort {
	tb.Helper()
	var l net.Listener
	err := in(func() error {
		var err error
		l, err = net.Listen("tcp4", addr)
		return err
	})
	if err != nil {
		tb.Fatalf("listen %s on %s: %v", name, addr, err)
	}
	done := make(chan struct{})
	tb.Cleanup(func() { l.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s %s\n", name, c.RemoteAddr())
			c.Close()
		}
	}()
	return netip.MustParseAddrPort(l.Addr().String())
}

// dial connects from inside a namespace and returns the server's greeting.
func dial(from do, to netip.AddrPort, timeout time.Duration) (string, error) {
	var line string
	err := from(func() error {
		c, err := net.DialTimeout("tcp4", to.String(), timeout)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(timeout))
		line, err = bufio.NewReader(c).ReadString('\n')
		return err
	})
	return strings.TrimSpace(line), err
}

// ping sends one ICMP echo request from inside a namespace and waits for its
// reply.
func ping(from do, to netip.Addr, timeout time.Duration) error {
	return from(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		tv := unix.NsecToTimeval((50 * time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		const id = 0x7772
		req := []byte{8, 0, 0, 0, id >> 8, id & 0xff, 0, 1, 'w', 'r', 'e', 'n', 'n'}
		sum := icmpChecksum(req)
		req[2], req[3] = byte(sum>>8), byte(sum)
		if err := unix.Sendto(fd, req, 0, &unix.SockaddrInet4{Addr: to.As4()}); err != nil {
			return err
		}
		buf := make([]byte, 1500)
		for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				return err
			}
			if n < 20 {
				continue
			}
			hl := int(buf[0]&0x0f) * 4
			src := netip.AddrFrom4([4]byte(buf[12:16]))
			if n >= hl+8 && src == to && buf[hl] == 0 && buf[hl+4] == id>>8 && buf[hl+5] == id&0xff {
				return nil
			}
		}
		return fmt.Errorf("no echo reply from %s within %s", to, timeout)
	})
}

func icmpChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
