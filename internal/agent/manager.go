package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/layout"
	"github.com/wrennhq/wrenn/internal/netslot"
	"github.com/wrennhq/wrenn/internal/vmm"
)

// Network hands out per-sandbox network slots.
type Network interface {
	Acquire(ctx context.Context) (*netslot.Slot, error)
	Release(ctx context.Context, s *netslot.Slot) error
	Adopt(ctx context.Context, index int) (*netslot.Slot, error)
	Sweep(ctx context.Context, inUse []int) error
	// SetEgress gives a slot its sandbox's egress policy; until then the
	// slot reaches nothing.
	SetEgress(ctx context.Context, s *netslot.Slot, n wrenn.Network) error
}

// Base is a base template the agent can start sandboxes from.
type Base struct {
	Name      string
	RootFS    string // raw ext4 image
	Kernel    string // vmlinux
	SizeBytes int64
}

// Config wires a Manager.
type Config struct {
	HostID  string
	Layout  layout.Layout
	Driver  vmm.Driver
	Network Network
	Bases   []Base
	Logger  *slog.Logger
	Now     func() time.Time
	// PoolSize is how many sandboxes the warm pool keeps ready per
	// template (pool.go); 0 keeps none.
	PoolSize int
	// Pool is the warm pool's budget (issue 14); its Floor is PoolSize.
	Pool PoolConfig
	// BootTimeout bounds how long a new VM may take until its guest agent
	// answers; 0 means DefaultBootTimeout.
	BootTimeout time.Duration
	// Health says how running guests are checked (health.go); zero fields
	// take the defaults.
	Health HealthConfig
	// Admission says how much of the host sandboxes may take (admit.go).
	Admission AdmissionConfig
}

// DefaultBootTimeout suits guests under TCG on a busy 2-core host.
const DefaultBootTimeout = 60 * time.Second

// Log attribute keys.
const (
	attrSandboxID = "sandbox_id"
	attrError     = "error"
	attrPID       = "pid"
	attrTemplate  = "template"
)

// Manager is the host agent's sandbox manager: the sandboxes this host
// holds, by ID, and the operations on them. It is safe for concurrent use.
type Manager struct {
	cfg   Config
	log   *slog.Logger
	bases map[string]Base

	mu        sync.Mutex
	sandboxes map[string]*sandbox
	members   map[*sandbox]bool // warm pool members, ready or starting
	admit     *admitter

	pool   *pool
	warm   *warmer
	health *health
	disk   *diskWatch
	bg     background // persists and slot teardowns in flight

	shared      *sharedStore // travel.go; nil without a shared store
	metrics     *sampler     // sampler.go
	metricsStop context.CancelFunc
	metricsDone chan struct{}
}

// New returns a Manager. Call Adopt before serving, to take over VMs a
// previous agent process left running, then Warm and FillPool.
func New(c Config) *Manager {
	if c.BootTimeout == 0 {
		c.BootTimeout = DefaultBootTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	m := &Manager{cfg: c, log: c.Logger, bases: make(map[string]Base, len(c.Bases)), sandboxes: make(map[string]*sandbox),
		members: make(map[*sandbox]bool), admit: newAdmitter(c.Admission, c.Layout.Root)}
	for _, b := range c.Bases {
		m.bases[b.Name] = b
	}
	m.warm = &warmer{l: c.Layout, driver: c.Driver, bases: c.Bases, log: c.Logger, host: m}
	pc := c.Pool
	pc.Floor = c.PoolSize
	if alloc, err := m.admit.allocatable(); err == nil && pc.MaxMemoryMB == 0 {
		pc.MaxMemoryMB = max(alloc.MemoryMB/2, WarmMemoryMB) // half what admission allows
	}
	m.pool = newPool(pc, c.Logger, m, c.Now)
	m.health = newHealth(c.Health, m, c.Now)
	m.disk = newDiskWatch(c.Admission, m.admit, m, c.Logger)
	m.metrics = newSampler(c.Now, c.Logger)
	ctx, stop := context.WithCancel(context.Background())
	m.metricsStop, m.metricsDone = stop, make(chan struct{})
	go m.metricsLoop(ctx, wrenn.MetricsInterval, m.metricsDone)
	return m
}

// Close ends the metrics sampler (writing each running sandbox's metrics to
// its run directory), the warm pool, the health checks and the disk watch and waits for what runs
// in the background (flushes to disk, network slots being freed).
// Sandboxes stay up for the next agent to adopt.
func (m *Manager) Close() {
	m.metricsStop()
	<-m.metricsDone
	m.health.close()
	m.disk.close()
	m.pool.close()
	m.bg.wait()
}

// Info describes this host.
func (m *Manager) Info(context.Context) (*wrenn.HostInfo, error) {
	info := &wrenn.HostInfo{ID: m.cfg.HostID, StoreID: m.StoreID()}
	if a, ok := m.cfg.Driver.(interface{ CurrentAccel() string }); ok {
		info.Accel = a.CurrentAccel()
	}
	for _, b := range m.cfg.Bases {
		info.Templates = append(info.Templates, wrenn.Template{Name: b.Name, Type: wrenn.TemplateBase, SizeBytes: b.SizeBytes})
	}
	sort.Slice(info.Templates, func(i, j int) bool { return info.Templates[i].Name < info.Templates[j].Name })
	return info, nil
}

// ListSandboxes reports every sandbox this agent holds, as lifecycle.go's
// report says.
func (m *Manager) ListSandboxes(context.Context) ([]wrenn.SandboxState, error) {
	var out []wrenn.SandboxState
	for _, sb := range m.all() {
		if st, ok := sb.lifecycle().report(sb.id); ok {
			out = append(out, st)
		}
	}
	out = m.storePaused(out)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// all is every sandbox in the map, in no order.
func (m *Manager) all() []*sandbox {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*sandbox, 0, len(m.sandboxes))
	for _, sb := range m.sandboxes {
		out = append(out, sb)
	}
	return out
}

// get returns the sandbox id, which must be a valid sandbox ID.
func (m *Manager) get(id string) (*sandbox, error) {
	if err := checkSandboxID(id); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	sb, ok := m.sandboxes[id]
	if !ok {
		return nil, wrenn.Errorf(wrenn.ENotFound, "sandbox not found on this host")
	}
	return sb, nil
}

// reserve puts a new sandbox of size n, starting, under its ID if the ID
// is free and admit, called with m.mu held, allows it.
func (m *Manager) reserve(id string, n need, admit func() error) (*sandbox, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, exists := m.sandboxes[id]; exists {
		return nil, wrenn.Errorf(wrenn.EConflict, "sandbox already exists on this host")
	}
	if err := admit(); err != nil {
		return nil, err
	}
	sb := newSandbox(id, m.cfg.Layout.Sandbox(id), m.log, lcStarting)
	sb.want = n
	m.sandboxes[id] = sb
	return sb, nil
}

// forget drops sb from the map once it is gone.
func (m *Manager) forget(sb *sandbox) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sandboxes[sb.id] == sb {
		delete(m.sandboxes, sb.id)
		m.metrics.drop(sb.id)
	}
}

// lock takes the lifecycle lock of sandbox id; the caller unlocks sb.op.
func (m *Manager) lock(id string) (*sandbox, error) {
	sb, err := m.get(id)
	if err != nil {
		return nil, err
	}
	sb.op.Lock()
	return sb, nil
}

// watch ends a sandbox as failed when its VM exits by itself.
func (m *Manager) watch(sb *sandbox, mach *machine) {
	<-mach.vm.Done()
	sb.op.Lock()
	defer sb.op.Unlock()
	sb.mu.Lock()
	mine := sb.mach == mach
	sb.mu.Unlock()
	if !mine {
		return // stopped on purpose, or moved on
	}
	sb.log.Warn("vm exited unexpectedly; freeing its resources", slog.Int(attrPID, mach.vm.PID()))
	m.fail(sb)
}

// fail ends a sandbox that cannot go on: what its VM holds is freed, its
// run directory removed, and it is listed as not running until destroyed.
// Call with sb.op held.
func (m *Manager) fail(sb *sandbox) {
	sb.mu.Lock()
	mach := sb.mach
	sb.moveLocked(lcFailed)
	sb.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if mach != nil {
		if err := mach.release.run(ctx); err != nil {
			sb.log.Error("free resources of failed sandbox; a destroy retries", slog.Any(attrError, err))
			return // the machine stays, so a destroy retries what failed
		}
		sb.mu.Lock()
		sb.mach = nil
		sb.mu.Unlock()
	}
	logErr(sb.log, "remove run dir of failed sandbox", removeRunDir(sb.dir))
}

// logErr logs a failure that has no caller to return to.
func logErr(log *slog.Logger, msg string, err error) {
	if err != nil {
		log.Error(msg, slog.Any(attrError, err))
	}
}

func removeRunDir(dir layout.SandboxDir) error {
	if err := os.RemoveAll(dir.Path()); err != nil {
		return fmt.Errorf("remove run dir: %w", err)
	}
	return nil
}
