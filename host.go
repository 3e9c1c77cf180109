package wrenn

import "time"

// PrefixHost starts the ID of a host in the registry.
const PrefixHost = "host-"

// HostType says whose sandboxes a host runs.
type HostType string

const (
	HostRegular HostType = "regular" // shared by every team; managed by platform admins
	HostBYOC    HostType = "byoc"    // a team's own machine, running only that team's sandboxes
)

// HostStatus is where a host is in its life, as the registry records it.
//
//	pending ──register──▶ online ◀──missed heartbeats / heartbeat──▶ unreachable
//	                       ▲  │
//	        agent restarts │  ▼ agent stops cleanly
//	                      offline
//
// A host is created pending and stays so until its agent registers with
// the one-time token (internal/fleet's agent link). Draining is not a recorded state but a flag
// (Host.Draining) beside it, so heartbeats that move a host between online
// and unreachable never undo an operator's drain; an online host that is
// draining reads HostDraining.
type HostStatus string

const (
	HostPending     HostStatus = "pending"
	HostOnline      HostStatus = "online"
	HostOffline     HostStatus = "offline"
	HostDraining    HostStatus = "draining"
	HostUnreachable HostStatus = "unreachable"
)

// Host is a machine in the registry that runs (or will run) a host agent.
// Its machine specs are unknown (nil, "") until its agent registers.
type Host struct {
	ID               string
	Type             HostType
	TeamID           string // the owning team of a BYOC host; "" for regular ones
	Provider         string // e.g. aws, hetzner, bare-metal; "" if not given
	AvailabilityZone string // "" if not given
	Arch             string // e.g. x86_64; "" until registered
	CPUCores         *int
	MemoryMB         *int
	DiskGB           *int
	Address          string        // the agent's host:port; "" until registered
	Capacity         *HostCapacity // what its agent last reported it admits; nil if none
	Status           HostStatus
	// Draining: no new sandboxes go to the host; the ones it has stay.
	Draining        bool
	Tags            []string // sorted; placement constraints
	LastHeartbeatAt *time.Time
	CreatedBy       string // user ID
	CreatedAt       time.Time
	UpdatedAt       time.Time
	// TokenHash is the SHA-256 of the registration token while one is
	// outstanding (never the token itself); nil once used or never made.
	TokenHash      []byte
	TokenExpiresAt *time.Time
}

// ShownStatus is the status clients see: HostDraining for an online host
// that is draining, the recorded status otherwise (a draining host that
// stops answering reads unreachable; Draining still says it drains).
func (h *Host) ShownStatus() HostStatus {
	if h.Draining && h.Status == HostOnline {
		return HostDraining
	}
	return h.Status
}

// HostBusyError is a host delete refused because sandboxes still live on
// the host; SandboxIDs names them. It carries the code EHostHasSandboxes.
type HostBusyError struct {
	SandboxIDs []string
}

func (e *HostBusyError) Error() string { return e.Unwrap().Error() }

// Unwrap gives the *Error that carries the code and message.
func (e *HostBusyError) Unwrap() error {
	return Errorf(EHostHasSandboxes, "host has %d active sandboxes; delete with force=true to destroy them with it", len(e.SandboxIDs))
}
