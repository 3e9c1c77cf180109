package netslot

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestAcquireRelease(t *testing.T) {
	m := MustManager(t, testConfig(t))
	before := MustSnapshot(t, DefaultName)

	s, err := m.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	held := MustSnapshot(t, DefaultName)
	if !slices.Contains(held.Netns, s.Namespace) {
		t.Errorf("namespace %s not in %s: %v", s.Namespace, netnsDir, held.Netns)
	}
	if err := isNamespace(s.Path()); err != nil {
		t.Errorf("namespace %s: %v", s.Namespace, err)
	}
	if err := hasAddr(s.HostVeth, s.HostVethIP.AsSlice()); err != nil {
		t.Errorf("host veth: %v", err)
	}
	if !slices.Equal(held.Rules, before.Rules) {
		t.Errorf("host table changed for a slot:\n%s", before.diff(held))
	}
	mustHostRoute(t, s)
	mustInside(t, s)

	if err := m.Release(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	mustSameHost(t, before, DefaultName)
	if err := m.Release(context.Background(), s); !errors.Is(err, ErrNotHeld) {
		t.Errorf("second release: %v, want ErrNotHeld", err)
	}
}

// mustHostRoute checks the host reaches HostIP straight over the slot's veth.
func mustHostRoute(t *testing.T, s *Slot) {
	t.Helper()
	routes, err := netlink.RouteGet(s.HostIP.AsSlice())
	if err != nil || len(routes) == 0 {
		t.Fatalf("route to %s: %v", s.HostIP, err)
	}
	link, err := netlink.LinkByIndex(routes[0].LinkIndex)
	if err != nil || link.Attrs().Name != s.HostVeth {
		t.Errorf("route to %s goes via %v (%v), want %s", s.HostIP, link, err, s.HostVeth)
	}
}

// mustInside checks the namespace's devices, addresses, route and sysctls.
func mustInside(t *testing.T, s *Slot) {
	t.Helper()
	err := s.Do(func() error {
		tap, err := netlink.LinkByName(s.TapName)
		if err != nil {
			return err
		}
		tt, ok := tap.(*netlink.Tuntap)
		if !ok || tt.Mode != netlink.TUNTAP_MODE_TAP {
			t.Errorf("%s is %T %+v, want a TAP", s.TapName, tap, tap)
		}
		if tap.Attrs().HardwareAddr.String() != s.TapMAC.String() {
			t.Errorf("tap mac %s, want %s", tap.Attrs().HardwareAddr, s.TapMAC)
		}
		if err := hasAddr(s.TapName, s.TapIP.AsSlice()); err != nil {
			t.Error(err)
		}
		if err := hasAddr(nsVeth, s.HostIP.AsSlice()); err != nil {
			t.Error(err)
		}
		routes, err := netlink.RouteGet(net.IPv4(1, 1, 1, 1))
		if err != nil {
			return err
		}
		if gw, _ := netip.AddrFromSlice(routes[0].Gw); gw.Unmap() != s.HostVethIP {
			t.Errorf("default route via %v, want %s", routes[0].Gw, s.HostVethIP)
		}
		for _, kv := range nsSysctls() {
			if v, err := readSysctl(kv[0]); err != nil || v != kv[1] {
				t.Errorf("in namespace %s = %q (%v), want %q", kv[0], v, err, kv[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := hasNamespaceFirewall(s); err != nil {
		t.Error(err)
	}
}

func TestOpenTap(t *testing.T) {
	m := MustManager(t, testConfig(t))
	s := MustAcquire(t, m)
	f, err := s.OpenTap()
	if err != nil {
		t.Fatal(err)
	}
	ifr, err := unix.NewIfreq("")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlIfreq(int(f.Fd()), unix.TUNGETIFF, ifr); err != nil {
		t.Fatal(err)
	}
	if got := ifr.Uint16() &^ unix.IFF_PERSIST; got != tapFlags {
		t.Errorf("tap flags %#x, want %#x (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR)", got, tapFlags)
	}
	if ifr.Name() != s.TapName {
		t.Errorf("tap name %q, want %q", ifr.Name(), s.TapName)
	}
	if _, err := s.OpenTap(); !errors.Is(err, unix.EBUSY) {
		t.Errorf("second OpenTap while the first is open: %v, want EBUSY", err)
	}
	f.Close()
	f2, err := s.OpenTap()
	if err != nil {
		t.Fatalf("OpenTap after close: %v", err)
	}
	f2.Close()
}

func TestLeak(t *testing.T) {
	const cycles = 50
	t.Run("no pool", func(t *testing.T) {
		m := MustManager(t, testConfig(t))
		// A first cycle lets the runtime open what it keeps open for good.
		s := MustAcquire(t, m)
		if err := m.Release(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		before := MustSnapshot(t, DefaultName)
		for range cycles {
			s, err := m.Acquire(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			f, err := s.OpenTap()
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			if err := m.Release(context.Background(), s); err != nil {
				t.Fatal(err)
			}
		}
		mustSameHost(t, before, DefaultName)
	})
	t.Run("pool", func(t *testing.T) {
		requireIsolatedRoot(t)
		before := MustSnapshot(t, DefaultName)
		goroutines := runtime.NumGoroutine()
		c := testConfig(t)
		c.PoolSize = 4
		m, err := NewManager(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 2)
		for range 2 { // two agents' worth of creates and deletes at once
			go func() {
				for range cycles / 2 {
					s, err := m.Acquire(context.Background())
					if err != nil {
						errc <- err
						return
					}
					if err := m.Release(context.Background(), s); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
		}
		for range 2 {
			if err := <-errc; err != nil {
				t.Error(err)
			}
		}
		waitFor(t, "a full pool", func() bool { return m.Stats().Ready == 4 })
		if err := m.RemoveAll(context.Background()); err != nil {
			t.Fatal(err)
		}
		mustSameHost(t, before, DefaultName)
		waitFor(t, "the manager's goroutines to end", func() bool { return runtime.NumGoroutine() <= goroutines })
	})
}

// TestAcquireWaitsForPoolBuild: with the last free index being built for
// the pool, Acquire takes that slot once built rather than reporting the
// host full.
func TestAcquireWaitsForPoolBuild(t *testing.T) {
	for range 3 {
		c := testConfig(t)
		c.PoolSize, c.MaxSlots = 1, 1
		m := MustManager(t, c) // its filler starts building index 0 at once
		s, err := m.Acquire(context.Background())
		if err != nil {
			t.Fatalf("acquire the only slot while the pool builds it: %v", err)
		}
		if err := m.Release(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		if err := m.RemoveAll(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPool(t *testing.T) {
	c := testConfig(t)
	c.PoolSize = 2
	c.MaxSlots = 3
	m := MustManager(t, c)
	waitFor(t, "a full pool", func() bool { return m.Stats() == Stats{Ready: 2} })

	var held []*Slot
	for range 3 {
		held = append(held, MustAcquire(t, m))
	}
	if _, err := m.Acquire(context.Background()); !errors.Is(err, ErrExhausted) {
		t.Fatalf("acquire with every index taken: %v, want ErrExhausted", err)
	}
	if st := m.Stats(); st != (Stats{Held: 3}) {
		t.Errorf("stats %+v, want 3 held", st)
	}
	if err := m.Release(context.Background(), held[1]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pool to refill the freed index", func() bool { return m.Stats().Ready == 1 })
	s := MustAcquire(t, m)
	if s.Index != held[1].Index {
		t.Errorf("got index %d, want the freed %d", s.Index, held[1].Index)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Acquire(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("acquire with a cancelled context: %v", err)
	}
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Acquire(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("acquire after close: %v, want ErrClosed", err)
	}
	for _, h := range held {
		if err := isNamespace(h.Path()); h != held[1] && err != nil {
			t.Errorf("close removed held slot %d: %v", h.Index, err)
		}
	}
}

// TestBuildUnwinds makes a build fail half-way (the host veth name is taken
// by a leftover) and checks that the namespace it had made is gone, that
// Acquire moved on to another index, and that Sweep removes the leftover.
func TestBuildUnwinds(t *testing.T) {
	m := MustManager(t, testConfig(t))
	before := MustSnapshot(t, DefaultName)
	// A veth, since this kernel may lack dummy links; its peer goes with it.
	leftover := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: m.l.hostVeth(0)}, PeerName: "leftover0"}
	if err := netlink.LinkAdd(leftover); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteLink(leftover.Name) })

	s := MustAcquire(t, m)
	if s.Index != 1 {
		t.Errorf("acquired index %d, want 1 (0 is taken)", s.Index)
	}
	if _, err := os.Stat(filepath.Join(netnsDir, m.l.namespace(0))); !os.IsNotExist(err) {
		t.Errorf("namespace of the failed build is still there: %v", err)
	}
	if st := m.Stats(); st.Foreign != 1 {
		t.Errorf("stats %+v, want index 0 foreign", st)
	}
	if err := m.Sweep(context.Background(), []int{s.Index}); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName(leftover.Name); err == nil {
		t.Errorf("sweep left %s", leftover.Name)
	}
	if err := m.Release(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	mustSameHost(t, before, DefaultName)
}

func TestLayout(t *testing.T) {
	tests := []struct {
		name    string
		c       Config
		wantErr bool
		max     int
		slots   map[int][2]string // index → host end, HostIP
	}{
		{name: "defaults", max: 32768, slots: map[int][2]string{
			0: {"10.201.0.0", "10.201.0.1"}, 1: {"10.201.0.2", "10.201.0.3"},
			300: {"10.201.2.88", "10.201.2.89"}, 32767: {"10.201.255.254", "10.201.255.255"},
		}},
		{name: "small block", c: Config{HostCIDR: "192.168.77.0/24"}, max: 128, slots: map[int][2]string{
			127: {"192.168.77.254", "192.168.77.255"},
		}},
		{name: "unmasked block", c: Config{HostCIDR: "10.9.8.7/16", MaxSlots: 10}, max: 10, slots: map[int][2]string{
			5: {"10.9.0.10", "10.9.0.11"},
		}},
		{name: "ipv6", c: Config{HostCIDR: "fd00::/64"}, wantErr: true},
		{name: "too small", c: Config{HostCIDR: "10.0.0.0/31"}, wantErr: true},
		{name: "link-local", c: Config{HostCIDR: "169.254.0.0/16"}, wantErr: true},
		{name: "max over capacity", c: Config{HostCIDR: "10.0.0.0/24", MaxSlots: 129}, wantErr: true},
		{name: "bad name", c: Config{Name: "Wrenn-1"}, wantErr: true},
		{name: "bad link prefix", c: Config{LinkPrefix: "w1"}, wantErr: true},
		{name: "names too long", c: Config{HostCIDR: "10.0.0.0/8", LinkPrefix: "abcdefgh"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := tt.c.scheme()
			if tt.wantErr {
				if err == nil {
					t.Fatalf("want an error, got %+v", l)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.maxSlots != tt.max {
				t.Errorf("max slots %d, want %d", l.maxSlots, tt.max)
			}
			for i, want := range tt.slots {
				s := l.slot(i)
				if s.HostVethIP.String() != want[0] || s.HostIP.String() != want[1] {
					t.Errorf("slot %d: %s ↔ %s, want %s ↔ %s", i, s.HostVethIP, s.HostIP, want[0], want[1])
				}
				if got, ok := l.indexOfHostVeth(s.HostVeth); !ok || got != i {
					t.Errorf("index of %s = %d, %v", s.HostVeth, got, ok)
				}
				if got, ok := l.indexOfNamespace(s.Namespace); !ok || got != i {
					t.Errorf("index of %s = %d, %v", s.Namespace, got, ok)
				}
				if s.GuestPrefix().String() != "169.254.0.21/30" || s.TapIP.String() != "169.254.0.22" {
					t.Errorf("guest %s gateway %s", s.GuestPrefix(), s.TapIP)
				}
			}
		})
	}
	l, _ := Config{}.scheme()
	for _, name := range []string{"wrn", "wrnh", "wrn01h", "wrn1", "wrnxh", "wrn32768h", "eth0", "wrenn-", "wrenn-01", "wrenn-1x"} {
		_, okv := l.indexOfHostVeth(name)
		_, okn := l.indexOfNamespace(name)
		if okv || okn {
			t.Errorf("%q parsed as a slot name", name)
		}
	}
	if i, ok := l.indexOfNamespace("wrenn-" + strconv.Itoa(42)); !ok || i != 42 {
		t.Errorf("wrenn-42 → %d %v", i, ok)
	}
}

func TestCleanupUnwindsInReverse(t *testing.T) {
	var order []int
	var c cleanup
	for i := range 3 {
		c.add(strconv.Itoa(i), func() error {
			order = append(order, i)
			if i == 1 {
				return errors.New("boom")
			}
			return nil
		})
	}
	err := c.run()
	if !slices.Equal(order, []int{2, 1, 0}) {
		t.Errorf("order %v, want [2 1 0]", order)
	}
	if err == nil || err.Error() != "1: boom" {
		t.Errorf("err %v, want the failed step named", err)
	}
}
