package wrenn

import (
	"net/netip"
	"slices"
	"strings"
)

// Network is a sandbox's egress policy: what its guest may reach. It is
// fixed when the sandbox is created and holds across pause and resume.
//
// A destination is reachable when it is public (or in a private range the
// operator has opened) and either AllowOut names it, or Internet is on and
// DenyOut does not name it: AllowOut wins over DenyOut. The host, other
// sandboxes and the non-public ranges are never reachable, whatever the
// lists say (NonPublic).
//
// An entry of either list is an IPv4 address or CIDR block, or a domain
// name. A name covers itself and every name under it; "*.example.com"
// covers only the names under example.com. Domain rules are enforced on
// addresses, not names: the sandbox's resolver learns the addresses an
// allowed name resolves to, and only those are let through; the addresses
// of a denied name are dropped even when the guest connects to them
// directly.
type Network struct {
	Internet bool     `json:"internet"`
	AllowOut []string `json:"allow_out,omitempty"`
	DenyOut  []string `json:"deny_out,omitempty"`
}

// MaxEgressRules bounds each of AllowOut and DenyOut.
const MaxEgressRules = 64

// DefaultNetwork is the policy of a sandbox created without one, unless
// the operator sets another: the public internet, nothing private.
var DefaultNetwork = Network{Internet: true}

// NonPublic are the IPv4 ranges no sandbox reaches unless the operator
// opens one: private (RFC 1918), carrier-grade NAT, loopback, link-local,
// "this network", IETF protocol assignments, benchmarking, multicast and
// the reserved block with the broadcast address. Sandboxes have no IPv6.
var NonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("240.0.0.0/4"),
}

// EgressRule is one parsed entry of an egress list: a CIDR block, or a
// domain name (lowercase, no trailing dot; Wildcard for "*.").
type EgressRule struct {
	Prefix   netip.Prefix // valid for an address rule
	Domain   string
	Wildcard bool
}

// String is the rule as it is recorded.
func (r EgressRule) String() string {
	switch {
	case r.Prefix.IsValid():
		return r.Prefix.String()
	case r.Wildcard:
		return "*." + r.Domain
	}
	return r.Domain
}

// Matches reports whether the domain rule r covers name (lowercase, no
// trailing dot).
func (r EgressRule) Matches(name string) bool {
	if r.Domain == "" {
		return false
	}
	if name == r.Domain {
		return !r.Wildcard
	}
	return strings.HasSuffix(name, "."+r.Domain)
}

// ParseEgressRule parses one entry of an egress list.
func ParseEgressRule(s string) (EgressRule, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return EgressRule{}, Errorf(EInvalid, "empty egress rule")
	}
	if strings.ContainsAny(s, ":/") || startsWithDigit(s) && !strings.ContainsFunc(s, isLetter) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return EgressRule{}, Errorf(EInvalid, "egress rule %q is not an address, a CIDR block or a domain name", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if !p.Addr().Is4() {
			return EgressRule{}, Errorf(EInvalid, "egress rule %q: sandboxes have no IPv6, so IPv6 rules have no effect", s)
		}
		return EgressRule{Prefix: p.Masked()}, nil
	}
	name := strings.TrimSuffix(strings.ToLower(s), ".")
	r := EgressRule{}
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		r.Wildcard, name = true, rest
	}
	if !validDomain(name) {
		return EgressRule{}, Errorf(EInvalid, "egress rule %q is not an address, a CIDR block or a domain name", s)
	}
	r.Domain = name
	return r, nil
}

func startsWithDigit(s string) bool { return s != "" && s[0] >= '0' && s[0] <= '9' }
func isLetter(r rune) bool          { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }

// validDomain takes a name of at least two labels, each of letters,
// digits and inner hyphens, at most 253 bytes in all.
func validDomain(name string) bool {
	if len(name) > 253 {
		return false
	}
	labels := strings.Split(name, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// ParseEgressRules parses a list, dropping repeats.
func ParseEgressRules(list []string) ([]EgressRule, error) {
	if len(list) > MaxEgressRules {
		return nil, Errorf(EInvalid, "at most %d egress rules in each list, not %d", MaxEgressRules, len(list))
	}
	var rules []EgressRule
	for _, s := range list {
		r, err := ParseEgressRule(s)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(rules, r) {
			rules = append(rules, r)
		}
	}
	return rules, nil
}

// Normalize checks n and returns it with every rule in its recorded form.
// opened are the non-public ranges the operator lets sandboxes reach; an
// allow rule for any other non-public address is refused, since it could
// never take effect.
func (n Network) Normalize(opened []netip.Prefix) (Network, error) {
	out := Network{Internet: n.Internet}
	for _, l := range []struct {
		name string
		in   []string
		out  *[]string
	}{{"allow_out", n.AllowOut, &out.AllowOut}, {"deny_out", n.DenyOut, &out.DenyOut}} {
		rules, err := ParseEgressRules(l.in)
		if err != nil {
			return Network{}, Errorf(EInvalid, "network.%s: %s", l.name, ErrorMessage(err))
		}
		for _, r := range rules {
			if l.name == "allow_out" && r.Prefix.IsValid() {
				if p, ok := closedOverlap(r.Prefix, opened); ok {
					return Network{}, Errorf(EInvalid, "network.allow_out: %s reaches into %s, which sandboxes never reach unless the operator opens it",
						r.Prefix, p)
				}
			}
			*l.out = append(*l.out, r.String())
		}
	}
	return out, nil
}

// closedOverlap finds a non-public range that p overlaps and that opened
// does not cover. An allow rule as wide as the whole internet overlaps
// them all and is fine: it opens only what is public.
func closedOverlap(p netip.Prefix, opened []netip.Prefix) (netip.Prefix, bool) {
	for _, np := range NonPublic {
		if !p.Overlaps(np) || p.Bits() < np.Bits() {
			continue // a wider rule (0.0.0.0/0, say) means the public part of it
		}
		covered := false
		for _, o := range opened {
			if o.Bits() <= p.Bits() && o.Contains(p.Addr()) {
				covered = true
				break
			}
		}
		if !covered {
			return np, true
		}
	}
	return netip.Prefix{}, false
}
