package agent

import (
	"context"
	"log/slog"
	"os"
	"slices"
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
// them, the oldest giving way. Members are sandboxes in the pooled
// lifecycle whose run directories are named pool-<random> and whose records
// say Pool; they are not listed to the control plane until a create claims
// one (member.go). Close ends the members left; an agent that finds
// unclaimed members of a crashed predecessor ends them.

// DefaultPoolSize is how many ready sandboxes the pool keeps per template.
const DefaultPoolSize = 1

// poolRetry is how long the pool waits after a base's member failed to
// start.
const poolRetry = 5 * time.Second

// poolIdle is how long a snapshot template's member waits to be claimed.
const poolIdle = 10 * time.Minute

// maxTemplateMembers bounds the members kept of snapshot templates on a
// host, whichever teams they belong to, so that creates from many
// templates cannot fill the host with idle sandboxes.
const maxTemplateMembers = 8

// poolKey names a template the pool keeps members of: a base (team "") or
// a team's snapshot template.
type poolKey struct{ team, name string }

// memberHost makes and ends pool members: the Manager (member.go).
type memberHost interface {
	makeMember(ctx context.Context, key poolKey) (*poolMember, error)
	endMember(sb *sandbox)
}

// pool keeps members ready per template. Its one job is bookkeeping:
// which members are ready, which are being made, and when to make or end
// one; making and ending them is its host's.
type pool struct {
	size   int
	log    *slog.Logger
	host   memberHost
	ctx    context.Context // ends when the pool closes
	cancel context.CancelFunc
	wg     sync.WaitGroup // fills and ends in flight

	mu      sync.Mutex
	ready   map[poolKey][]*poolMember
	filling map[poolKey]int
	gen     map[poolKey]int // bumped when a template's members are dropped
	closed  bool
}

type poolMember struct {
	sb      *sandbox
	tmpl    layout.TemplateDir // what it was restored from
	readyAt time.Time
	expiry  *time.Timer // snapshot templates' members only
}

func newPool(size int, log *slog.Logger, host memberHost) *pool {
	ctx, cancel := context.WithCancel(context.Background())
	return &pool{size: size, log: log, host: host, ctx: ctx, cancel: cancel,
		ready: make(map[poolKey][]*poolMember), filling: make(map[poolKey]int), gen: make(map[poolKey]int)}
}

// fill starts making as many members of key as the pool lacks.
func (p *pool) fill(key poolKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	for len(p.ready[key])+p.filling[key] < p.size {
		if key.team != "" && !p.makeRoomLocked() {
			return
		}
		p.filling[key]++
		p.wg.Add(1)
		go p.make(key, p.gen[key])
	}
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

// make makes one member of key and adds it to the pool, unless the
// template's members were dropped (gen moved on) meanwhile.
func (p *pool) make(key poolKey, gen int) {
	defer p.wg.Done()
	member, err := p.host.makeMember(p.ctx, key)
	p.mu.Lock()
	p.filling[key]--
	keep := err == nil && !p.closed && p.gen[key] == gen
	if keep {
		member.readyAt = time.Now()
		p.ready[key] = append(p.ready[key], member)
		if key.team != "" {
			member.expiry = time.AfterFunc(poolIdle, func() { p.expire(key, member) })
		}
	}
	closed := p.closed
	p.tidyLocked(key)
	p.mu.Unlock()
	switch {
	case err != nil && !closed && key.team == "":
		level := slog.LevelWarn
		if wrenn.ErrorCode(err) == wrenn.EHostFull {
			level = slog.LevelDebug // it waits for room, as it should
		}
		p.log.Log(context.Background(), level, "warm pool: could not start a sandbox", slog.String(attrTemplate, key.name), slog.Any(attrError, err))
		select {
		case <-time.After(poolRetry):
			p.fill(key)
		case <-p.ctx.Done():
		}
	case err != nil && !closed:
		// A snapshot template may have been deleted: the next create
		// from it tries again.
		p.log.Info("warm pool: could not start a sandbox", slog.String(attrTemplate, key.name), slog.Any(attrError, err))
	case err == nil && !keep:
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

// yield ends the ready member that has waited longest, to make room on a
// full host for a sandbox someone asked for, and reports whether there
// was one. Its template's pool fills again once there is room.
func (p *pool) yield() bool {
	p.mu.Lock()
	var oldest *poolMember
	var oldestKey poolKey
	for key, ready := range p.ready {
		for _, member := range ready {
			if oldest == nil || member.readyAt.Before(oldest.readyAt) {
				oldest, oldestKey = member, key
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

// expire ends a snapshot template's member that nobody claimed.
func (p *pool) expire(key poolKey, member *poolMember) {
	p.mu.Lock()
	found := p.removeLocked(key, member)
	p.mu.Unlock()
	if found {
		member.sb.log.Info("warm pool: ending an unclaimed sandbox", slog.String(attrTemplate, key.name))
		p.host.endMember(member.sb)
	}
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
	p.mu.Unlock()
	for _, member := range members {
		p.host.endMember(member.sb)
	}
}

// removeLocked takes member out of the ready members of key and stops its
// expiry, reporting whether it was there. Call with p.mu held.
func (p *pool) removeLocked(key poolKey, member *poolMember) bool {
	ready := p.ready[key]
	i := slices.Index(ready, member)
	if i < 0 {
		return false
	}
	p.ready[key] = slices.Delete(ready, i, i+1)
	if member.expiry != nil {
		member.expiry.Stop()
	}
	p.tidyLocked(key)
	return true
}

// tidyLocked forgets a template the pool holds nothing of, so that the
// pool's maps do not grow with every template ever used. Its generation
// matters only to makes in flight. Call with p.mu held.
func (p *pool) tidyLocked(key poolKey) {
	if p.filling[key] > 0 {
		return
	}
	delete(p.filling, key)
	delete(p.gen, key)
	if len(p.ready[key]) == 0 {
		delete(p.ready, key)
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

// close ends the pool: makes in flight are cut off and ready members
// ended.
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
	p.mu.Unlock()
	p.cancel()
	for _, member := range members {
		p.host.endMember(member.sb)
	}
	p.wg.Wait()
}
