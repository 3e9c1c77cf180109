// Package vmm defines the virtual machine monitor driver that the host
// agent runs sandboxes with: one Driver interface, implemented per VMM in
// a package of its own (qemu/ now; a Firecracker driver can sit beside it),
// and a conformance suite (vmmtest/) that every driver must pass. The host
// agent is its only importer.
package vmm

import (
	"context"
	"os"
)

// Config describes one VM to start.
type Config struct {
	ID         string // sandbox ID, for names and logs
	RunDir     string // the sandbox's run directory; the driver keeps its files here
	Kernel     string // guest kernel (vmlinux)
	KernelArgs string // guest kernel command line, without the VMM's own additions
	RootDisk   string // root disk image, exposed as the first virtio-blk device
	// RootDiskFormat is the image format of RootDisk: "qcow2" or "raw".
	RootDiskFormat string
	VCPUs          int
	MemoryMB       int
	// Tap is an open TAP device for the VM's one network interface; nil
	// means no network. The driver passes it to the VMM and does not close it.
	Tap *os.File
	MAC string // the interface's MAC address
	// AgentSocket is the Unix socket path at which the VMM exposes the
	// guest agent's virtio-serial port (docs/GUEST.md).
	AgentSocket string
	// DataSocket, if not empty, is the Unix socket of a second
	// virtio-serial port, the guest agent's bulk data channel
	// (envd.BulkPortName). It is part of the device set: a VM restored
	// from a snapshot must have it exactly when the snapshotted VM had.
	DataSocket string
	ConsoleLog string // where the guest's serial console output goes

	// MemoryFile backs guest RAM with a file instead of anonymous memory.
	// With MemoryShared the guest's writes go to the file, so it is the
	// memory snapshot once the VM is stopped; without, the file is mapped
	// privately: pages load from it on first touch and the guest's writes
	// stay in the VMM (clones of one template share its untouched pages).
	MemoryFile   string
	MemoryShared bool
	// Incoming is a device-state file a VM.Snapshot wrote: the VM resumes
	// from it (with RAM from MemoryFile, or from the file itself where the
	// snapshot held it) instead of booting. The kernel arguments are then
	// unused, and every device and size must match the snapshotted VM's.
	Incoming string
	// IncomingHasRAM says Incoming holds the guest's RAM: it is a snapshot
	// of a VM whose RAM was not a shared MemoryFile. The RAM is loaded
	// into this VM's memory (a shared MemoryFile then gets it written).
	IncomingHasRAM bool
	// Paused leaves a VM started from Incoming stopped once loaded, for a
	// Snapshot of it rather than a run.
	Paused bool
}

// Driver starts VMs and re-attaches to VMs a previous host agent started.
type Driver interface {
	// Name is the driver's name, recorded with each VM so the right driver
	// adopts it after a restart.
	Name() string
	// Start boots a VM. It returns once the VMM runs the guest; the guest
	// agent may not answer yet. On error nothing of the VM is left running.
	Start(ctx context.Context, c Config) (VM, error)
	// Adopt re-attaches to a VM that a previous host agent process started
	// with c and recorded as running under pid. It fails if that process
	// is gone or is not that VM. A guest a snapshot left stopped (its agent
	// died before ending the VM) runs again.
	Adopt(ctx context.Context, c Config, pid int) (VM, error)
}

// VM is one running virtual machine.
type VM interface {
	// PID is the VMM process's ID.
	PID() int
	// Done is closed when the VMM process has exited, for whatever reason.
	Done() <-chan struct{}
	// Stop ends the VM (forcefully if it must) and waits for the VMM to
	// exit. Stopping a VM that has exited is not an error.
	Stop(ctx context.Context) error
	// Snapshot stops the guest and writes its device state to path. RAM
	// in a shared MemoryFile is left there; RAM that is not (a private
	// mapping, or anonymous memory) goes to the new sparse file memory if
	// that is not "", else into path. Either way a snapshot whose path
	// holds no RAM restores with that memory file as a shared MemoryFile.
	// The VM stays stopped (Stop ends it); if Snapshot fails, the guest
	// runs on.
	Snapshot(ctx context.Context, path, memory string) error
}
