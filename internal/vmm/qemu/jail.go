package qemu

import (
	"bufio"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/wrennhq/wrenn/internal/cgroup"
	"github.com/wrennhq/wrenn/internal/disk"
	"github.com/wrennhq/wrenn/internal/jail"
	"github.com/wrennhq/wrenn/internal/vmm"
)

// Every QEMU runs jailed (internal/jail): as a user of its own, with no
// capabilities, no_new_privs and QEMU's seccomp sandbox, in mount, PID and
// network namespaces of its own whose root shows it only the system
// directories, its kernel and disk images read-only, the files it must
// write, and /dev/null, /dev/zero, /dev/urandom (and /dev/kvm under KVM).
// It creates no file: its QMP, guest agent and console sockets are
// listening sockets the driver makes and passes in, like its TAP and the
// snapshot it restores from, so the jail has no writable directory at all.
//
// Users. VM n runs as uid = gid = UIDBase+n, n from 1 to UIDCount-1, the
// lowest free when it starts; a restarted agent reads the uids of the VMs
// it adopts from /proc. The group UIDBase is a supplementary group of every
// VM: it may open template memory files, which QEMU 7.2 opens read-write
// even to map them privately (its readonly=on maps guest RAM read-only;
// 8.2's rom=off would lift this). A VM sees only its own template's file.

// Defaults of the jail's Config.
const (
	DefaultUIDBase  = 400000
	DefaultUIDCount = 65536
	DefaultJailRoot = "/run/wrenn-jail"
	// DefaultCgroupParent is where sandboxes' control groups go, in each
	// hierarchy.
	DefaultCgroupParent = "wrenn"
)

// Limits of each VM's control group besides its CPUs.
const (
	// tcgOverhead is memory a VM may use beyond its RAM under TCG: the
	// translation cache (tb-size=128 below), QEMU's own heap, libraries
	// and I/O buffers (an idle QEMU is 11–14 MiB), and the page cache of
	// its disk writes, which the kernel can reclaim. kvmOverhead is the
	// same without the translation cache.
	tcgOverhead = 256 << 20
	kvmOverhead = 128 << 20
	// basePids bounds QEMU's threads beyond one per vCPU: its block I/O
	// thread pool grows to 64 workers, and QEMU aborts when it cannot
	// make a thread, so the cap leaves room for them, the main loop, RCU
	// and migration threads and some to spare. (The seccomp sandbox's
	// spawn=deny already forbids fork and exec.)
	basePids = 128
	ioWeight = 100 // v2's default: equal shares of disk time per sandbox
)

// sandboxArg is QEMU's seccomp sandbox: on, with every optional deny.
const sandboxArg = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"

// uids hands out the VMs' users.
type uids struct {
	mu          sync.Mutex
	base, count int
	used        map[int]bool
}

// take returns the lowest free uid.
func (u *uids) take() (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for id := u.base + 1; id < u.base+u.count; id++ {
		if !u.used[id] {
			u.used[id] = true
			return id, nil
		}
	}
	return 0, fmt.Errorf("all %d VM users (uids %d–%d) are in use", u.count-1, u.base+1, u.base+u.count-1)
}

// hold marks uid, read from an adopted VM, in use; one outside the range
// is ignored.
func (u *uids) hold(uid int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if uid > u.base && uid < u.base+u.count {
		u.used[uid] = true
	}
}

func (u *uids) release(uid int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.used, uid)
}

// uidOf reads the real uid of process pid.
func uidOf(pid int) (int, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Uid:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				return strconv.Atoi(f[0])
			}
		}
	}
	return 0, fmt.Errorf("no Uid line in /proc/%d/status", pid)
}

// prepareFiles gives the VM's user what it must open read-write: its root
// disk and a shared memory file (made here: the jail cannot create one),
// and a template memory file mapped privately to the template group.
func (d *Driver) prepareFiles(c vmm.Config, uid int) error {
	if err := os.Chown(c.RootDisk, uid, uid); err != nil {
		return fmt.Errorf("jail: root disk: %w", err)
	}
	if c.MemoryFile == "" {
		return nil
	}
	if c.MemoryShared {
		f, err := os.OpenFile(c.MemoryFile, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("jail: memory file: %w", err)
		}
		f.Close()
		if err := os.Chown(c.MemoryFile, uid, uid); err != nil {
			return fmt.Errorf("jail: memory file: %w", err)
		}
		return nil
	}
	if err := os.Chown(c.MemoryFile, 0, d.uids.base); err != nil {
		return fmt.Errorf("jail: template memory: %w", err)
	}
	if err := os.Chmod(c.MemoryFile, 0o660); err != nil {
		return fmt.Errorf("jail: template memory: %w", err)
	}
	return nil
}

// jailSpec is how the VM of c runs: argv as uid, in group (if any).
func (d *Driver) jailSpec(c vmm.Config, argv []string, uid int, accel string, group *cgroup.Group) (jail.Spec, error) {
	s := jail.Spec{
		Argv: argv, UID: uid, GID: uid, Groups: []int{d.uids.base}, Root: d.jailRoot,
		System:   append([]string(nil), jail.SystemDirs...),
		ReadOnly: []string{c.Kernel},
		Writable: []string{c.RootDisk},
		Devices:  []string{"/dev/null", "/dev/zero", "/dev/urandom"},
	}
	if !underAny(d.bin, s.System) {
		s.System = append(s.System, filepath.Dir(d.bin))
	}
	if c.RootDiskFormat == "qcow2" {
		chain, err := backingChain(c.RootDisk)
		if err != nil {
			return s, err
		}
		s.ReadOnly = append(s.ReadOnly, chain...)
	}
	if c.MemoryFile != "" {
		s.Writable = append(s.Writable, c.MemoryFile)
	}
	if accel == AccelKVM {
		s.Devices = append(s.Devices, "/dev/kvm")
	}
	if group != nil {
		s.Cgroups = group.Procs()
	}
	return s, nil
}

// backingChain lists the images under disk's, which QEMU opens read-only.
func backingChain(top string) ([]string, error) {
	var out []string
	for img := top; ; {
		b, err := disk.Backing(img)
		if err != nil {
			if len(out) > 0 && !errors.Is(err, fs.ErrNotExist) {
				return out, nil // a raw image: the chain's end
			}
			return nil, fmt.Errorf("jail: disk chain: %w", err)
		}
		if b == "" {
			return out, nil
		}
		if !filepath.IsAbs(b) {
			b = filepath.Join(filepath.Dir(img), b)
		}
		if len(out) >= 16 {
			return nil, fmt.Errorf("jail: disk chain of %s is too deep", top)
		}
		out = append(out, b)
		img = b
	}
}

func underAny(path string, dirs []string) bool {
	for _, d := range dirs {
		if path == d || strings.HasPrefix(path, d+"/") {
			return true
		}
	}
	return false
}

// limits are the control group limits of the VM of c.
func limits(c vmm.Config, accel string) cgroup.Limits {
	overhead := int64(tcgOverhead)
	if accel == AccelKVM {
		overhead = kvmOverhead
	}
	return cgroup.Limits{CPUs: c.VCPUs, MemoryBytes: int64(c.MemoryMB)<<20 + overhead, Pids: basePids + c.VCPUs,
		IOWeight: ioWeight}
}

// groupName is the control group of the VM whose run directory is runDir:
// the run directory's name after a hash of the directory holding it, so
// that installations sharing a host keep to their own (Sweep).
func groupName(runDir string) string {
	return groupPrefix(filepath.Dir(runDir)) + filepath.Base(runDir)
}

func groupPrefix(runsDir string) string {
	h := fnv.New32a()
	h.Write([]byte(filepath.Clean(runsDir)))
	return fmt.Sprintf("%08x-", h.Sum32())
}

// Sweep removes the control groups of VMs in run directories under
// runsDir that no VM of this driver runs in: what VMs killed as strays or
// a crash left. Call it once the VMs to adopt are adopted.
func (d *Driver) Sweep(runsDir string) error {
	if d.cg == nil {
		return nil
	}
	prefix := groupPrefix(runsDir)
	names, err := d.cg.Names()
	if err != nil {
		return err
	}
	d.mu.Lock()
	var gone []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix) && !d.groups[n] {
			gone = append(gone, n)
		}
	}
	d.mu.Unlock()
	var errs []error
	for _, n := range gone {
		// A stray killed a moment ago may still be leaving: Remove waits.
		if err := d.cg.Open(n).Remove(); err != nil {
			errs = append(errs, err)
			continue
		}
		d.log.Info("removed the control group of a VM that is gone", "cgroup", n)
	}
	return errors.Join(errs...)
}
