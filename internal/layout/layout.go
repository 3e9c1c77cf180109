// Package layout names every file and directory Wrenn keeps under its data
// dir, in one place, so no other package builds a path by hand. It only
// computes paths; creating and removing them is the owner's job.
//
//	<data>/wrenn.db                         SQLite store (control plane)
//	<data>/jwt-secret                       generated JWT secret (control plane)
//	<data>/agent-token                      secret the control plane presents to the host agent
//	<data>/agent.sock                       the in-process host agent's RPC socket
//	<data>/images/kernel/<key>/vmlinux      guest kernels, keyed by a hash of their inputs
//	<data>/images/base/<name>/              base templates: rootfs.ext4, manifest.json
//	<data>/images/pinned/<key>.ext4         base root disks by key, kept for the disks made over them
//	<data>/images/warm/<key>/               base templates booted once and snapshotted
//	<data>/images/cache/                    build inputs kept between builds (package tarballs)
//	<data>/templates/<team>/<name>/         snapshot templates of a team
//	<data>/sandboxes/<id>/                  one sandbox: disk, sockets, pid, logs, state
//
// With a shared store (WRENN_SHARED_DIR, Layout.Shared: one directory every
// agent of a fleet mounts, at the same path), what travels between hosts
// lives there instead (see Shared):
//
//	<shared>/store-id                       the store's identity, written once
//	<shared>/templates/<team>/<name>/       snapshot templates of a team
//	<shared>/paused/<id>/                   one paused sandbox, its run directory's files
//	<shared>/bases/<sha256>.ext4            base root disks that shared disks are over
//	<shared>/kernels/<sha256>.vmlinux       guest kernels that shared sandboxes boot with
package layout

import (
	"path/filepath"
)

// Layout is the data dir of one Wrenn installation.
type Layout struct {
	Root string
	// ImagesRoot, when set, puts the built images outside the data dir, so
	// several installations (test runs, say) share one build.
	ImagesRoot string
	// Shared, when set, is the store directory every agent of a fleet
	// mounts: snapshot templates live there, and paused sandboxes.
	Shared Shared
}

// New returns the layout rooted at dataDir.
func New(dataDir string) Layout { return Layout{Root: dataDir} }

func (l Layout) DB() string          { return filepath.Join(l.Root, "wrenn.db") }
func (l Layout) JWTSecret() string   { return filepath.Join(l.Root, "jwt-secret") }
func (l Layout) AgentToken() string  { return filepath.Join(l.Root, "agent-token") }
func (l Layout) AgentSocket() string { return filepath.Join(l.Root, "agent.sock") }

// Images is where built kernels and base templates live.
func (l Layout) Images() string {
	if l.ImagesRoot != "" {
		return l.ImagesRoot
	}
	return filepath.Join(l.Root, "images")
}

// Kernel is the guest kernel built from inputs hashing to key.
func (l Layout) Kernel(key string) string {
	return filepath.Join(l.Images(), "kernel", key, "vmlinux")
}

// BaseTemplate is the directory of base template name.
func (l Layout) BaseTemplate(name string) string {
	return filepath.Join(l.Images(), "base", name)
}

// PinnedRootFS is a base template's root disk as built with key: a hard
// link that outlives a rebuild of the base, for the disks and snapshots
// made over it.
func (l Layout) PinnedRootFS(key string) string {
	return filepath.Join(l.PinnedRootFSes(), key+".ext4")
}

// PinnedRootFSes holds every PinnedRootFS.
func (l Layout) PinnedRootFSes() string { return filepath.Join(l.Images(), "pinned") }

// WarmSnapshot is a base template booted once and snapshotted, keyed by
// everything the snapshot depends on: sandboxes from the base restore it
// instead of booting.
func (l Layout) WarmSnapshot(key string) TemplateDir {
	return TemplateDir(filepath.Join(l.WarmSnapshots(), key))
}

// WarmSnapshots holds every WarmSnapshot.
func (l Layout) WarmSnapshots() string { return filepath.Join(l.Images(), "warm") }

// BuildCache holds build inputs worth keeping between builds.
func (l Layout) BuildCache() string { return filepath.Join(l.Images(), "cache") }

// SnapshotTemplate is the directory of a team's snapshot template.
func (l Layout) SnapshotTemplate(teamID, name string) string {
	return filepath.Join(l.Templates(), teamID, name)
}

// Templates holds a directory of snapshot templates per team: in the
// shared store if there is one.
func (l Layout) Templates() string {
	if l.Shared != "" {
		return l.Shared.Templates()
	}
	return filepath.Join(l.Root, "templates")
}

// Sandboxes holds one directory per sandbox on this host.
func (l Layout) Sandboxes() string { return filepath.Join(l.Root, "sandboxes") }

// Sandbox is the run directory named id: a sandbox's ID, or, for a
// sandbox that came from the agent's warm pool, the name it had there.
func (l Layout) Sandbox(id string) SandboxDir {
	return SandboxDir(filepath.Join(l.Sandboxes(), id))
}

// SandboxDir is one sandbox's run directory. Socket names are short: a
// Unix socket path must fit in 108 bytes.
type SandboxDir string

func (d SandboxDir) Path() string       { return string(d) }
func (d SandboxDir) RootDisk() string   { return filepath.Join(string(d), "rootfs.qcow2") }
func (d SandboxDir) QMPSocket() string  { return filepath.Join(string(d), "qmp.sock") }
func (d SandboxDir) EnvdSocket() string { return filepath.Join(string(d), "envd.sock") }
func (d SandboxDir) DataSocket() string { return filepath.Join(string(d), "data.sock") }
func (d SandboxDir) PIDFile() string    { return filepath.Join(string(d), "qemu.pid") }
func (d SandboxDir) ConsoleLog() string { return filepath.Join(string(d), "console.log") }
func (d SandboxDir) State() string      { return filepath.Join(string(d), "state.json") }

// Metrics is the sandbox's metrics, written when it is paused.
func (d SandboxDir) Metrics() string { return filepath.Join(string(d), "metrics.json") }

// Memory is the guest RAM file the sandbox owns (shared with the VM).
func (d SandboxDir) Memory() string { return filepath.Join(string(d), "mem") }

// VMState is the device state a pause writes.
func (d SandboxDir) VMState() string { return filepath.Join(string(d), "vmstate") }

// TemplateMemory and TemplateDisk are hard links to the memory and disk of
// the snapshot template the sandbox was made from, so that deleting the
// template does not pull them from under it.
func (d SandboxDir) TemplateMemory() string { return filepath.Join(string(d), "template.mem") }
func (d SandboxDir) TemplateDisk() string   { return filepath.Join(string(d), "template.qcow2") }

// Template is a snapshot template's directory.
func (l Layout) Template(teamID, name string) TemplateDir {
	return TemplateDir(l.SnapshotTemplate(teamID, name))
}

// TemplateDir is one snapshot template: what a paused sandbox has, made
// reusable.
type TemplateDir string

func (d TemplateDir) Path() string    { return string(d) }
func (d TemplateDir) Memory() string  { return filepath.Join(string(d), "mem") }
func (d TemplateDir) VMState() string { return filepath.Join(string(d), "vmstate") }
func (d TemplateDir) Disk() string    { return filepath.Join(string(d), "disk.qcow2") }
func (d TemplateDir) Meta() string    { return filepath.Join(string(d), "meta.json") }

// Shared is a store directory that every agent of a fleet mounts (issue
// 13), at the same path on every host: snapshot templates and paused
// sandboxes live there, so any host of the store can use them, and so can
// the others when one is lost. Disks there are over root disks there, by
// absolute path, never over a host's own images.
type Shared string

func (s Shared) Path() string      { return string(s) }
func (s Shared) StoreID() string   { return filepath.Join(string(s), "store-id") }
func (s Shared) Templates() string { return filepath.Join(string(s), "templates") }

// Paused holds one directory per paused sandbox; PausedSandbox is one,
// holding what its run directory held when it was paused.
func (s Shared) Paused() string                     { return filepath.Join(string(s), "paused") }
func (s Shared) PausedSandbox(id string) SandboxDir { return SandboxDir(filepath.Join(s.Paused(), id)) }

// Bases holds base root disks by their content's hash, Kernels guest
// kernels: copies of a host's own, made once, that shared disks and
// records name.
func (s Shared) Bases() string   { return filepath.Join(string(s), "bases") }
func (s Shared) Kernels() string { return filepath.Join(string(s), "kernels") }
