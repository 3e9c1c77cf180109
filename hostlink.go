package wrenn

import "time"

// HostSpecs is what a host's agent reports of its machine when it
// registers, and the address the control plane dials it at.
type HostSpecs struct {
	Arch     string // e.g. x86_64
	CPUCores int
	MemoryMB int
	DiskGB   int
	Address  string // host:port of the agent's RPC
	// Capacity is what the agent admits; nil if it does not say (an agent
	// older than the report).
	Capacity *HostCapacity
}

// HostCapacity is what a host's agent admits (issue 13): the vCPUs and
// memory its sandboxes may add up to, after its overcommit and reserve
// (internal/agent, admit.go). An agent reports it when it registers and in
// every heartbeat, so a restart with new settings is seen; placement
// counts a host's sandboxes against it.
type HostCapacity struct {
	VCPUs    int
	MemoryMB int
}

// HostCertificate is the record of a certificate the fleet's CA gave a
// host's agent (issue 13): the agent link admits a certificate only while
// its record exists, its host exists, and it is not revoked.
type HostCertificate struct {
	Serial    string // hex, lower case
	HostID    string
	NotAfter  time.Time
	RevokedAt *time.Time
	CreatedAt time.Time
}
