package agent

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wrennhq/wrenn"
)

// Admission: the agent starts a VM only if it fits what the host can give.
// The host's allocatable share is
//
//	vCPUs   its cores × CPUOvercommit
//	memory  (its RAM − MemoryReserveMB) × MemoryOvercommit
//	disk    (its free disk under the data directory − DiskReserveMB) × DiskOvercommit
//
// and what is allocated is the sum of the sizes of every VM the agent
// runs or is starting: sandboxes being created, running, unresponsive,
// pausing, resuming, being made templates or destroyed while their VM is
// up, and warm pool members, ready or being made. A paused sandbox holds
// no VM and counts for nothing here.
//
// Disk is charged by what each sandbox may still write (diskuse.go): its
// worst case — a root disk written whole, a RAM file as large as its
// memory (what a pause writes, if it has none yet) and a little for its
// device state and logs — less what its files already take, since the
// free disk measured no longer holds that. A paused sandbox cannot grow
// and is charged nothing more than the disk it takes; a resume is admitted
// like a create. With DiskOvercommit 1 no sandbox can take the host's disk
// below the reserve; above 1 the disk watch (diskwatch.go) keeps it.
//
// Pool members give way: a create that does not fit ends idle pool members,
// the oldest first, until it does; a create that claims a member takes the
// VM the member held and needs nothing more. A pool member is only made
// when it fits. Decisions take m.mu, so that two VMs never both take the
// last room.

// AdmissionConfig says how much of the host its sandboxes may take.
type AdmissionConfig struct {
	// CPUOvercommit is how many vCPUs each host core may back; 0 means
	// DefaultCPUOvercommit.
	CPUOvercommit float64
	// MemoryOvercommit multiplies the memory left after the reserve; 0
	// means 1, none: a guest's RAM is all its own once touched.
	MemoryOvercommit float64
	// MemoryReserveMB is host RAM no sandbox may be counted against.
	MemoryReserveMB int
	// DiskReserveMB is free disk that no sandbox may take.
	DiskReserveMB int
	// DiskOvercommit multiplies the free disk above the reserve that
	// sandboxes' worst cases may add up to; 0 means 1, a guarantee: every
	// sandbox may fill its disks and the reserve still holds. Above 1 more
	// sandboxes fit, and if they do fill the disk, the disk watch ends
	// the one that grew most.
	DiskOvercommit float64
	// DiskWatchInterval is how often the disk watch measures the host's
	// free disk; 0 means DefaultDiskWatchInterval.
	DiskWatchInterval time.Duration
	// Host measures the host; nil measures this machine.
	Host *HostResources
}

// Defaults of AdmissionConfig, as `wrenn server` and `wrenn agent` use
// them.
const (
	DefaultCPUOvercommit   = 4
	DefaultMemoryReserveMB = 1024
	DefaultDiskReserveMB   = 4096

	DefaultDiskWatchInterval = 2 * time.Second
)

// HostResources measures a host. Tests give fixed figures.
type HostResources struct {
	Cores    func() int
	MemoryMB func() (int, error)              // total RAM
	FreeMB   func(path string) (int64, error) // free disk of path's file system
}

// MachineResources measures this machine.
func MachineResources() *HostResources {
	return &HostResources{Cores: runtime.NumCPU, MemoryMB: memTotalMB, FreeMB: freeDiskMB}
}

// capacity is a host's allocatable share, and what is allocated of it.
type capacity struct {
	VCPUs, MemoryMB int
	DiskMB          int64 // what sandboxes may still write (diskuse.go)
}

// need is the size of one VM.
type need struct {
	VCPUs, MemoryMB int
	// DiskMB is the disk the sandbox may still write: at a create its
	// worst case, at a resume what its files may grow by.
	DiskMB int64
}

// admitter decides whether a VM fits the host.
type admitter struct {
	cfg  AdmissionConfig
	host *HostResources
	root string // the data directory, whose file system holds the sandboxes
}

func newAdmitter(c AdmissionConfig, root string) *admitter {
	if c.CPUOvercommit <= 0 {
		c.CPUOvercommit = DefaultCPUOvercommit
	}
	if c.MemoryOvercommit <= 0 {
		c.MemoryOvercommit = 1
	}
	if c.DiskOvercommit <= 0 {
		c.DiskOvercommit = 1
	}
	if c.DiskWatchInterval <= 0 {
		c.DiskWatchInterval = DefaultDiskWatchInterval
	}
	host := c.Host
	if host == nil {
		host = MachineResources()
	}
	return &admitter{cfg: c, host: host, root: root}
}

// allocatable is the host's share for sandboxes.
func (a *admitter) allocatable() (capacity, error) {
	mem, err := a.host.MemoryMB()
	if err != nil {
		return capacity{}, err
	}
	return capacity{
		VCPUs:    int(float64(a.host.Cores()) * a.cfg.CPUOvercommit),
		MemoryMB: int(float64(max(mem-a.cfg.MemoryReserveMB, 0)) * a.cfg.MemoryOvercommit),
	}, nil
}

// admit checks that a VM of n fits beside used, returning an EHostFull
// error that names the resource it lacks.
func (a *admitter) admit(used capacity, n need) error {
	alloc, err := a.allocatable()
	if err != nil {
		return fmt.Errorf("measure host: %w", err)
	}
	if used.VCPUs+n.VCPUs > alloc.VCPUs {
		return hostFull("the sandbox needs %d vCPUs, %d of the host's %d are free", n.VCPUs, max(alloc.VCPUs-used.VCPUs, 0), alloc.VCPUs)
	}
	if used.MemoryMB+n.MemoryMB > alloc.MemoryMB {
		return hostFull("the sandbox needs %d MiB of memory, %d MiB of the host's %d MiB are free",
			n.MemoryMB, max(alloc.MemoryMB-used.MemoryMB, 0), alloc.MemoryMB)
	}
	free, err := a.host.FreeMB(a.root)
	if err != nil {
		return fmt.Errorf("measure host disk: %w", err)
	}
	spare := max(free-int64(a.cfg.DiskReserveMB), 0)
	if room := int64(float64(spare)*a.cfg.DiskOvercommit) - used.DiskMB; n.DiskMB > room {
		return hostFull("the sandbox may need %d MiB of disk, %d MiB are free above the host's %d MiB reserve and what its sandboxes may still write",
			n.DiskMB, max(room, 0), a.cfg.DiskReserveMB)
	}
	return nil
}

func hostFull(format string, args ...any) error {
	return &wrenn.Error{Code: wrenn.EHostFull, Message: "host is full: " + fmt.Sprintf(format, args...)}
}

// holds reports whether sb runs a VM or is about to, and its size.
func (sb *sandbox) holds() (need, bool) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	n := need{VCPUs: sb.rec.VCPUs, MemoryMB: sb.rec.MemoryMB}
	if n.VCPUs == 0 {
		n = sb.want // reserved, not yet started
	}
	return n, sb.lc == lcStarting || sb.lc == lcResuming || sb.mach != nil
}

// usedLocked sums the sizes of the VMs this host runs or is starting, and
// what sandboxes may still write to its disk, leaving out skip. Call with
// m.mu held.
func (m *Manager) usedLocked(skip *sandbox) capacity {
	var used capacity
	add := func(sb *sandbox) {
		if sb == skip {
			return
		}
		if n, ok := sb.holds(); ok {
			used.VCPUs += n.VCPUs
			used.MemoryMB += n.MemoryMB
		}
		used.DiskMB += sb.diskCharge()
	}
	for _, sb := range m.sandboxes {
		add(sb)
	}
	for sb := range m.members {
		add(sb)
	}
	return used
}

// reserveWithin is reserve for a create of sandbox id, of size n, that
// admission allows, counting the pool member it will claim, if any, as its
// own. When the host is full it ends idle pool members, the oldest first,
// until the sandbox fits or none is left.
func (m *Manager) reserveWithin(ctx context.Context, id string, n need, claim *poolMember) (*sandbox, error) {
	for {
		sb, err := m.reserve(id, n, func() error {
			if claim != nil {
				return nil // its VM is the claimed member's
			}
			return m.admit.admit(m.usedLocked(nil), n)
		})
		if err == nil {
			return sb, nil
		}
		if wrenn.ErrorCode(err) != wrenn.EHostFull || ctx.Err() != nil || !m.pool.yield() {
			return nil, err
		}
	}
}

// admitLocked checks that sb, paused or a new pool member, fits if it
// starts a VM of n. Call with m.mu held.
func (m *Manager) admitLocked(sb *sandbox, n need) error {
	return m.admit.admit(m.usedLocked(sb), n)
}

// admitStarting checks that sb, reserved for a create without admission
// because it was to claim a pool member that could not be claimed, fits
// now that it starts a VM of its own.
func (m *Manager) admitStarting(sb *sandbox) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.admitLocked(sb, sb.want)
}

// beginResume moves the paused sb to resuming if its VM fits the host,
// ending idle pool members to make room. It returns the paused record.
// Call with sb.op held.
func (m *Manager) beginResume(sb *sandbox) (record, error) {
	for {
		m.mu.Lock()
		_, paused, err := sb.begin(lcResuming)
		if err == nil {
			n := need{VCPUs: paused.VCPUs, MemoryMB: paused.MemoryMB, DiskMB: sb.diskHeadroom(false)}
			if err = m.admitLocked(sb, n); err != nil {
				sb.move(lcPaused)
			}
		}
		m.mu.Unlock()
		if err == nil || wrenn.ErrorCode(err) != wrenn.EHostFull || !m.pool.yield() {
			return paused, err
		}
	}
}

// addMember counts sb, a pool member about to start a VM of n, if it fits.
func (m *Manager) addMember(sb *sandbox, n need) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	sb.want = n
	if err := m.admitLocked(sb, n); err != nil {
		return err
	}
	m.members[sb] = true
	return nil
}

// dropMember stops counting sb, a pool member that has ended or been
// claimed.
func (m *Manager) dropMember(sb *sandbox) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.members, sb)
}

// memTotalMB reads the host's RAM from /proc/meminfo.
func memTotalMB() (int, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
		if err != nil {
			return 0, fmt.Errorf("parse MemTotal: %w", err)
		}
		return kb / 1024, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no MemTotal in /proc/meminfo")
}

// freeDiskMB is the space unprivileged writers may still use on path's
// file system.
func freeDiskMB(path string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	return int64(st.Bavail) * st.Bsize / wrenn.MiB, nil
}
