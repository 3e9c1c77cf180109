package netslot

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// nsTable is the name of the table inside each slot's namespace; the
// namespace is ours alone, so one fixed name will do.
const nsTable = "wrenn"

// hostChains is the host table, inet <Name>. It holds no per-slot rule: slot
// interfaces are matched by their name prefix, so building or removing a
// slot never touches it. In nft's words (with the defaults):
//
//	chain input   { type filter hook input priority filter; policy accept;
//	  iifname "wrn*" ct state established,related accept   # replies to what the host opened
//	  iifname "wrn*" counter drop }                        # a sandbox never reaches the host itself
//	chain forward { type filter hook forward priority filter; policy accept;
//	  iifname "wrn*" oifname "wrn*" counter drop           # nor another sandbox
//	  oifname "wrn*" ct state established,related accept
//	  oifname "wrn*" counter drop                          # only the host opens connections into a sandbox
//	  iifname "wrn*" ip daddr 169.254.0.0/16 counter drop  # no link-local metadata services
//	  iifname "wrn*" ip daddr @blocked counter drop        # nor private ranges (egress.go)
//	  iifname "wrn*" meta nfproto ipv6 counter drop }      # IPv4 only
//	chain postrouting { type nat hook postrouting priority srcnat; policy accept;
//	  ip saddr 10.201.0.0/16 oifname != "wrn*" counter masquerade }
func hostChains(l scheme, blocked *nftables.Set) []chainSpec {
	p := l.linkPrefix
	return []chainSpec{
		{name: "input", typ: nftables.ChainTypeFilter, hook: nftables.ChainHookInput, prio: nftables.ChainPriorityFilter, rules: []rule{
			r("replies to connections the host opened into a sandbox", iifPrefix(p), ctEstablished(), accept()),
			r("sandboxes never reach the host itself", iifPrefix(p), drop()),
		}},
		{name: "forward", typ: nftables.ChainTypeFilter, hook: nftables.ChainHookForward, prio: nftables.ChainPriorityFilter, rules: []rule{
			r("sandboxes never reach each other", iifPrefix(p), oifPrefix(p), drop()),
			r("replies into a sandbox", oifPrefix(p), ctEstablished(), accept()),
			r("only the host opens connections into a sandbox", oifPrefix(p), drop()),
			r("no link-local (metadata) addresses", iifPrefix(p), daddr(expr.CmpOpEq, linkLocal), drop()),
			r("no private or reserved ranges but those the operator opened", iifPrefix(p), daddrIn(blocked), drop()),
			r("sandboxes are IPv4 only", iifPrefix(p), isIPv6(), drop()),
		}},
		{name: "postrouting", typ: nftables.ChainTypeNAT, hook: nftables.ChainHookPostrouting, prio: nftables.ChainPriorityNATSource, rules: []rule{
			r("sandbox traffic leaves with the host's address", saddr(expr.CmpOpEq, l.cidr), oifNotPrefix(p), masquerade()),
		}},
	}
}

// installHostFirewall creates or atomically replaces the host table.
func installHostFirewall(l scheme) error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: l.name}
	emptyTable(c, t)
	blocked := &nftables.Set{Table: t, Name: setBlocked, KeyType: nftables.TypeIPAddr, Interval: true}
	if err := addSet(c, blocked, intervalElements(l.blocked)); err != nil {
		return fmt.Errorf("host set %s: %w", setBlocked, err)
	}
	addChains(c, t, hostChains(l, blocked))
	if err := c.Flush(); err != nil {
		return fmt.Errorf("install table inet %s: %w", l.name, err)
	}
	return nil
}

// removeHostFirewall deletes the host table, if it is there.
func removeHostFirewall(name string) error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: name}
	c.AddTable(t) // so deleting a missing table is no error
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("delete table inet %s: %w", name, err)
	}
	return nil
}

// nsChains is the table inside slot s's namespace:
//
//	chain guard { type filter hook prerouting priority raw; policy accept;
//	  iifname "tap0" meta nfproto != ipv4 counter drop
//	  iifname "tap0" ip saddr != 169.254.0.21 counter drop }   # no spoofing
//	chain dnat { type nat hook prerouting priority dstnat; policy accept;
//	  iifname "veth0" ip daddr <HostIP> dnat ip to 169.254.0.21
//	  iifname "tap0" udp dport 53 dnat ip to 169.254.0.22       # every query to the
//	  iifname "tap0" tcp dport 53 dnat ip to 169.254.0.22 }     # sandbox's resolver
//	chain snat { type nat hook postrouting priority srcnat; policy accept;
//	  oifname "veth0" ip saddr 169.254.0.21 snat ip to <HostIP> }
//	chain forward { type filter hook forward priority filter; policy accept;
//	  ct state established,related accept
//	  iifname "tap0" ip daddr 169.254.0.0/16 counter drop
//	  iifname "tap0" ip daddr <HostCIDR> counter drop
//	  iifname "tap0" oifname != "veth0" counter drop
//	  iifname "tap0" jump egress }                             # the policy (egress.go)
//	chain input { type filter hook input priority filter; policy accept;
//	  iifname "tap0" ct state established,related accept
//	  iifname "tap0" icmp type echo-request accept             # the guest may ping its gateway
//	  iifname "tap0" udp dport 53 accept                       # and ask the resolver
//	  iifname "tap0" tcp dport 53 accept
//	  iifname "tap0" counter drop }
//
// The host's rules already stop all of the forward drops; these stop them a
// hop earlier, so one mistake on either side is not a hole.
func nsChains(l scheme, s *Slot, sets map[string]*nftables.Set) []chainSpec {
	guest := host(s.GuestIP)
	return []chainSpec{
		{name: chainEgress, rules: egressRules(sets, false)},
		{name: "guard", typ: nftables.ChainTypeFilter, hook: nftables.ChainHookPrerouting, prio: nftables.ChainPriorityRaw, rules: []rule{
			r("the guest speaks IPv4 only", iif(s.TapName), notIPv4(), drop()),
			r("the guest may only use its own address", iif(s.TapName), saddr(expr.CmpOpNeq, guest), drop()),
		}},
		{name: "dnat", typ: nftables.ChainTypeNAT, hook: nftables.ChainHookPrerouting, prio: nftables.ChainPriorityNATDest, rules: []rule{
			r("the sandbox's host address is the guest", iif(nsVeth), daddr(expr.CmpOpEq, host(s.HostIP)), nat(expr.NATTypeDestNAT, s.GuestIP)),
			r("every DNS query goes to the sandbox's resolver", iif(s.TapName), ipv4(), dport(unix.IPPROTO_UDP, 53), nat(expr.NATTypeDestNAT, s.TapIP)),
			r("every DNS query goes to the sandbox's resolver", iif(s.TapName), ipv4(), dport(unix.IPPROTO_TCP, 53), nat(expr.NATTypeDestNAT, s.TapIP)),
		}},
		{name: "snat", typ: nftables.ChainTypeNAT, hook: nftables.ChainHookPostrouting, prio: nftables.ChainPriorityNATSource, rules: []rule{
			r("the guest leaves as the sandbox's host address", oif(nsVeth), saddr(expr.CmpOpEq, guest), nat(expr.NATTypeSourceNAT, s.HostIP)),
		}},
		{name: "forward", typ: nftables.ChainTypeFilter, hook: nftables.ChainHookForward, prio: nftables.ChainPriorityFilter, rules: []rule{
			r("replies", ctEstablished(), accept()),
			r("no link-local (metadata) addresses", iif(s.TapName), daddr(expr.CmpOpEq, linkLocal), drop()),
			r("not the host's slot addresses, nor other sandboxes", iif(s.TapName), daddr(expr.CmpOpEq, l.cidr), drop()),
			r("out by the veth only", iif(s.TapName), ifname(expr.MetaKeyOIFNAME, expr.CmpOpNeq, nsVeth, false), drop()),
			r("the sandbox's egress policy", iif(s.TapName), jump(chainEgress)),
		}},
		{name: "input", typ: nftables.ChainTypeFilter, hook: nftables.ChainHookInput, prio: nftables.ChainPriorityFilter, rules: []rule{
			r("replies", iif(s.TapName), ctEstablished(), accept()),
			r("the guest may ping its gateway", iif(s.TapName), icmpEchoRequest(), accept()),
			r("and ask its resolver", iif(s.TapName), ipv4(), daddr(expr.CmpOpEq, host(s.TapIP)), dport(unix.IPPROTO_UDP, 53), accept()),
			r("and ask its resolver", iif(s.TapName), ipv4(), daddr(expr.CmpOpEq, host(s.TapIP)), dport(unix.IPPROTO_TCP, 53), accept()),
			r("nothing else in the namespace serves the guest", iif(s.TapName), drop()),
		}},
	}
}

// installNamespaceFirewall creates the table inside s's namespace.
func installNamespaceFirewall(l scheme, s *Slot) error {
	return withNamespaceConn(s, func(c *nftables.Conn) error {
		t := &nftables.Table{Family: nftables.TableFamilyINet, Name: nsTable}
		c.AddTable(t)
		sets, elems := nsSets(l, t)
		if err := addSets(c, sets, elems); err != nil {
			return err
		}
		addChains(c, t, nsChains(l, s, sets))
		if err := c.Flush(); err != nil {
			return fmt.Errorf("install namespace table: %w", err)
		}
		return nil
	})
}

// hasNamespaceFirewall checks that s's namespace still holds its table.
func hasNamespaceFirewall(s *Slot) error {
	return withNamespaceConn(s, func(c *nftables.Conn) error {
		if _, err := c.ListTableOfFamily(nsTable, nftables.TableFamilyINet); err != nil {
			return fmt.Errorf("namespace table inet %s: %w", nsTable, err)
		}
		return nil
	})
}
