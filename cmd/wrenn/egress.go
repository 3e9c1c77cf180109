package main

import (
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/control"
)

// Environment variables of sandboxes' egress policies.
const (
	// envEgressInternet is "on" (the default) or "off": whether a sandbox
	// created without a policy reaches the public internet.
	envEgressInternet = "WRENN_EGRESS_INTERNET"
	// envEgressOpen lists non-public CIDR blocks sandboxes may reach (an
	// internal package mirror, say), comma-separated. The control plane
	// and every host agent must be given the same list.
	envEgressOpen = "WRENN_EGRESS_OPEN"
	// envDNSUpstream lists the DNS servers (address or address:port) the
	// sandboxes' resolvers ask; unset, the host's own.
	envDNSUpstream = "WRENN_DNS_UPSTREAM"
)

// networkConfigFromEnv is the control plane's egress settings.
func networkConfigFromEnv() (control.NetworkConfig, error) {
	var c control.NetworkConfig
	def := wrenn.DefaultNetwork
	switch v := os.Getenv(envEgressInternet); v {
	case "", "on":
	case "off":
		def.Internet = false
	default:
		return c, fmt.Errorf("%s=%q: want on or off", envEgressInternet, v)
	}
	c.Default = &def
	var err error
	c.Opened, err = openedFromEnv()
	return c, err
}

// openedFromEnv reads envEgressOpen: only non-public blocks, since public
// ones need no opening.
func openedFromEnv() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range splitList(os.Getenv(envEgressOpen)) {
		p, err := netip.ParsePrefix(f)
		if err != nil || !p.Addr().Is4() {
			return nil, fmt.Errorf("%s: %q is not an IPv4 CIDR block", envEgressOpen, f)
		}
		inside := false
		for _, np := range wrenn.NonPublic {
			if np.Bits() <= p.Bits() && np.Contains(p.Addr()) {
				inside = true
			}
		}
		if !inside {
			return nil, fmt.Errorf("%s: %s is not inside a non-public range; public addresses need no opening", envEgressOpen, p)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// upstreamFromEnv reads envDNSUpstream as address:port entries.
func upstreamFromEnv() ([]string, error) {
	var out []string
	for _, f := range splitList(os.Getenv(envDNSUpstream)) {
		if ap, err := netip.ParseAddrPort(f); err == nil {
			out = append(out, ap.String())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not an address or address:port", envDNSUpstream, f)
		}
		out = append(out, netip.AddrPortFrom(a, 53).String())
	}
	return out, nil
}

func splitList(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
