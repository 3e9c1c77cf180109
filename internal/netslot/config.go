package netslot

import (
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"strconv"

	"github.com/miekg/dns"
	"go4.org/netipx"
)

// Defaults for Config.
const (
	DefaultHostCIDR   = "10.201.0.0/16"
	DefaultPoolSize   = 4
	DefaultName       = "wrenn"
	DefaultLinkPrefix = "wrn"
)

// Config says how a Manager lays out its slots.
type Config struct {
	Logger *slog.Logger // nil discards

	// HostCIDR is the IPv4 block the per-slot veth /31s are cut from; it
	// must not overlap anything routed on the host. Default DefaultHostCIDR.
	HostCIDR string

	// PoolSize is how many slots are kept ready. 0 means DefaultPoolSize;
	// a negative value keeps none, so every Acquire builds a slot inline.
	PoolSize int

	// MaxSlots caps the slot indexes in use at once. 0 means as many as
	// HostCIDR holds (one /31 each: 32768 for a /16).
	MaxSlots int

	// Name names the host nftables table (inet <Name>) and prefixes the
	// namespaces (<Name>-<index>). Two Managers on one host (an agent and a
	// test, say) must use different names. Default DefaultName.
	Name string

	// LinkPrefix starts every host-side veth name (<LinkPrefix><index>h);
	// the isolation rules match interfaces by it, so no other interface on
	// the host may start with it. Lowercase letters only. Default
	// DefaultLinkPrefix.
	LinkPrefix string

	// Opened are non-public ranges (wrenn.NonPublic) that sandboxes may
	// reach when their policy allows: an internal package mirror, say.
	// Loopback, link-local, multicast and reserved ranges cannot be opened.
	Opened []netip.Prefix

	// Upstream are the DNS servers (host:port) each sandbox's resolver
	// asks; empty means the host's own, from /etc/resolv.conf.
	Upstream []string
}

// scheme is a validated Config: everything a slot's names and addresses are
// derived from.
type scheme struct {
	cidr       netip.Prefix
	name       string
	linkPrefix string
	poolSize   int
	maxSlots   int
	blocked    *netipx.IPSet // what no sandbox reaches (egress.go)
	upstream   []string
}

var (
	nameRE       = regexp.MustCompile(`^[a-z][a-z0-9]{0,31}$`)
	linkPrefixRE = regexp.MustCompile(`^[a-z]{1,8}$`)
)

// Check reports what is wrong with c, as NewManager would, without
// touching the host.
func (c Config) Check() error {
	_, err := c.scheme()
	return err
}

func (c Config) scheme() (scheme, error) {
	l := scheme{name: c.Name, linkPrefix: c.LinkPrefix, poolSize: c.PoolSize, maxSlots: c.MaxSlots}
	cidr := c.HostCIDR
	if cidr == "" {
		cidr = DefaultHostCIDR
	}
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return scheme{}, fmt.Errorf("host cidr: %w", err)
	}
	if !p.Addr().Is4() || p.Bits() > 30 {
		return scheme{}, fmt.Errorf("host cidr %s: want an IPv4 block of /30 or larger", p)
	}
	l.cidr = p.Masked()
	if l.cidr.Overlaps(linkLocal) {
		return scheme{}, fmt.Errorf("host cidr %s overlaps the link-local block sandboxes use inside", p)
	}
	if l.name == "" {
		l.name = DefaultName
	}
	if !nameRE.MatchString(l.name) {
		return scheme{}, fmt.Errorf("name %q: want a lowercase letter then up to 31 letters or digits", l.name)
	}
	if l.linkPrefix == "" {
		l.linkPrefix = DefaultLinkPrefix
	}
	if !linkPrefixRE.MatchString(l.linkPrefix) {
		return scheme{}, fmt.Errorf("link prefix %q: want 1 to 8 lowercase letters", l.linkPrefix)
	}
	if l.poolSize == 0 {
		l.poolSize = DefaultPoolSize
	}
	if l.poolSize < 0 {
		l.poolSize = 0
	}
	capacity := 1 << (31 - l.cidr.Bits()) // one /31 per slot
	if l.maxSlots == 0 {
		l.maxSlots = capacity
	}
	if l.maxSlots < 0 || l.maxSlots > capacity {
		return scheme{}, fmt.Errorf("max slots %d: %s holds %d", l.maxSlots, l.cidr, capacity)
	}
	// IFNAMSIZ is 16 with the NUL: the longest host veth name must fit.
	if n := len(l.hostVeth(l.maxSlots - 1)); n > 15 {
		return scheme{}, fmt.Errorf("link prefix %q: host veth names reach %d bytes, over 15", l.linkPrefix, n)
	}
	for _, o := range c.Opened {
		for _, never := range append(neverOpened(), l.cidr) {
			if o.Overlaps(never) {
				return scheme{}, fmt.Errorf("opened range %s overlaps %s, which sandboxes never reach", o, never)
			}
		}
		if !o.Addr().Is4() {
			return scheme{}, fmt.Errorf("opened range %s: sandboxes have no IPv6", o)
		}
	}
	l.blocked = blockedSet(l.cidr, c.Opened)
	l.upstream = c.Upstream
	if len(l.upstream) == 0 {
		up, err := hostResolvers("/etc/resolv.conf")
		if err != nil {
			return scheme{}, err
		}
		l.upstream = up
	}
	for _, u := range l.upstream {
		if _, err := netip.ParseAddrPort(u); err != nil {
			return scheme{}, fmt.Errorf("upstream resolver %q: want address:port", u)
		}
	}
	return l, nil
}

// hostResolvers reads the nameservers of a resolv.conf, as address:port.
func hostResolvers(path string) ([]string, error) {
	cc, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the host's resolvers: %w", err)
	}
	var out []string
	for _, s := range cc.Servers {
		a, err := netip.ParseAddr(s)
		if err != nil {
			continue
		}
		out = append(out, netip.AddrPortFrom(a.Unmap(), 53).String())
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s names no resolver; configure one", path)
	}
	return out, nil
}

func (l scheme) namespace(i int) string { return l.name + "-" + strconv.Itoa(i) }
func (l scheme) hostVeth(i int) string  { return l.linkPrefix + strconv.Itoa(i) + "h" }

// indexOfNamespace parses <name>-<index>; ok is false for any other name.
func (l scheme) indexOfNamespace(ns string) (int, bool) {
	return l.parseIndex(ns, l.name+"-", "")
}

// indexOfHostVeth parses <prefix><index>h; ok is false for any other name.
func (l scheme) indexOfHostVeth(link string) (int, bool) {
	return l.parseIndex(link, l.linkPrefix, "h")
}

func (l scheme) parseIndex(s, prefix, suffix string) (int, bool) {
	if len(s) <= len(prefix)+len(suffix) || s[:len(prefix)] != prefix || s[len(s)-len(suffix):] != suffix {
		return 0, false
	}
	digits := s[len(prefix) : len(s)-len(suffix)]
	if digits[0] == '0' && len(digits) > 1 {
		return 0, false
	}
	for _, r := range digits {
		if r < '0' || r > '9' {
			return 0, false
		}
	}
	i, err := strconv.Atoi(digits)
	if err != nil || i >= l.maxSlots {
		return 0, false
	}
	return i, true
}

// slotAddrs returns slot i's /31: the host end first, then the namespace end.
func (l scheme) slotAddrs(i int) (hostEnd, nsEnd netip.Addr) {
	b := l.cidr.Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(2 * i)
	hostEnd = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	return hostEnd, hostEnd.Next()
}
