package netslot

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// TestFirstPacket checks that a fresh slot drops nothing it is asked to
// carry: not while its devices are still being activated by the kernel, not
// when its index (and so its HostIP) was in use a moment ago. A dropped ARP
// or SYN would show as a connection that takes a retransmit (≥ 1 s).
func TestFirstPacket(t *testing.T) {
	m := MustManager(t, testConfig(t))
	for range 15 {
		t.Run("round", func(t *testing.T) {
			s := MustAcquire(t, m)
			g := MustGuest(t, s)
			srv := MustServe(t, g.do, "guest", "0.0.0.0:0")
			start := time.Now()
			if _, err := dial(hostDo, netip.AddrPortFrom(s.HostIP, srv.Port()), 5*time.Second); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > 500*time.Millisecond {
				t.Errorf("first connection to slot %d took %s", s.Index, d)
			}
			if n := txDropped(t, hostDo, s.HostVeth); n != 0 {
				t.Errorf("%s dropped %d packets", s.HostVeth, n)
			}
			for _, dev := range []string{nsVeth, s.TapName} {
				if n := txDropped(t, s.Do, dev); n != 0 {
					t.Errorf("%s in %s dropped %d packets", dev, s.Namespace, n)
				}
			}
			g.stop()
			if err := m.Release(context.Background(), s); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func txDropped(t *testing.T, in do, dev string) uint64 {
	t.Helper()
	var n uint64
	err := in(func() error {
		l, err := netlink.LinkByName(dev)
		if err == nil {
			n = l.Attrs().Statistics.TxDropped
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
