// Package agent is the host agent: it owns the VMs on one machine and
// everything each holds — a run directory, a copy-on-write disk, a network
// slot, the VMM process and the connection to the guest agent — and frees
// each through a cleanup stack. The control plane reaches it through
// internal/agentrpc, as a wrenn.Agent; it never touches the database.
//
// Where things are:
//
//	lifecycle.go  a sandbox's states and the moves between them: start here
//	manager.go    the sandboxes this host holds, by ID
//	admit.go      admission: a VM starts only if it fits the host
//	diskuse.go    what a sandbox may still write to the host's disk
//	diskwatch.go  the backstop that keeps the host's disk reserve
//	create.go     create: boot a base or restore a template
//	pause.go      pause and resume
//	snapshot.go   snapshot templates
//	destroy.go    destroy
//	exec.go       commands and files, passed to the guest agent
//	health.go     health checks of running guests
//	sampler.go    CPU, memory and disk of each running sandbox, every 500 ms
//	metrics.go    each sandbox's metrics at three resolutions, kept across a pause
//	pool.go       the warm pool's bookkeeping; member.go, its members; demand.go, its sizing
//	warm.go       each base's warm snapshot
//	adopt.go      taking over what an earlier agent process left
//	gc.go         removing images nothing uses
//	record.go     what a run directory records
package agent
