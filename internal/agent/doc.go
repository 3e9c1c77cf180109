// Package agent is the host agent: it owns the VMs on one machine and
// everything each holds — a run directory, a copy-on-write disk, a network
// slot, the VMM process and the connection to the guest agent — and frees
// each through a cleanup stack. It survives its own restarts by adopting
// the VMs it finds recorded in their run directories. The control plane
// reaches it through internal/agentrpc; it never touches the database.
package agent
