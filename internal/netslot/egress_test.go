package netslot

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"

	"github.com/wrennhq/wrenn"
)

// The stand-in internet's names, served by its DNS server at inetAddr:53,
// each with a public address of its own on the internet's loopback.
var (
	allowedAddr = netip.MustParseAddr("198.51.100.10")
	otherAddr   = netip.MustParseAddr("198.51.100.11")
	deniedAddr  = netip.MustParseAddr("198.51.100.12")
	openedAddr  = netip.MustParseAddr("10.99.1.2") // in the range the operator opens
	opened      = netip.MustParsePrefix("10.99.1.0/24")
	testNames   = map[string]netip.Addr{
		"allowed.test.":     allowedAddr,
		"api.allowed.test.": allowedAddr,
		"other.test.":       otherAddr,
		"denied.test.":      deniedAddr,
		"internal.test.":    internalAddr,
	}
)

// mustWorld gives the stand-in internet the names above, a DNS server and
// a TCP and a UDP greeter on every address; it returns the greeters' port.
func mustWorld(t *testing.T, inet do) (tcpPort, udpPort uint16) {
	t.Helper()
	err := inet(func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		for _, a := range []netip.Addr{allowedAddr, otherAddr, deniedAddr, openedAddr} {
			if err := netlink.AddrAdd(lo, &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(32, 32)}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		a, ok := testNames[strings.ToLower(q.Name)]
		switch {
		case !ok:
			m.Rcode = dns.RcodeNameError
		case q.Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30}, A: a.AsSlice()})
		}
		_ = w.WriteMsg(m)
	})
	var pc net.PacketConn
	var ln net.Listener
	// A UDP greeter on each address, so each answers from the address it
	// was sent to.
	var greeters []net.PacketConn
	err = inet(func() error {
		var err error
		if pc, err = net.ListenPacket("udp4", netip.AddrPortFrom(inetAddr, 53).String()); err != nil {
			return err
		}
		if ln, err = net.Listen("tcp4", netip.AddrPortFrom(inetAddr, 53).String()); err != nil {
			return err
		}
		port := uint16(0)
		for _, a := range []netip.Addr{inetAddr, allowedAddr, otherAddr, deniedAddr, internalAddr, openedAddr} {
			g, err := net.ListenPacket("udp4", netip.AddrPortFrom(a, port).String())
			if err != nil {
				return err
			}
			port = uint16(g.LocalAddr().(*net.UDPAddr).Port)
			greeters = append(greeters, g)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		go s.ActivateAndServe()
	}
	for _, g := range greeters {
		go func() {
			buf := make([]byte, 1500)
			for {
				n, from, err := g.ReadFrom(buf)
				if err != nil {
					return
				}
				g.WriteTo(append([]byte("udp "), buf[:n]...), from)
			}
		}()
	}
	t.Cleanup(func() {
		pc.Close()
		ln.Close()
		for _, g := range greeters {
			g.Close()
		}
	})
	tcp := MustServe(t, inet, "internet", "0.0.0.0:0")
	return tcp.Port(), uint16(greeters[0].LocalAddr().(*net.UDPAddr).Port)
}

// resolve asks server for name's address from inside a namespace: the
// address, or the answer's rcode as an error.
func resolve(from do, server, name string) (netip.Addr, error) {
	var got netip.Addr
	err := from(func() error {
		q := new(dns.Msg)
		q.SetQuestion(dns.Fqdn(name), dns.TypeA)
		c := &dns.Client{Timeout: 2 * time.Second}
		resp, _, err := c.Exchange(q, server)
		if err != nil {
			return err
		}
		if resp.Rcode != dns.RcodeSuccess {
			return fmt.Errorf("%s", dns.RcodeToString[resp.Rcode])
		}
		for _, rr := range resp.Answer {
			if a, ok := rr.(*dns.A); ok {
				got, _ = netip.AddrFromSlice(a.A.To4())
				return nil
			}
		}
		return fmt.Errorf("no address")
	})
	return got, err
}

// udpEcho sends a datagram from inside a namespace and waits for the echo.
func udpEcho(from do, to netip.AddrPort) error {
	return from(func() error {
		c, err := net.Dial("udp4", to.String())
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(blocked))
		if _, err := c.Write([]byte("hi")); err != nil {
			return err
		}
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		if string(buf[:n]) != "udp hi" {
			return fmt.Errorf("echo %q", buf[:n])
		}
		return nil
	})
}

// TestEgressPolicy sends real traffic from stand-in guests under each kind
// of policy: what it lets through, what it drops, by TCP, UDP and ICMP,
// and how names resolve.
func TestEgressPolicy(t *testing.T) {
	c := testConfig(t)
	c.Opened = []netip.Prefix{opened} // an internal mirror, say
	m := MustManager(t, c)
	inet := MustInternet(t)
	tcpPort, udpPort := mustWorld(t, inet)
	// The host routes the operator's "internal" network to the internet
	// stand-in, as a company network would be routed.
	if err := netlink.RouteAdd(&netlink.Route{Dst: &net.IPNet{IP: net.IP{10, 99, 0, 0}, Mask: net.CIDRMask(16, 32)}, Gw: inetAddr.AsSlice()}); err != nil {
		t.Fatal(err)
	}
	if got, err := dial(hostDo, netip.AddrPortFrom(internalAddr, tcpPort), 2*time.Second); err != nil {
		t.Fatalf("host to the internal service (control): %q, %v", got, err)
	}

	type check struct {
		to   netip.Addr
		want bool
	}
	tests := []struct {
		name    string
		policy  wrenn.Network
		resolve map[string]string // name → the address, or the error, the guest gets
		reach   []check           // after resolving
	}{
		{
			name:    "default: the public internet, nothing private",
			policy:  wrenn.DefaultNetwork,
			resolve: map[string]string{"other.test": otherAddr.String(), "internal.test": internalAddr.String()},
			reach:   []check{{otherAddr, true}, {allowedAddr, true}, {internalAddr, false}, {metadataAddr, false}, {uplinkAddr, false}, {openedAddr, true}},
		},
		{
			name:    "no internet",
			policy:  wrenn.Network{},
			resolve: map[string]string{"other.test": "NXDOMAIN"},
			reach:   []check{{otherAddr, false}, {allowedAddr, false}, {internalAddr, false}, {openedAddr, false}},
		},
		{
			name:   "deny an opened range",
			policy: wrenn.Network{Internet: true, DenyOut: []string{opened.String()}},
			reach:  []check{{openedAddr, false}, {otherAddr, true}},
		},
		{
			name:   "allow a CIDR, no internet",
			policy: wrenn.Network{AllowOut: []string{otherAddr.String()}},
			reach:  []check{{otherAddr, true}, {allowedAddr, false}},
		},
		{
			name:   "deny a CIDR",
			policy: wrenn.Network{Internet: true, DenyOut: []string{"198.51.100.8/29"}},
			reach:  []check{{otherAddr, false}, {allowedAddr, false}, {inetAddr, true}},
		},
		{
			name:   "an allow rule cannot open a private range",
			policy: wrenn.Network{Internet: true, AllowOut: []string{"0.0.0.0/0", "10.99.0.0/16"}},
			reach:  []check{{internalAddr, false}, {otherAddr, true}},
		},
		{
			name:    "allow a domain, no internet",
			policy:  wrenn.Network{AllowOut: []string{"allowed.test"}},
			resolve: map[string]string{"api.allowed.test": allowedAddr.String(), "other.test": "NXDOMAIN"},
			reach:   []check{{allowedAddr, true}, {otherAddr, false}},
		},
		{
			name:    "deny a domain",
			policy:  wrenn.Network{Internet: true, DenyOut: []string{"denied.test"}},
			resolve: map[string]string{"denied.test": "NXDOMAIN", "other.test": otherAddr.String()},
			reach:   []check{{deniedAddr, false}, {otherAddr, true}},
		},
		{
			name:   "allow wins over deny",
			policy: wrenn.Network{Internet: true, AllowOut: []string{otherAddr.String()}, DenyOut: []string{"198.51.100.0/24"}},
			reach:  []check{{otherAddr, true}, {allowedAddr, false}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := MustAcquire(t, m)
			g := MustGuest(t, s)
			if err := m.SetEgress(t.Context(), s, tt.policy); err != nil {
				t.Fatal(err)
			}
			for name, want := range tt.resolve {
				// 192.0.2.53 is no server at all: every query to port 53
				// goes to the sandbox's resolver wherever it is sent.
				for _, server := range []string{"169.254.0.22:53", "192.0.2.53:53"} {
					a, err := resolve(g.do, server, name)
					got := a.String()
					if err != nil {
						got = err.Error()
					}
					if got != want {
						t.Errorf("resolve %s at %s: %s, want %s", name, server, got, want)
					}
				}
			}
			for _, c := range tt.reach {
				to := netip.AddrPortFrom(c.to, tcpPort)
				_, err := dial(g.do, to, blocked)
				if got := err == nil; got != c.want {
					t.Errorf("TCP to %s: reached %v, want %v (%v)", to, got, c.want, err)
				}
				if c.to == metadataAddr || c.to == uplinkAddr {
					continue // no UDP greeter there
				}
				err = udpEcho(g.do, netip.AddrPortFrom(c.to, udpPort))
				if got := err == nil; got != c.want {
					t.Errorf("UDP to %s: reached %v, want %v (%v)", c.to, got, c.want, err)
				}
				err = ping(g.do, c.to, blocked)
				if got := err == nil; got != c.want {
					t.Errorf("ping %s: answered %v, want %v (%v)", c.to, got, c.want, err)
				}
			}
		})
	}

	t.Run("a domain rule is not bypassed by its address", func(t *testing.T) {
		s := MustAcquire(t, m)
		g := MustGuest(t, s)
		if err := m.SetEgress(t.Context(), s, wrenn.Network{Internet: true, DenyOut: []string{"denied.test"}}); err != nil {
			t.Fatal(err)
		}
		// Never resolved by the guest: the agent looked it up itself.
		if _, err := dial(g.do, netip.AddrPortFrom(deniedAddr, tcpPort), blocked); err == nil {
			t.Errorf("reached denied.test's address directly")
		}
		s2 := MustAcquire(t, m)
		g2 := MustGuest(t, s2)
		if err := m.SetEgress(t.Context(), s2, wrenn.Network{AllowOut: []string{"allowed.test"}}); err != nil {
			t.Fatal(err)
		}
		// allowed.test's address is the only one it may reach, and only
		// once it has asked for the name.
		if _, err := dial(g2.do, netip.AddrPortFrom(allowedAddr, tcpPort), blocked); err == nil {
			t.Errorf("reached allowed.test's address before resolving the name")
		}
		if _, err := resolve(g2.do, "169.254.0.22:53", "allowed.test"); err != nil {
			t.Fatal(err)
		}
		if _, err := dial(g2.do, netip.AddrPortFrom(allowedAddr, tcpPort), 2*time.Second); err != nil {
			t.Errorf("allowed.test after resolving: %v", err)
		}
	})

	t.Run("a slot reaches nothing before it has a policy", func(t *testing.T) {
		s, err := m.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Release(context.Background(), s) })
		g := MustGuest(t, s)
		if _, err := dial(g.do, netip.AddrPortFrom(otherAddr, tcpPort), blocked); err == nil {
			t.Errorf("a slot without a policy reached the internet")
		}
	})
}

func TestBlockedSet(t *testing.T) {
	slots := netip.MustParsePrefix("10.201.0.0/16")
	b := blockedSet(slots, []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")})
	for a, want := range map[string]bool{
		"10.0.0.1": true, "10.20.3.4": false, "10.201.0.1": true, "172.16.0.1": true, "192.168.1.1": true,
		"100.64.0.1": true, "127.0.0.1": true, "169.254.169.254": true, "224.0.0.1": true, "255.255.255.255": true,
		"0.0.0.0": true, "198.18.0.1": true, "8.8.8.8": false, "198.51.100.7": false, "192.0.2.1": false,
	} {
		if got := b.Contains(netip.MustParseAddr(a)); got != want {
			t.Errorf("blocked %s: %v, want %v", a, got, want)
		}
	}
	els := intervalElements(b)
	last := els[len(els)-1]
	if last.IntervalEnd {
		t.Errorf("the range up to 255.255.255.255 has an end element %v", last.Key)
	}
}
