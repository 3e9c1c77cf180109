package agent

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/layout"
)

// The warm pool: the agent keeps sandboxes already restored from a
// template and run once, so that a create takes one and only gives it its
// identity (hostname, clock, a reseeded RNG, its egress policy; its
// network slot is its own already) instead of starting a VM. Under TCG
// this matters most: a new QEMU process translates the guest's code
// afresh, so the first command after a restore costs hundreds of
// milliseconds that a pool member has already paid.
//
// The pool follows demand (issue 14, demand.go): it keeps as many members
// of each template as the largest burst of creates of it in the last
// demandWindow, at least the floor (PoolConfig.Floor for each base, none
// for a team's snapshot template) and within the operator's budget
// (PoolConfig.Max members and MaxMemoryMB of their memory across
// templates; at most maxTemplateMembers of snapshot templates, the oldest
// giving way). Members beyond a template's target — its burst is out of
// the window — are ended by the pool's tick; so are those of a template
// deleted or replaced.
//
// Members are made in the background, Refills at a time at most while
// creates wait for them and BackgroundRefills otherwise; refills that are
// not for a waiting create hold off while any create waits or restores a
// VM of its own, and until refillDelay after the last create, so that they
// do not take the CPU a burst's creates and first commands need. A create
// that finds no member ready waits for one the pool makes for it (it is
// counted as a waiter, and the pool starts a make per waiter, the first
// member ready going to the first waiter), rather than starting a restore
// of its own beside them: on a host whose CPU is the bottleneck, a queue
// of restores finishes its first ones sooner than as many restores at
// once, and the last no later.
//
// Members are sandboxes in the pooled lifecycle whose run directories are
// named pool-<random> and whose records say Pool; they are not listed to
// the control plane until a create claims one (member.go). They count in
// the host's admission (admit.go), and a create that needs room ends
// them, those beyond their template's target first. Close ends the
// members left; an agent that finds unclaimed members of a crashed
// predecessor ends them.

// DefaultPoolSize is the floor: how many ready sandboxes the pool keeps of
// each base however quiet it is.
const DefaultPoolSize = 1

// DefaultPoolMax is how many members the pool keeps at most, across
// templates, unless PoolConfig.Max says otherwise.
const DefaultPoolMax = 32

// poolRetry is how long the pool waits after a template's member failed
// to start before it makes another of it.
const poolRetry = 5 * time.Second

// poolTick is how often the pool ends members beyond their template's
// target and refills those below it.
const poolTick = 250 * time.Millisecond

// refillDelay is how long after the last create the pool waits before it
// refills: a burst's creates and their first commands need the CPU a
// restore would take (about 0.4 s of a core under TCG), and refills are
// for the next burst, not this one.
const refillDelay = time.Second

// maxTemplateMembers bounds the members kept of snapshot templates on a
// host, whichever teams they belong to, so that creates from many
// templates cannot fill the host with idle sandboxes.
const maxTemplateMembers = 8

// PoolConfig is the operator's budget for the warm pool.
type PoolConfig struct {
	// Floor is how many members of each base the pool keeps however
	// quiet; 0 turns the pool off (every create starts a VM).
	Floor int
	// Max is how many members the pool keeps at most across templates; 0
	// means DefaultPoolMax.
	Max int
	// MaxMemoryMB bounds the memory of the members kept across templates
	// (their guests' sizes, as admission counts them); 0 means no bound
	// beyond Max and admission.
	MaxMemoryMB int
	// Refills is how many members the pool makes at once while creates
	// wait for them; 0 means one per host core.
	Refills int
	// BackgroundRefills is how many it makes at once when none waits; 0
	// means half the host's cores, at least one.
	BackgroundRefills int
}

// poolKey names a template the pool keeps members of: a base (team "") or
// a team's snapshot template.
type poolKey struct{ team, name string }

// memberHost makes and ends pool members: the Manager (member.go).
type memberHost interface {
	makeMember(ctx context.Context, key poolKey) (*poolMember, error)
	endMember(sb *sandbox)
}

// pool keeps members ready per template. Its one job is bookkeeping:
// which members are ready, which are being made and for whom, and when to
// make or end one; making and ending them is its host's.
type pool struct {
	cfg    PoolConfig
	log    *slog.Logger
	host   memberHost
	now    func() time.Time
	ctx    context.Context // ends when the pool closes
	cancel context.CancelFunc
	wg     sync.WaitGroup // makes, ends and the tick in flight

	mu        sync.Mutex
	ready     map[poolKey][]*poolMember
	filling   map[poolKey]int
	gen       map[poolKey]int // bumped when a template's members are dropped
	waiters   map[poolKey][]*poolWaiter
	demand    map[poolKey]*demand
	bases     map[poolKey]bool      // kept at the floor
	retryAt   map[poolKey]time.Time // no make of it before
	sizeMB    map[poolKey]int       // a member's memory, as last made
	restoring int                   // creates starting VMs of their own
	lastClaim time.Time             // the last create's
	closed    bool
}

type poolMember struct {
	sb      *sandbox
	tmpl    layout.TemplateDir // what it was restored from
	readyAt time.Time
}

// poolWaiter is a create waiting for a member; the pool sends it one, or
// nil when none is coming.
type poolWaiter struct{ ch chan *poolMember }

func newPool(cfg PoolConfig, log *slog.Logger, host memberHost, now func() time.Time) *pool {
	if cfg.Max <= 0 {
		cfg.Max = DefaultPoolMax
	}
	if cfg.Refills <= 0 {
		cfg.Refills = max(runtime.NumCPU(), 1)
	}
	if cfg.BackgroundRefills <= 0 {
		cfg.BackgroundRefills = max(runtime.NumCPU()/2, 1)
	}
	if now == nil {
		now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &pool{cfg: cfg, log: log, host: host, now: now, ctx: ctx, cancel: cancel,
		ready: make(map[poolKey][]*poolMember), filling: make(map[poolKey]int), gen: make(map[poolKey]int),
		waiters: make(map[poolKey][]*poolWaiter), demand: make(map[poolKey]*demand), bases: make(map[poolKey]bool),
		retryAt: make(map[poolKey]time.Time), sizeMB: make(map[poolKey]int)}
}

// on says whether the pool keeps members at all.
func (p *pool) on() bool { return p.cfg.Floor > 0 }

// start keeps the floor of each of bases and starts the pool's tick.
func (p *pool) start(bases []poolKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || !p.on() {
		return
	}
	for _, key := range bases {
		p.bases[key] = true
	}
	p.pumpLocked()
	p.wg.Add(1)
	go p.ticks()
}

func (p *pool) ticks() {
	defer p.wg.Done()
	t := time.NewTicker(poolTick)
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
			p.tick()
		}
	}
}

// tick ends members beyond their template's target, those ready longest
// first, and refills templates below theirs.
func (p *pool) tick() {
	p.mu.Lock()
	now := p.now()
	var idle []*poolMember
	var idleKeys []poolKey
	for key, ready := range p.ready {
		excess := len(ready) - p.targetLocked(key, now)
		for _, member := range slices.Clone(ready[:max(excess, 0)]) {
			p.removeLocked(key, member)
			idle, idleKeys = append(idle, member), append(idleKeys, key)
		}
	}
	for key, d := range p.demand {
		if d.empty(now) {
			delete(p.demand, key)
		}
	}
	p.pumpLocked()
	p.mu.Unlock()
	for i, member := range idle {
		member.sb.log.Info("warm pool: ending an idle sandbox", slog.String(attrTemplate, idleKeys[i].name))
		p.endAsync(member)
	}
}

// floor is how many members of key the pool keeps however quiet.
func (p *pool) floorLocked(key poolKey) int {
	if p.bases[key] {
		return p.cfg.Floor
	}
	return 0
}

// targetLocked is how many members of key the pool keeps ready: the
// largest recent burst of its creates, at least its floor, at most the
// pool's Max. Call with p.mu held.
func (p *pool) targetLocked(key poolKey, now time.Time) int {
	if !p.on() {
		return 0
	}
	peak := 0
	if d := p.demand[key]; d != nil {
		peak = d.peak(now)
	}
	return min(max(peak, p.floorLocked(key)), p.cfg.Max)
}

// noteLocked counts a create of key. Call with p.mu held.
func (p *pool) noteLocked(key poolKey) {
	d := p.demand[key]
	if d == nil {
		d = &demand{}
		p.demand[key] = d
	}
	p.lastClaim = p.now()
	d.add(p.lastClaim)
}

// pumpLocked starts the makes the pool lacks: first one for each create
// waiting that no make in flight serves, Refills at a time; then, if no
// create waits or restores, refills up to each template's target,
// BackgroundRefills at a time and within the budget. Call with p.mu held.
func (p *pool) pumpLocked() {
	if p.closed || !p.on() {
		return
	}
	now := p.now()
	inflight := 0
	for _, n := range p.filling {
		inflight += n
	}
	waiting := false
	for key, ws := range p.waiters {
		if len(ws) == 0 {
			continue
		}
		waiting = true
		for len(ws) > p.filling[key] && inflight < p.cfg.Refills && !now.Before(p.retryAt[key]) {
			p.startLocked(key)
			inflight++
		}
	}
	if waiting || p.restoring > 0 || now.Sub(p.lastClaim) < refillDelay {
		return
	}
	keys := make(map[poolKey]bool, len(p.bases)+len(p.demand))
	for key := range p.bases {
		keys[key] = true
	}
	for key := range p.demand {
		keys[key] = true
	}
	for key := range keys {
		for inflight < p.cfg.BackgroundRefills && len(p.ready[key])+p.filling[key] < p.targetLocked(key, now) &&
			!now.Before(p.retryAt[key]) && p.budgetLocked(key) {
			p.startLocked(key)
			inflight++
		}
	}
}

// startLocked starts making a member of key. Call with p.mu held.
func (p *pool) startLocked(key poolKey) {
	p.filling[key]++
	p.wg.Add(1)
	go p.make(key, p.gen[key])
}

// budgetLocked says whether one more member of key fits the operator's
// budget, ending a snapshot template's oldest member to make room for
// another at maxTemplateMembers. Call with p.mu held.
func (p *pool) budgetLocked(key poolKey) bool {
	count, memMB := 0, 0
	for k, n := range p.filling {
		count += n
		memMB += n * p.memberMBLocked(k)
	}
	for k, ready := range p.ready {
		count += len(ready)
		memMB += len(ready) * p.memberMBLocked(k)
	}
	if count >= p.cfg.Max || (p.cfg.MaxMemoryMB > 0 && memMB+p.memberMBLocked(key) > p.cfg.MaxMemoryMB) {
		return false
	}
	return key.team == "" || p.makeRoomLocked()
}

// memberMBLocked is the memory of a member of key, as last made (a base's
// until then). Call with p.mu held.
func (p *pool) memberMBLocked(key poolKey) int {
	if mb := p.sizeMB[key]; mb > 0 {
		return mb
	}
	return WarmMemoryMB
}

// makeRoomLocked makes room for one more member of a snapshot template,
// ending the one that has waited longest if the pool is at its bound. It
// reports false if there is no room (the members are all still starting).
// Call with p.mu held.
func (p *pool) makeRoomLocked() bool {
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
	p.removeLocked(oldestKey, oldest)
	p.endAsync(oldest)
	return true
}

// make makes one member of key and hands it to the first create waiting
// for one, or adds it to the pool, unless the template's members were
// dropped (gen moved on) meanwhile.
func (p *pool) make(key poolKey, gen int) {
	defer p.wg.Done()
	member, err := p.host.makeMember(p.ctx, key)
	p.mu.Lock()
	p.filling[key]--
	keep := err == nil && !p.closed && p.gen[key] == gen
	ready, target, handed := 0, 0, false
	if keep {
		member.readyAt = p.now()
		if n, ok := member.sb.holds(); ok && n.MemoryMB > 0 {
			p.sizeMB[key] = n.MemoryMB
		}
		if ws := p.waiters[key]; len(ws) > 0 {
			p.waiters[key] = ws[1:]
			ws[0].ch <- member
			handed = true
		} else {
			p.ready[key] = append(p.ready[key], member)
		}
		ready, target = len(p.ready[key]), p.targetLocked(key, p.now())
	}
	if err != nil {
		p.retryAt[key] = p.now().Add(poolRetry)
		// Creates that no make in flight serves start VMs of their own.
		for len(p.waiters[key]) > p.filling[key] {
			ws := p.waiters[key]
			p.waiters[key] = ws[1:]
			ws[0].ch <- nil
		}
	}
	closed := p.closed
	p.pumpLocked()
	p.tidyLocked(key)
	p.mu.Unlock()
	switch {
	case keep && handed:
		member.sb.log.Info("warm pool: sandbox handed to a waiting create", slog.String(attrTemplate, key.name))
	case keep:
		// Tests and benchmarks wait on this line, its ready and target.
		member.sb.log.Info("warm pool: sandbox ready", slog.String(attrTemplate, key.name),
			slog.Int("ready", ready), slog.Int("target", target))
	case err != nil && !closed:
		level := slog.LevelWarn
		switch {
		case wrenn.ErrorCode(err) == wrenn.EHostFull:
			level = slog.LevelDebug // it waits for room, as it should
		case key.team != "":
			level = slog.LevelInfo // the template may have been deleted
		}
		p.log.Log(context.Background(), level, "warm pool: could not start a sandbox", slog.String(attrTemplate, key.name), slog.Any(attrError, err))
	case err == nil:
		p.host.endMember(member.sb)
	}
}

// take hands out a ready member of key restored from the template files
// tmpl holds now, or nil if there is none. Members of a template replaced
// since are ended, never handed out.
func (p *pool) take(key poolKey, tmpl layout.TemplateDir) *poolMember {
	for {
		p.mu.Lock()
		ready := p.ready[key]
		if len(ready) == 0 {
			p.mu.Unlock()
			return nil
		}
		member := ready[0]
		p.removeLocked(key, member)
		p.mu.Unlock()
		if sameTemplate(member, tmpl) {
			return member
		}
		p.endAsync(member)
	}
}

// claim counts a create of key and hands it a member restored from tmpl:
// one ready, or else the next the pool makes, waiting for it up to
// maxWait. It returns nil when the pool is off, cannot make one of key
// now, or ctx ends: the create then starts a VM of its own.
func (p *pool) claim(ctx context.Context, key poolKey, tmpl layout.TemplateDir, maxWait time.Duration) *poolMember {
	p.mu.Lock()
	p.noteLocked(key)
	p.mu.Unlock()
	timer := time.NewTimer(maxWait)
	defer timer.Stop()
	for {
		if member := p.take(key, tmpl); member != nil {
			p.kick()
			return member
		}
		p.mu.Lock()
		if p.closed || !p.on() || p.now().Before(p.retryAt[key]) {
			p.mu.Unlock()
			return nil
		}
		if len(p.ready[key]) > 0 { // made since take looked
			p.mu.Unlock()
			continue
		}
		w := &poolWaiter{ch: make(chan *poolMember, 1)}
		p.waiters[key] = append(p.waiters[key], w)
		p.pumpLocked()
		p.mu.Unlock()
		select {
		case member := <-w.ch:
			if member == nil {
				return nil
			}
			if sameTemplate(member, tmpl) {
				return member
			}
			p.endAsync(member)
		case <-ctx.Done():
			p.leave(key, w)
			return nil
		case <-timer.C:
			p.leave(key, w)
			return nil
		}
	}
}

// leave takes w out of key's waiters; a member sent to it meanwhile goes
// back to the pool.
func (p *pool) leave(key poolKey, w *poolWaiter) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i := slices.Index(p.waiters[key], w); i >= 0 {
		p.waiters[key] = slices.Delete(p.waiters[key], i, i+1)
		p.tidyLocked(key)
		return
	}
	if member := <-w.ch; member != nil {
		p.ready[key] = append(p.ready[key], member)
	}
}

// kick refills after a claim.
func (p *pool) kick() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pumpLocked()
}

// restore counts a create starting a VM of its own, which holds off
// refills until the returned func is called.
func (p *pool) restore() (done func()) {
	p.mu.Lock()
	p.restoring++
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.restoring--
		p.pumpLocked()
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

// yield ends a ready member to make room on a full host for a sandbox
// someone asked for, and reports whether there was one: the one ready
// longest of a template holding more than its target, or else the one
// ready longest. Its template's pool fills again once there is room.
func (p *pool) yield() bool {
	p.mu.Lock()
	now := p.now()
	var oldest *poolMember
	var oldestKey poolKey
	oldestSurplus := false
	for key, ready := range p.ready {
		surplus := len(ready) > p.targetLocked(key, now)
		for _, member := range ready {
			better := oldest == nil || (surplus && !oldestSurplus) ||
				(surplus == oldestSurplus && member.readyAt.Before(oldest.readyAt))
			if better {
				oldest, oldestKey, oldestSurplus = member, key, surplus
			}
		}
	}
	if oldest != nil {
		p.removeLocked(oldestKey, oldest)
	}
	p.mu.Unlock()
	if oldest == nil {
		return false
	}
	oldest.sb.log.Info("warm pool: ending a ready sandbox to make room", slog.String(attrTemplate, oldestKey.name))
	p.host.endMember(oldest.sb)
	return true
}

// drop ends the members of a team's snapshot template, which is being
// deleted or replaced; makes in flight are discarded when they finish.
func (p *pool) drop(key poolKey) {
	p.mu.Lock()
	members := slices.Clone(p.ready[key])
	for _, member := range members {
		p.removeLocked(key, member)
	}
	if p.filling[key] > 0 {
		p.gen[key]++ // the makes in flight end what they make
	}
	delete(p.demand, key)
	p.mu.Unlock()
	for _, member := range members {
		p.host.endMember(member.sb)
	}
}

// removeLocked takes member out of the ready members of key, reporting
// whether it was there. Call with p.mu held.
func (p *pool) removeLocked(key poolKey, member *poolMember) bool {
	ready := p.ready[key]
	i := slices.Index(ready, member)
	if i < 0 {
		return false
	}
	p.ready[key] = slices.Delete(ready, i, i+1)
	p.tidyLocked(key)
	return true
}

// tidyLocked forgets a template the pool holds nothing of, so that the
// pool's maps do not grow with every template ever used. Its generation
// matters only to makes in flight, its demand is forgotten by the tick.
// Call with p.mu held.
func (p *pool) tidyLocked(key poolKey) {
	if len(p.waiters[key]) == 0 {
		delete(p.waiters, key)
	}
	if p.filling[key] > 0 {
		return
	}
	delete(p.filling, key)
	delete(p.gen, key)
	if len(p.ready[key]) == 0 {
		delete(p.ready, key)
	}
	if !p.now().Before(p.retryAt[key]) {
		delete(p.retryAt, key)
	}
}

// endAsync ends a member in the background; close waits for it.
func (p *pool) endAsync(member *poolMember) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.host.endMember(member.sb)
	}()
}

// close ends the pool: makes in flight are cut off, creates waiting start
// VMs of their own and ready members are ended.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	var members []*poolMember
	for key, ready := range p.ready {
		for _, member := range slices.Clone(ready) {
			p.removeLocked(key, member)
			members = append(members, member)
		}
	}
	for key, ws := range p.waiters {
		for _, w := range ws {
			w.ch <- nil
		}
		delete(p.waiters, key)
	}
	p.mu.Unlock()
	p.cancel()
	for _, member := range members {
		p.host.endMember(member.sb)
	}
	p.wg.Wait()
}
