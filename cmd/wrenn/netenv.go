package main

import (
	"os"

	"github.com/wrennhq/wrenn/internal/netslot"
)

// Several agents on one machine (issue 13): each needs network slots of
// its own — an nftables table and namespace prefix (WRENN_NET_NAME), a
// prefix for its host-side veths (WRENN_NET_LINK_PREFIX) and an address
// range (WRENN_NET_CIDR) that do not collide with another agent's — as
// well as its own data dir, VM user IDs (WRENN_VM_UID_BASE) and control
// group (WRENN_CGROUP_PARENT). Unset, the netslot defaults apply, as for
// one agent per machine. netslot.NewManager checks the values.
const (
	envNetName       = "WRENN_NET_NAME"        // default netslot.DefaultName, "wrenn"
	envNetLinkPrefix = "WRENN_NET_LINK_PREFIX" // default netslot.DefaultLinkPrefix, "wrn"
	envNetCIDR       = "WRENN_NET_CIDR"        // default netslot.DefaultHostCIDR, 10.201.0.0/16
)

// netSlotsFromEnv fills in c's names and address range from the
// environment.
func netSlotsFromEnv(c netslot.Config) netslot.Config {
	c.Name = os.Getenv(envNetName)
	c.LinkPrefix = os.Getenv(envNetLinkPrefix)
	c.HostCIDR = os.Getenv(envNetCIDR)
	return c
}
