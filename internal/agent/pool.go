package agent

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/wrennhq/wrenn"
)

// The warm pool: for each base with a warm snapshot, the agent keeps a few
// sandboxes already restored from it and run once, so that a create at the
// default sizes takes one of them and only gives it its identity (hostname,
// clock, a reseeded RNG; its network slot is its own already) instead of
// starting a VM. Under TCG this matters most: a new QEMU process translates
// the guest's code afresh, so the first command after a restore costs
// hundreds of milliseconds that a pool member has already paid.
//
// Members are ordinary sandboxes whose run directories are named
// pool-<random> and whose records say Pool; they are not listed to the
// control plane until a create claims one. Close ends the members left; an
// agent that finds unclaimed members of a crashed predecessor ends them.

// DefaultPoolSize is how many ready sandboxes the pool keeps per base.
const DefaultPoolSize = 1

// poolWarmup is run once in each new member, to get the guest's command
// path (the guest agent, the shell, fork and exec) translated and paged in.
const poolWarmup = "/bin/true"

// poolRetry is how long the pool waits after a member failed to start.
const poolRetry = 5 * time.Second

type pool struct {
	size   int
	ctx    context.Context // ends when the manager closes
	cancel context.CancelFunc
	wg     sync.WaitGroup // fills in flight

	// Guarded by Manager.mu.
	ready   map[string][]poolMember // base name → ready members
	filling map[string]int          // base name → members starting
	closed  bool
}

type poolMember struct {
	sb  *sandbox
	net wrenn.SandboxNet
}

func newPool(size int) *pool {
	ctx, cancel := context.WithCancel(context.Background())
	return &pool{size: size, ctx: ctx, cancel: cancel,
		ready: make(map[string][]poolMember), filling: make(map[string]int)}
}

// FillPool starts filling the warm pool of every base that has a warm
// snapshot. Call after Warm.
func (m *Manager) FillPool() {
	for _, b := range m.cfg.Bases {
		m.refill(b.Name)
	}
}

// refill starts as many members of base's pool as it lacks.
func (m *Manager) refill(base string) {
	b, ok := m.bases[base]
	if !ok {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.pool
	warm := m.warmDirs[base]
	if p.closed || warm == "" {
		return
	}
	for len(p.ready[base])+p.filling[base] < p.size {
		p.filling[base]++
		p.wg.Add(1)
		go m.fill(b)
	}
}

// fill starts one pool member of base and adds it to the pool.
func (m *Manager) fill(b Base) {
	defer m.pool.wg.Done()
	member, err := m.startMember(m.pool.ctx, b)
	m.mu.Lock()
	m.pool.filling[b.Name]--
	closed := m.pool.closed
	if err == nil && !closed {
		m.pool.ready[b.Name] = append(m.pool.ready[b.Name], member)
	}
	m.mu.Unlock()
	switch {
	case err != nil && !closed:
		m.log.Warn("warm pool: could not start a sandbox", slog.String("base", b.Name), slog.Any(attrError, err))
		select {
		case <-time.After(poolRetry):
			m.refill(b.Name)
		case <-m.pool.ctx.Done():
		}
	case err == nil && closed:
		m.endMember(member.sb)
	}
}

// startMember restores base's warm snapshot into a new pool member and
// runs the warm-up command in it.
func (m *Manager) startMember(ctx context.Context, b Base) (member poolMember, err error) {
	id := "pool-" + strings.ToLower(rand.Text()[:16])
	m.mu.Lock()
	tmpl := m.warmDirs[b.Name]
	m.mu.Unlock()
	st := state{ID: id, Template: b.Name, Base: b.Name, Kernel: b.Kernel, VCPUs: WarmVCPUs, MemoryMB: WarmMemoryMB,
		Driver: m.cfg.Driver.Name(), FromSnapshot: true, Pool: true, CreatedAt: m.cfg.Now().UTC()}
	sb := &sandbox{id: id, dir: m.cfg.Layout.Sandbox(id), log: m.log.With(slog.String(attrSandboxID, id))}
	sb.op.Lock()
	defer sb.op.Unlock()
	start := time.Now()
	net, err := m.start(ctx, sb, &st, tmpl, b)
	if err != nil {
		m.undoStart(ctx, sb)
		return member, err
	}
	sb.mu.Lock()
	client := sb.envd
	sb.mu.Unlock()
	res, err := client.Exec(ctx, wrenn.ExecRequest{Cmd: poolWarmup, Timeout: 30 * time.Second})
	if err == nil && res.ExitCode != 0 {
		err = errors.New("warm-up command failed: " + string(res.Stderr))
	}
	if err != nil {
		m.undoStart(ctx, sb)
		return member, err
	}
	sb.log.Info("warm pool: sandbox ready", slog.Duration("took", time.Since(start)))
	return poolMember{sb: sb, net: net}, nil
}

// endMember stops a pool member and removes its run directory.
func (m *Manager) endMember(sb *sandbox) {
	sb.op.Lock()
	defer sb.op.Unlock()
	sb.mu.Lock()
	gone := sb.gone || sb.dead
	sb.gone = true
	sb.mu.Unlock()
	if gone {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	logErr(sb.log, "end pool sandbox", errors.Join(sb.release.run(ctx), removeRunDir(sb.dir)))
}

// claim makes a ready pool member of base into the sandbox sb, as st
// describes, and reports whether it could. Call with sb.op held.
func (m *Manager) claim(ctx context.Context, sb *sandbox, st *state) (wrenn.SandboxNet, bool) {
	defer m.refill(st.Base)
	for {
		m.mu.Lock()
		ready := m.pool.ready[st.Base]
		if len(ready) == 0 {
			m.mu.Unlock()
			return wrenn.SandboxNet{}, false
		}
		member := ready[0]
		m.pool.ready[st.Base] = ready[1:]
		m.mu.Unlock()
		if net, ok := m.takeOver(ctx, sb, st, member); ok {
			return net, true
		}
	}
}

// takeOver moves a pool member's VM and resources into sb and gives the
// guest sb's identity. A member that died or will not take its identity
// is ended, and the caller tries another.
func (m *Manager) takeOver(ctx context.Context, sb *sandbox, st *state, member poolMember) (wrenn.SandboxNet, bool) {
	p, own := member.sb, sb.dir
	p.op.Lock()
	p.mu.Lock()
	alive := !p.dead && !p.gone
	if alive {
		// From here the member's watcher stands down: sb watches the VM.
		p.gone = true
		sb.dir, sb.release, sb.vm, sb.envd = p.dir, p.release, p.vm, p.envd
		st.Kernel, st.PID, st.Slot = p.st.Kernel, p.st.PID, p.st.Slot
		st.FromSnapshot, st.OwnMemory = true, false
	}
	p.mu.Unlock()
	p.op.Unlock()
	if !alive {
		return wrenn.SandboxNet{}, false
	}
	err := m.initGuest(ctx, sb.envd, st.ID)
	if err == nil {
		err = writeState(sb.dir, *st)
	}
	if err != nil {
		sb.log.Warn("warm pool: sandbox could not be claimed", slog.String("pool_dir", sb.dir.Path()), slog.Any(attrError, err))
		m.undoStart(context.WithoutCancel(ctx), sb)
		sb.dir, sb.vm, sb.envd = own, nil, nil
		return wrenn.SandboxNet{}, false
	}
	sb.mu.Lock()
	sb.st = *st
	vm := sb.vm
	sb.mu.Unlock()
	go m.watch(sb, vm)
	return member.net, true
}

// Close ends the warm pool: fills in flight are cut off and ready members
// stopped. Sandboxes stay up for the next agent to adopt.
func (m *Manager) Close() {
	m.mu.Lock()
	p := m.pool
	p.closed = true
	var members []poolMember
	for base, ready := range p.ready {
		members = append(members, ready...)
		delete(p.ready, base)
	}
	m.mu.Unlock()
	p.cancel()
	for _, member := range members {
		m.endMember(member.sb)
	}
	p.wg.Wait()
}
