package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/disk"
	"github.com/wrennhq/wrenn/internal/layout"
)

// What a sandbox may take of the host's disk. Its run directory holds
//
//	rootfs.qcow2  the root disk overlay: starts near empty and grows as
//	              the guest writes, up to disk.MaxOverlay of the disk's
//	              virtual size (the guest's file system then says ENOSPC)
//	mem           its RAM, for a sandbox booted at a size of its own or
//	              resumed: grows as the guest touches memory, up to its
//	              memory size; a pause writes it for a sandbox that maps
//	              its template's RAM instead
//	vmstate       device state, tens of KB (the RAM goes to mem)
//	console.log   the serial console
//
// and hard links to its template's memory and disk, which are the
// template's and never grow. Its worst case is the sum of those bounds;
// what it may still write is that less what its own files take now.
// Guest tmpfs mounts (/tmp, /run, /dev/shm) are guest RAM: they land in
// the memory file or in QEMU's memory, never beyond the memory size.

// runDirSlackMB covers device state, the console log and state.json.
const runDirSlackMB = 8

// growing are the lifecycles in which a sandbox's files may grow: a VM
// runs or is being started or saved.
var growing = []lifecycle{lcStarting, lcPooled, lcRunning, lcUnresponsive, lcPausing, lcResuming, lcSnapshotting}

// worstDiskMB is the most of the host's disk a sandbox whose root disk
// has virtual size root (bytes) and whose RAM is memoryMB may take.
func worstDiskMB(root int64, memoryMB int) int64 {
	return ceilMiB(disk.MaxOverlay(root)) + int64(memoryMB) + runDirSlackMB
}

func ceilMiB(b int64) int64 { return (b + wrenn.MiB - 1) / wrenn.MiB }

// rootSize is the virtual size of the root disk a sandbox from o gets:
// the base's raw image, or the template's qcow2 disk.
func (o origin) rootSize() (int64, error) {
	if o.tmpl == "" {
		fi, err := os.Stat(o.base.RootFS)
		if err != nil {
			return 0, fmt.Errorf("root disk size: %w", err)
		}
		return fi.Size(), nil
	}
	size, err := disk.VirtualSize(o.tmpl.Disk())
	if errors.Is(err, fs.ErrNotExist) {
		return 0, wrenn.Errorf(wrenn.EInvalid, "template files are missing on this host")
	}
	if err != nil {
		return 0, fmt.Errorf("root disk size: %w", err)
	}
	return size, nil
}

// need is the size of a new sandbox from o of vcpus and memoryMB.
func (o origin) need(vcpus, memoryMB int) (need, error) {
	root, err := o.rootSize()
	if err != nil {
		return need{}, err
	}
	return need{VCPUs: vcpus, MemoryMB: memoryMB, DiskMB: worstDiskMB(root, memoryMB)}, nil
}

// ownAllocated is the disk the files of the run directory dir take,
// leaving out the links to its template's files (sparse files count what
// they hold, not their length).
func ownAllocated(dir layout.SandboxDir) int64 {
	ents, err := os.ReadDir(dir.Path())
	if err != nil {
		return 0 // not made yet, or removed: it takes nothing
	}
	links := []string{dir.TemplateMemory(), dir.TemplateDisk()}
	var n int64
	for _, e := range ents {
		path := filepath.Join(dir.Path(), e.Name())
		if slices.Contains(links, path) {
			continue
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(path, &st); err == nil {
			n += st.Blocks * 512
		}
	}
	return n
}

// diskCharge is what admission charges sb on the host's disk: what its
// files may still grow by, if it is where they may grow.
func (sb *sandbox) diskCharge() int64 {
	lc := sb.lifecycle()
	if !slices.Contains(growing, lc) {
		return 0
	}
	return sb.diskHeadroom(lc == lcSnapshotting)
}

// diskHeadroom is what sb's files may still grow by while a VM runs.
// Making it a template (flatten) may also write a copy of its root disk
// beside them.
func (sb *sandbox) diskHeadroom(flatten bool) int64 {
	sb.mu.Lock()
	dir, worst, rec := sb.dir, sb.want.DiskMB, sb.rec
	sb.mu.Unlock()
	if worst == 0 {
		// Adopted or resumed: its worst case follows from its disk.
		root, err := disk.VirtualSize(dir.RootDisk())
		if err != nil {
			sb.log.Debug("root disk size", slog.Any(attrError, err))
		}
		worst = worstDiskMB(root, rec.MemoryMB)
		sb.mu.Lock()
		sb.want.DiskMB = worst
		sb.mu.Unlock()
	}
	if flatten && rec.FromSnapshot {
		worst += worst - int64(rec.MemoryMB) - runDirSlackMB
	}
	return max(worst-ownAllocated(dir)/wrenn.MiB, 0)
}
