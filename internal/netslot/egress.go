package netslot

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"go4.org/netipx"
	"golang.org/x/sys/unix"

	"github.com/wrennhq/wrenn"
)

// A slot's egress policy lives in its namespace's table: five sets and the
// chain egress, which the forward chain jumps to for every new flow from
// the guest. In nft's words:
//
//	set blocked     { type ipv4_addr; flags interval; }   # never: scheme.blocked
//	set allow       { type ipv4_addr; flags interval; }   # the policy's allow CIDRs
//	set deny        { type ipv4_addr; flags interval; }   # its deny CIDRs
//	set allow_names { type ipv4_addr; flags timeout; }    # addresses of allowed names, learned
//	set deny_names  { type ipv4_addr; flags timeout; }    # addresses of denied names, looked up
//	chain egress {
//	  ip daddr @blocked counter drop
//	  ip daddr @allow accept
//	  ip daddr @allow_names accept
//	  ip daddr @deny counter drop
//	  ip daddr @deny_names counter drop
//	  accept | counter drop }    # the policy's internet: on | off
//
// Until SetEgress gives a policy, the last rule drops: a slot in the pool,
// or a warm pool VM no create has claimed, reaches nothing.
const (
	setBlocked    = "blocked"
	setAllow      = "allow"
	setDeny       = "deny"
	setAllowNames = "allow_names"
	setDenyNames  = "deny_names"
	chainEgress   = "egress"
)

// nsSet is the namespace table's set name: blocks of addresses, or (the
// *_names sets) addresses that each time out.
func nsSet(t *nftables.Table, name string) *nftables.Set {
	timed := name == setAllowNames || name == setDenyNames
	return &nftables.Set{Table: t, Name: name, KeyType: nftables.TypeIPAddr, Interval: !timed, HasTimeout: timed}
}

// nsSets are the namespace table's sets, with blocked filled in.
func nsSets(l scheme, t *nftables.Table) (map[string]*nftables.Set, map[string][]nftables.SetElement) {
	sets := map[string]*nftables.Set{}
	for _, name := range []string{setBlocked, setAllow, setDeny, setAllowNames, setDenyNames} {
		sets[name] = nsSet(t, name)
	}
	return sets, map[string][]nftables.SetElement{setBlocked: intervalElements(l.blocked)}
}

// egressRules are the rules of chain egress for a policy with internet or
// without.
func egressRules(sets map[string]*nftables.Set, internet bool) []rule {
	last := r("no internet: nothing the lists do not allow", drop())
	if internet {
		last = r("the internet, but for what the lists deny", accept())
	}
	return []rule{
		r("never the host's private networks, other sandboxes, or reserved ranges", daddrIn(sets[setBlocked]), drop()),
		r("the policy's allowed blocks", daddrIn(sets[setAllow]), accept()),
		r("addresses of allowed names, as the sandbox's resolver answered them", daddrIn(sets[setAllowNames]), accept()),
		r("the policy's denied blocks", daddrIn(sets[setDeny]), drop()),
		r("addresses of denied names", daddrIn(sets[setDenyNames]), drop()),
		last,
	}
}

// daddrIn matches `ip daddr @set`.
func daddrIn(s *nftables.Set) []expr.Any {
	return append(ipv4(),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offDaddr, Len: 4},
		&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID})
}

// intervalElements encodes an address set for an interval set: each
// range's first address, and the address after its last flagged as an
// interval's end (none for a range that runs to 255.255.255.255).
func intervalElements(set *netipx.IPSet) []nftables.SetElement {
	var out []nftables.SetElement
	for _, rg := range set.Ranges() {
		from := rg.From().As4()
		out = append(out, nftables.SetElement{Key: from[:]})
		if next := rg.To().Next(); next.IsValid() && next.Is4() {
			end := next.As4()
			out = append(out, nftables.SetElement{Key: end[:], IntervalEnd: true})
		}
	}
	return out
}

// prefixSet is the union of ps.
func prefixSet(ps ...netip.Prefix) *netipx.IPSet {
	var b netipx.IPSetBuilder
	for _, p := range ps {
		b.AddPrefix(p)
	}
	s, _ := b.IPSet() // only IPv4 prefixes go in: no error
	return s
}

// blockedSet is what no sandbox reaches: the non-public ranges but those
// the operator opened, and always the slots' own block (the host's veth
// ends and other sandboxes), link-local addresses, loopback, multicast and
// the reserved block.
func blockedSet(slots netip.Prefix, opened []netip.Prefix) *netipx.IPSet {
	var b netipx.IPSetBuilder
	for _, p := range wrenn.NonPublic {
		b.AddPrefix(p)
	}
	for _, p := range opened {
		b.RemovePrefix(p)
	}
	for _, p := range append(neverOpened(), slots) {
		b.AddPrefix(p)
	}
	s, _ := b.IPSet()
	return s
}

// neverOpened are the ranges an operator cannot open to sandboxes.
func neverOpened() []netip.Prefix {
	return []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),
		netip.MustParsePrefix("127.0.0.0/8"),
		linkLocal,
		netip.MustParsePrefix("224.0.0.0/4"),
		netip.MustParsePrefix("240.0.0.0/4"),
	}
}

// withNamespaceConn runs fn with an nftables connection into s's namespace.
func withNamespaceConn(s *Slot, fn func(c *nftables.Conn) error) error {
	fd, err := unix.Open(s.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open namespace: %w", err)
	}
	defer unix.Close(fd)
	c, err := nftables.New(nftables.WithNetNSFd(fd))
	if err != nil {
		return err
	}
	return fn(c)
}

// SetEgress gives slot s the egress policy n: its rules, and the resolver
// that answers the guest's names and learns the addresses of allowed ones.
// It may be called again to replace the policy, and by an agent that adopted
// s, to serve its names anew. The denied names are looked up before it
// returns, so a guest that starts afterwards cannot reach them.
func (m *Manager) SetEgress(ctx context.Context, s *Slot, n wrenn.Network) error {
	p, err := compilePolicy(n)
	if err != nil {
		return err
	}
	err = withNamespaceConn(s, func(c *nftables.Conn) error {
		t := &nftables.Table{Family: nftables.TableFamilyINet, Name: nsTable}
		sets, _ := nsSets(m.l, t) // by name: the slot's build made them
		for name, ps := range map[string][]netip.Prefix{setAllow: p.allow, setDeny: p.deny} {
			c.FlushSet(sets[name])
			if els := intervalElements(prefixSet(ps...)); len(els) > 0 {
				if err := c.SetAddElements(sets[name], els); err != nil {
					return err
				}
			}
		}
		c.FlushSet(sets[setAllowNames])
		c.FlushSet(sets[setDenyNames])
		ch := &nftables.Chain{Name: chainEgress, Table: t}
		c.FlushChain(ch)
		addRules(c, t, ch, egressRules(sets, p.internet))
		return c.Flush()
	})
	if err != nil {
		return fmt.Errorf("slot %d: egress rules: %w", s.Index, err)
	}
	if s.dns == nil {
		if err := m.startResolver(s); err != nil {
			return fmt.Errorf("slot %d: %w", s.Index, err)
		}
	}
	s.dns.setPolicy(ctx, p)
	return nil
}

// startResolver opens the DNS sockets inside s's namespace, at the guest's
// gateway, and serves them.
func (m *Manager) startResolver(s *Slot) error {
	var (
		pc net.PacketConn
		ln net.Listener
	)
	addr := netip.AddrPortFrom(s.TapIP, 53).String()
	err := s.Do(func() error {
		var err error
		if pc, err = net.ListenPacket("udp4", addr); err != nil {
			return err
		}
		if ln, err = net.Listen("tcp4", addr); err != nil {
			pc.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("open resolver sockets: %w", err)
	}
	learn := func(set string, addrs []netip.Addr, ttl time.Duration) error {
		return withNamespaceConn(s, func(c *nftables.Conn) error {
			t := &nftables.Table{Family: nftables.TableFamilyINet, Name: nsTable}
			els := make([]nftables.SetElement, len(addrs))
			for i, a := range addrs {
				b := a.As4()
				els[i] = nftables.SetElement{Key: b[:], Timeout: ttl}
			}
			if err := c.SetAddElements(nsSet(t, set), els); err != nil {
				return err
			}
			return c.Flush()
		})
	}
	s.dns = newResolver(m.log.With(logSlot, s.Index), m.l.upstream, learn)
	s.dns.serve(pc, ln)
	return nil
}

// stopResolver ends s's resolver, if it has one.
func stopResolver(s *Slot) {
	if s.dns != nil {
		s.dns.close()
		s.dns = nil
	}
}
