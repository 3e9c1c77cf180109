package netslot

import (
	"fmt"
	"net/netip"
	"sync/atomic"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Small builders for the nftables expressions the rules use. Each returns
// the expressions for one match, so a rule reads as a list of matches and a
// verdict, much as `nft list` prints it.

// ifname matches the input or output interface name. With prefix, only the
// bytes of name are compared, which is how nft spells `iifname "wrn*"`.
func ifname(key expr.MetaKey, op expr.CmpOp, name string, prefix bool) []expr.Any {
	data := []byte(name)
	if !prefix {
		data = make([]byte, unix.IFNAMSIZ)
		copy(data, name)
	}
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: data},
	}
}

func iifPrefix(p string) []expr.Any    { return ifname(expr.MetaKeyIIFNAME, expr.CmpOpEq, p, true) }
func oifPrefix(p string) []expr.Any    { return ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, p, true) }
func oifNotPrefix(p string) []expr.Any { return ifname(expr.MetaKeyOIFNAME, expr.CmpOpNeq, p, true) }
func iif(name string) []expr.Any       { return ifname(expr.MetaKeyIIFNAME, expr.CmpOpEq, name, false) }
func oif(name string) []expr.Any       { return ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, name, false) }

// nfproto matches (or, with Neq, excludes) a layer-3 protocol in an inet table.
func nfproto(op expr.CmpOp, proto byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: []byte{proto}},
	}
}

func ipv4() []expr.Any    { return nfproto(expr.CmpOpEq, unix.NFPROTO_IPV4) }
func notIPv4() []expr.Any { return nfproto(expr.CmpOpNeq, unix.NFPROTO_IPV4) }
func isIPv6() []expr.Any  { return nfproto(expr.CmpOpEq, unix.NFPROTO_IPV6) }

// IPv4 header offsets of the source and destination addresses.
const (
	offSaddr = 12
	offDaddr = 16
)

// addr matches an IPv4 address field against a prefix (ip saddr/daddr).
func addr(offset uint32, op expr.CmpOp, p netip.Prefix) []expr.Any {
	p = p.Masked()
	out := append(ipv4(), &expr.Payload{
		DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4,
	})
	if p.Bits() < 32 {
		m := prefixMask(p.Bits())
		out = append(out, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: m[:], Xor: make([]byte, 4)})
	}
	a := p.Addr().As4()
	return append(out, &expr.Cmp{Op: op, Register: 1, Data: a[:]})
}

func prefixMask(bits int) [4]byte {
	v := ^uint32(0) << (32 - bits)
	if bits == 0 {
		v = 0
	}
	return [4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

func saddr(op expr.CmpOp, p netip.Prefix) []expr.Any { return addr(offSaddr, op, p) }
func daddr(op expr.CmpOp, p netip.Prefix) []expr.Any { return addr(offDaddr, op, p) }
func host(a netip.Addr) netip.Prefix                 { return netip.PrefixFrom(a, 32) }

// ctEstablished matches `ct state established,related`.
func ctEstablished() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{
			SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
			Xor:  make([]byte, 4),
		},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

// icmpEchoRequest matches `icmp type echo-request`.
func icmpEchoRequest() []expr.Any {
	return append(ipv4(),
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{8}},
	)
}

func accept() []expr.Any { return []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}} }
func drop() []expr.Any   { return []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}} }
func masquerade() []expr.Any {
	return []expr.Any{&expr.Counter{}, &expr.Masq{}}
}

// nat rewrites the source or destination to a.
func nat(t expr.NATType, a netip.Addr) []expr.Any {
	b := a.As4()
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: b[:]},
		&expr.NAT{Type: t, Family: unix.NFPROTO_IPV4, RegAddrMin: 1},
	}
}

// rule is one rule with a comment `nft list` shows.
type rule struct {
	comment string
	exprs   []expr.Any
}

func r(comment string, parts ...[]expr.Any) rule {
	var all []expr.Any
	for _, p := range parts {
		all = append(all, p...)
	}
	return rule{comment: comment, exprs: all}
}

// chainSpec is a base chain and its rules, policy accept: these chains only
// drop what they must and leave everything else to the host's own rules.
type chainSpec struct {
	name  string
	typ   nftables.ChainType
	hook  *nftables.ChainHook
	prio  *nftables.ChainPriority
	rules []rule
}

// emptyTable queues, on c, the emptying of table t, to be filled in the
// same transaction: adding, deleting and re-adding a table in one
// transaction is nft's idiom for swapping its contents without a moment in
// which no rule applies.
func emptyTable(c *nftables.Conn, t *nftables.Table) {
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
}

// addChains queues chains on c; a chainSpec without a hook is a regular
// chain, reached only by a jump.
func addChains(c *nftables.Conn, t *nftables.Table, chains []chainSpec) {
	for _, cs := range chains {
		ch := &nftables.Chain{Name: cs.name, Table: t}
		if cs.hook != nil {
			policy := nftables.ChainPolicyAccept
			ch.Type, ch.Hooknum, ch.Priority, ch.Policy = cs.typ, cs.hook, cs.prio, &policy
		}
		addRules(c, t, c.AddChain(ch), cs.rules)
	}
}

func addRules(c *nftables.Conn, t *nftables.Table, ch *nftables.Chain, rules []rule) {
	for _, rl := range rules {
		c.AddRule(&nftables.Rule{
			Table: t, Chain: ch, Exprs: rl.exprs,
			UserData: userdata.AppendString(nil, userdata.TypeComment, rl.comment),
		})
	}
}

// setIDs numbers the sets this process adds. google/nftables numbers a set
// without an ID from a package counter it does not guard, which races when
// slots are built concurrently; an ID only needs to be unique within its
// batch, so ours come from an atomic counter instead.
var setIDs atomic.Uint32

// addSet queues set on c with its first elements.
func addSet(c *nftables.Conn, set *nftables.Set, elems []nftables.SetElement) error {
	if set.ID == 0 {
		set.ID = setIDs.Add(1)
	}
	return c.AddSet(set, elems)
}

// addSets queues sets on c with their first elements.
func addSets(c *nftables.Conn, sets map[string]*nftables.Set, elems map[string][]nftables.SetElement) error {
	for name, set := range sets {
		if err := addSet(c, set, elems[name]); err != nil {
			return fmt.Errorf("add set %s: %w", name, err)
		}
	}
	return nil
}

// dport matches a UDP or TCP destination port.
func dport(proto byte, port uint16) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
	}
}

func jump(chain string) []expr.Any {
	return []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: chain}}
}
