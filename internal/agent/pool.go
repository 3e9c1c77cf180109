package agent

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/layout"
)

// The warm pool: the agent keeps a few sandboxes already restored from a
// template and run once, so that a create takes one and only gives it its
// identity (hostname, clock, a reseeded RNG; its network slot is its own
// already) instead of starting a VM. Under TCG this matters most: a new
// QEMU process translates the guest's code afresh, so the first command
// after a restore costs hundreds of milliseconds that a pool member has
// already paid.
//
// Each base is kept warm at the default sizes from the start. A team's
// snapshot template gets a member after each create from it, for the next
// one, which is ended once idle for poolIdle, when the template is deleted
// or replaced, or to make room: a host keeps at most maxTemplateMembers of
// them, the oldest giving way. Members are ordinary sandboxes whose run
// directories are named pool-<random> and whose records say Pool; they are
// not listed to the control plane until a create claims one. Close ends the
// members left; an agent that finds unclaimed members of a crashed
// predecessor ends them.

// DefaultPoolSize is how many ready sandboxes the pool keeps per template.
const DefaultPoolSize = 1

// poolWarmup is run once in each new member, to get the guest's command
// path (the guest agent, the shell, fork and exec) translated and paged in.
const poolWarmup = "/bin/true"

// poolRetry is how long the pool waits after a base's member failed to
// start.
const poolRetry = 5 * time.Second

// poolIdle is how long a snapshot template's member waits to be claimed.
const poolIdle = 10 * time.Minute

// poolKey names a template the pool keeps members of: a base (team "") or
// a team's snapshot template.
type poolKey struct{ team, name string }

type pool struct {
	size   int
	ctx    context.Context // ends when the manager closes
	cancel context.CancelFunc
	wg     sync.WaitGroup // fills in flight

	// Guarded by Manager.mu.
	ready   map[poolKey][]*poolMember
	filling map[poolKey]int
	gen     map[poolKey]int // bumped when a template's members are dropped
	closed  bool
}

type poolMember struct {
	sb      *sandbox
	net     wrenn.SandboxNet
	tmpl    layout.TemplateDir
	readyAt time.Time
	expiry  *time.Timer // snapshot templates' members only
}

func newPool(size int) *pool {
	ctx, cancel := context.WithCancel(context.Background())
	return &pool{size: size, ctx: ctx, cancel: cancel, ready: make(map[poolKey][]*poolMember),
		filling: make(map[poolKey]int), gen: make(map[poolKey]int)}
}

// FillPool starts filling the warm pool of every base that has a warm
// snapshot. Call after Warm.
func (m *Manager) FillPool() {
	for _, b := range m.cfg.Bases {
		m.refill(poolKey{name: b.Name})
	}
}

// poolSource is what a member of key starts from: the template and its
// base, and the record a member starts with.
func (m *Manager) poolSource(key poolKey) (layout.TemplateDir, Base, state, error) {
	st := state{Template: key.name, TeamID: key.team, Driver: m.cfg.Driver.Name(), FromSnapshot: true, Pool: true}
	if key.team == "" {
		b, ok := m.bases[key.name]
		m.mu.Lock()
		tmpl := m.warmDirs[key.name]
		m.mu.Unlock()
		if !ok || tmpl == "" {
			return "", b, st, errors.New("no warm snapshot")
		}
		st.Base, st.Kernel, st.VCPUs, st.MemoryMB = b.Name, b.Kernel, WarmVCPUs, WarmMemoryMB
		return tmpl, b, st, nil
	}
	tmpl := m.cfg.Layout.Template(key.team, key.name)
	meta, err := readTemplateMeta(tmpl)
	if err != nil {
		return "", Base{}, st, err
	}
	b, ok := m.bases[meta.Base]
	if !ok {
		return "", b, st, fmt.Errorf("base %q is gone", meta.Base)
	}
	b.Kernel = meta.Kernel
	st.Base, st.Kernel, st.VCPUs, st.MemoryMB = b.Name, b.Kernel, meta.VCPUs, meta.MemoryMB
	return tmpl, b, st, nil
}

// refill starts as many members of key as the pool lacks.
func (m *Manager) refill(key poolKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.pool
	if p.closed {
		return
	}
	for len(p.ready[key])+p.filling[key] < p.size {
		if key.team != "" && !m.makeRoomLocked() {
			return
		}
		p.filling[key]++
		p.wg.Add(1)
		go m.fill(key, p.gen[key])
	}
}

// maxTemplateMembers bounds the members kept of snapshot templates on a
// host, whichever teams they belong to, so that creates from many
// templates cannot fill the host with idle sandboxes.
const maxTemplateMembers = 8

// makeRoomLocked makes room for one more member of a snapshot template,
// ending the one that has waited longest if the pool is at its bound. It
// reports false if there is no room (the members are all still starting).
// Call with m.mu held.
func (m *Manager) makeRoomLocked() bool {
	p := m.pool
	n := 0
	var oldest *poolMember
	var oldestKey poolKey
	for key, ready := range p.ready {
		if key.team == "" {
			continue
		}
		n += len(ready)
		for _, member := range ready {
			if oldest == nil || member.readyAt.Before(oldest.readyAt) {
				oldest, oldestKey = member, key
			}
		}
	}
	for key, filling := range p.filling {
		if key.team != "" {
			n += filling
		}
	}
	if n < maxTemplateMembers {
		return true
	}
	if oldest == nil {
		return false
	}
	ready := p.ready[oldestKey]
	i := slices.Index(ready, oldest)
	p.ready[oldestKey] = slices.Delete(ready, i, i+1)
	m.tidyLocked(oldestKey)
	oldest.expiry.Stop()
	m.endMemberAsync(oldest.sb)
	return true
}

// fill starts one member of key and adds it to the pool, unless the
// template's members were dropped (gen moved on) meanwhile.
func (m *Manager) fill(key poolKey, gen int) {
	defer m.pool.wg.Done()
	member, err := m.startMember(m.pool.ctx, key)
	m.mu.Lock()
	p := m.pool
	p.filling[key]--
	keep := err == nil && !p.closed && p.gen[key] == gen
	if keep {
		member.readyAt = time.Now()
		p.ready[key] = append(p.ready[key], member)
		if key.team != "" {
			member.expiry = time.AfterFunc(poolIdle, func() { m.expire(key, member) })
		}
	}
	closed := p.closed
	m.tidyLocked(key)
	m.mu.Unlock()
	switch {
	case err != nil && !closed && key.team == "":
		m.log.Warn("warm pool: could not start a sandbox", slog.String("template", key.name), slog.Any(attrError, err))
		select {
		case <-time.After(poolRetry):
			m.refill(key)
		case <-p.ctx.Done():
		}
	case err != nil && !closed:
		// A snapshot template may have been deleted: the next create
		// from it tries again.
		m.log.Info("warm pool: could not start a sandbox", slog.String("template", key.name), slog.Any(attrError, err))
	case err == nil && !keep:
		m.endMember(member.sb)
	}
}

// startMember restores key's template into a new pool member and runs the
// warm-up command in it.
func (m *Manager) startMember(ctx context.Context, key poolKey) (*poolMember, error) {
	tmpl, b, st, err := m.poolSource(key)
	if err != nil {
		return nil, err
	}
	id := "pool-" + strings.ToLower(rand.Text()[:16])
	st.ID, st.CreatedAt = id, m.cfg.Now().UTC()
	sb := &sandbox{id: id, dir: m.cfg.Layout.Sandbox(id), log: m.log.With(slog.String(attrSandboxID, id))}
	sb.op.Lock()
	defer sb.op.Unlock()
	start := time.Now()
	net, err := m.start(ctx, sb, &st, tmpl, b)
	if err != nil {
		m.undoStart(ctx, sb)
		return nil, err
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
		return nil, err
	}
	sb.log.Info("warm pool: sandbox ready", slog.String("template", key.name), slog.Duration("took", time.Since(start)))
	return &poolMember{sb: sb, net: net, tmpl: tmpl}, nil
}

// expire ends a snapshot template's member that nobody claimed.
func (m *Manager) expire(key poolKey, member *poolMember) {
	m.mu.Lock()
	ready := m.pool.ready[key]
	i := slices.Index(ready, member)
	if i >= 0 {
		m.pool.ready[key] = slices.Delete(ready, i, i+1)
		m.tidyLocked(key)
	}
	m.mu.Unlock()
	if i >= 0 {
		member.sb.log.Info("warm pool: ending an unclaimed sandbox", slog.String("template", key.name))
		m.endMember(member.sb)
	}
}

// dropPool ends the members of a team's snapshot template, which is being
// deleted or replaced; fills in flight are discarded when they finish.
func (m *Manager) dropPool(team, name string) {
	key := poolKey{team: team, name: name}
	m.mu.Lock()
	members := m.pool.ready[key]
	delete(m.pool.ready, key)
	if m.pool.filling[key] > 0 {
		m.pool.gen[key]++ // the fills in flight end what they start
	}
	m.mu.Unlock()
	for _, member := range members {
		if member.expiry != nil {
			member.expiry.Stop()
		}
		m.endMember(member.sb)
	}
}

// tidyLocked forgets a template the pool holds nothing of, so that the
// pool's maps do not grow with every template ever used. Its generation
// matters only to fills in flight. Call with m.mu held.
func (m *Manager) tidyLocked(key poolKey) {
	p := m.pool
	if p.filling[key] > 0 {
		return
	}
	delete(p.filling, key)
	delete(p.gen, key)
	if len(p.ready[key]) == 0 {
		delete(p.ready, key)
	}
}

// endMemberAsync ends a member in the background; Close waits for it.
func (m *Manager) endMemberAsync(sb *sandbox) {
	m.pool.wg.Add(1)
	go func() {
		defer m.pool.wg.Done()
		m.endMember(sb)
	}()
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

// claim makes a ready member of key, restored from tmpl, into the sandbox
// sb, as st describes, and reports whether it could. Call with sb.op held.
func (m *Manager) claim(ctx context.Context, sb *sandbox, st *state, key poolKey, tmpl layout.TemplateDir) (wrenn.SandboxNet, bool) {
	for {
		m.mu.Lock()
		ready := m.pool.ready[key]
		if len(ready) == 0 {
			m.mu.Unlock()
			return wrenn.SandboxNet{}, false
		}
		member := ready[0]
		m.pool.ready[key] = ready[1:]
		m.tidyLocked(key)
		m.mu.Unlock()
		if member.expiry != nil {
			member.expiry.Stop()
		}
		if !sameTemplate(member, tmpl) {
			// Restored from a template since replaced: never hand it out.
			m.endMemberAsync(member.sb)
			continue
		}
		if net, ok := m.takeOver(ctx, sb, st, member); ok {
			return net, true
		}
	}
}

// sameTemplate says whether member was restored from the template files
// tmpl holds now.
func sameTemplate(member *poolMember, tmpl layout.TemplateDir) bool {
	if member.tmpl != tmpl {
		return false
	}
	a, err := os.Stat(member.sb.dir.TemplateMemory())
	if err != nil {
		return false
	}
	b, err := os.Stat(tmpl.Memory())
	return err == nil && os.SameFile(a, b)
}

// takeOver moves a pool member's VM and resources into sb and gives the
// guest sb's identity. A member that died or will not take its identity
// is ended, and the caller tries another.
func (m *Manager) takeOver(ctx context.Context, sb *sandbox, st *state, member *poolMember) (wrenn.SandboxNet, bool) {
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

// closePool ends the warm pool: fills in flight are cut off and ready
// members stopped.
func (m *Manager) closePool() {
	m.mu.Lock()
	p := m.pool
	p.closed = true
	var members []*poolMember
	for key, ready := range p.ready {
		members = append(members, ready...)
		delete(p.ready, key)
	}
	m.mu.Unlock()
	p.cancel()
	for _, member := range members {
		if member.expiry != nil {
			member.expiry.Stop()
		}
		m.endMember(member.sb)
	}
	p.wg.Wait()
}
