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
	"github.com/wrennhq/wrenn/internal/envd"
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
	// BootTimeout bounds how long a new VM may take until its guest agent
	// answers; 0 means DefaultBootTimeout.
	BootTimeout time.Duration
}

// DefaultBootTimeout suits guests under TCG on a busy 2-core host.
const DefaultBootTimeout = 60 * time.Second

// Log attribute keys.
const (
	attrSandboxID = "sandbox_id"
	attrError     = "error"
	attrPID       = "pid"
)

// Manager is the host agent's sandbox manager. It is safe for concurrent use.
type Manager struct {
	cfg   Config
	log   *slog.Logger
	bases map[string]Base

	mu         sync.Mutex
	sandboxes  map[string]*sandbox
	warmDirs   map[string]layout.TemplateDir // base name → its warm snapshot
	pool       *pool
	background sync.WaitGroup // persist and later in flight
}

// sandbox is one sandbox this host holds: a running VM and what it uses,
// or, paused, only its run directory.
type sandbox struct {
	id  string
	log *slog.Logger
	dir layout.SandboxDir

	// op serialises lifecycle operations on this sandbox (destroy, pause,
	// resume, snapshot); exec and files run concurrently.
	op sync.Mutex

	mu      sync.Mutex
	st      state // what the run directory records
	vm      vmm.VM
	envd    *envd.Client
	release cleanup // frees what the running VM holds, newest first
	paused  bool    // on disk only: no VM, no network slot
	dead    bool    // the VM exited by itself; resources already freed
	gone    bool    // destroyed or consumed; no longer in the map
}

// New returns a Manager. Call Adopt before serving, to take over VMs a
// previous agent process left running.
func New(c Config) *Manager {
	if c.BootTimeout == 0 {
		c.BootTimeout = DefaultBootTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	bases := make(map[string]Base, len(c.Bases))
	for _, b := range c.Bases {
		bases[b.Name] = b
	}
	return &Manager{cfg: c, log: c.Logger, bases: bases, sandboxes: make(map[string]*sandbox),
		warmDirs: make(map[string]layout.TemplateDir), pool: newPool(c.PoolSize)}
}

// Close ends the warm pool and waits for what runs in the background
// (flushes to disk, network slots being freed). Sandboxes stay up for the
// next agent to adopt.
func (m *Manager) Close() {
	m.closePool()
	m.background.Wait()
}

// Info describes this host.
func (m *Manager) Info(context.Context) (*wrenn.HostInfo, error) {
	info := &wrenn.HostInfo{ID: m.cfg.HostID}
	if a, ok := m.cfg.Driver.(interface{ CurrentAccel() string }); ok {
		info.Accel = a.CurrentAccel()
	}
	for _, b := range m.cfg.Bases {
		info.Templates = append(info.Templates, wrenn.Template{Name: b.Name, Type: wrenn.TemplateBase, SizeBytes: b.SizeBytes})
	}
	sort.Slice(info.Templates, func(i, j int) bool { return info.Templates[i].Name < info.Templates[j].Name })
	return info, nil
}

// ListSandboxes reports every sandbox this agent holds.
func (m *Manager) ListSandboxes(context.Context) ([]wrenn.SandboxState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]wrenn.SandboxState, 0, len(m.sandboxes))
	for id, sb := range m.sandboxes {
		sb.mu.Lock()
		out = append(out, wrenn.SandboxState{ID: id, Running: !sb.dead && !sb.paused, Paused: sb.paused})
		sb.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (m *Manager) get(id string) (*sandbox, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	sb, ok := m.sandboxes[id]
	if !ok {
		return nil, wrenn.Errorf(wrenn.ENotFound, "sandbox not found on this host")
	}
	return sb, nil
}

// client returns the guest agent client of a running sandbox.
func (m *Manager) client(id string) (*envd.Client, error) {
	sb, err := m.get(id)
	if err != nil {
		return nil, err
	}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.paused {
		return nil, wrenn.Errorf(wrenn.EConflict, "sandbox is paused")
	}
	if sb.dead || sb.envd == nil {
		return nil, wrenn.Errorf(wrenn.EConflict, "sandbox is not running")
	}
	return sb.envd, nil
}

// watch frees a sandbox's resources when its VM exits by itself.
func (m *Manager) watch(sb *sandbox, vm vmm.VM) {
	<-vm.Done()
	sb.op.Lock()
	defer sb.op.Unlock()
	sb.mu.Lock()
	if sb.gone || sb.vm != vm {
		sb.mu.Unlock()
		return // destroyed on purpose, or replaced
	}
	sb.dead = true
	sb.mu.Unlock()
	sb.log.Warn("vm exited unexpectedly; freeing its resources", slog.Int(attrPID, vm.PID()))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := sb.release.run(ctx); err != nil {
		sb.log.Error("free resources of dead vm", slog.Any(attrError, err))
	}
	logErr(sb.log, "remove run dir of dead vm", os.RemoveAll(sb.dir.Path()))
}

// running returns the VM and record of a sandbox that runs. Call with
// sb.op held.
func (sb *sandbox) running() (vmm.VM, state, error) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	switch {
	case sb.gone:
		return nil, state{}, wrenn.Errorf(wrenn.ENotFound, "sandbox not found on this host")
	case sb.paused:
		return nil, state{}, wrenn.Errorf(wrenn.EConflict, "sandbox is paused")
	case sb.dead || sb.vm == nil:
		return nil, state{}, wrenn.Errorf(wrenn.EConflict, "sandbox is not running")
	}
	return sb.vm, sb.st, nil
}

func removeRunDir(dir layout.SandboxDir) error {
	if err := os.RemoveAll(dir.Path()); err != nil {
		return fmt.Errorf("remove run dir: %w", err)
	}
	return nil
}
