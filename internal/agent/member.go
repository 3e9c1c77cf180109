package agent

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/envd"
	"github.com/wrennhq/wrenn/internal/layout"
)

// The Manager's side of the warm pool (pool.go): making a member, ending
// one, and a create claiming one.

var _ memberHost = (*Manager)(nil)

// poolWarmup is run once in each new member, to get the guest's command
// path (the guest agent, the shell, its builtins, fork and exec of a
// program) translated and paged in. It is not a plain command line, so
// envd runs it through the shell (envd runs a plain one's program itself,
// which would leave the shell cold for the member's first command).
const poolWarmup = "true; /bin/true"

// FillPool starts filling the warm pool of every base that has a warm
// snapshot. Call after Warm.
func (m *Manager) FillPool() {
	keys := make([]poolKey, 0, len(m.cfg.Bases))
	for _, b := range m.cfg.Bases {
		keys = append(keys, poolKey{name: b.Name})
	}
	m.pool.start(keys)
}

// memberOrigin is what a member of key starts from, and the record it
// starts with.
func (m *Manager) memberOrigin(key poolKey) (origin, record, error) {
	rec := record{Template: key.name, TeamID: key.team, Driver: m.cfg.Driver.Name(), FromSnapshot: true, Pool: true}
	if key.team == "" {
		b, ok := m.bases[key.name]
		tmpl := m.warm.snapshot(key.name, WarmVCPUs, WarmMemoryMB)
		if !ok || tmpl == "" {
			return origin{}, rec, errors.New("no warm snapshot")
		}
		rec.Base, rec.Kernel, rec.VCPUs, rec.MemoryMB = b.Name, b.Kernel, WarmVCPUs, WarmMemoryMB
		return origin{tmpl: tmpl, base: b}, rec, nil
	}
	tmpl := m.cfg.Layout.Template(key.team, key.name)
	meta, err := readTemplateMeta(tmpl)
	if err != nil {
		return origin{}, rec, err
	}
	b, ok := m.bases[meta.Base]
	if !ok {
		return origin{}, rec, fmt.Errorf("base %q is gone", meta.Base)
	}
	b.Kernel = meta.Kernel
	rec.Base, rec.Kernel, rec.VCPUs, rec.MemoryMB = b.Name, b.Kernel, meta.VCPUs, meta.MemoryMB
	return origin{tmpl: tmpl, base: b}, rec, nil
}

// makeMember restores key's template into a new pool member and runs the
// warm-up command in it.
func (m *Manager) makeMember(ctx context.Context, key poolKey) (*poolMember, error) {
	from, rec, err := m.memberOrigin(key)
	if err != nil {
		return nil, err
	}
	id := "pool-" + strings.ToLower(rand.Text()[:16])
	rec.ID, rec.CreatedAt = id, m.cfg.Now().UTC()
	// A policy that allows nothing, as a slot has before its first: it
	// starts the slot's resolver now rather than in the claim, which then
	// only swaps the policy.
	rec.Network = &wrenn.Network{}
	sb := newSandbox(id, m.cfg.Layout.Sandbox(id), m.log, lcStarting)
	sb.op.Lock()
	defer sb.op.Unlock()
	n, err := from.need(rec.VCPUs, rec.MemoryMB)
	if err != nil {
		return nil, err
	}
	if err := m.addMember(sb, n); err != nil {
		return nil, err
	}
	start := time.Now()
	mach, err := m.start(ctx, sb.dir, &rec, from)
	if err != nil {
		m.dropMember(sb)
		return nil, err
	}
	res, err := mach.envd.Exec(ctx, wrenn.ExecRequest{Cmd: poolWarmup, Timeout: 30 * time.Second})
	if err == nil && res.ExitCode != 0 {
		err = errors.New("warm-up command failed: " + string(res.Stderr))
	}
	if err == nil && mach.bulk != nil {
		// Downloads fall back to the session, so a member whose channel
		// does not answer still serves.
		if werr := warmBulk(ctx, mach.bulk); werr != nil {
			sb.log.Warn("warm pool: warm-up download", slog.Any(attrError, werr))
		}
	}
	if err != nil {
		bg := context.WithoutCancel(ctx)
		err = errors.Join(err, mach.release.run(bg), removeRunDir(sb.dir))
		m.dropMember(sb)
		return nil, err
	}
	sb.run(mach, rec, lcPooled)
	go m.watch(sb, mach)
	sb.log.Debug("warm pool: sandbox made", slog.String(attrTemplate, key.name), slog.Duration("took", time.Since(start)))
	return &poolMember{sb: sb, tmpl: from.tmpl}, nil
}

// warmBulk downloads a small file over a new member's bulk channel, which
// every download takes, so that its first one is not translated afresh.
func warmBulk(ctx context.Context, b *envd.Bulk) error {
	rc, err := b.ReadFile(ctx, "/etc/hostname")
	if err == nil {
		_, err = io.Copy(io.Discard, rc)
		err = errors.Join(err, rc.Close())
	}
	if err != nil {
		return fmt.Errorf("warm-up download: %w", err)
	}
	return nil
}

// endMember stops a pool member and removes its run directory.
func (m *Manager) endMember(sb *sandbox) {
	sb.op.Lock()
	defer sb.op.Unlock()
	logErr(sb.log, "end pool sandbox", m.destroy(context.Background(), sb))
	if sb.lifecycle() == lcGone {
		m.dropMember(sb)
	}
}

// claim gives sb, starting as rec describes, the VM of first (if not
// nil) or of another ready member of key restored from tmpl, and reports
// whether it could. The member's run directory and machine move to sb,
// and the guest takes sb's identity. A member that died or will not take
// its identity is ended, and the next one tried. Call with sb.op held.
func (m *Manager) claim(ctx context.Context, sb *sandbox, rec record, key poolKey, tmpl layout.TemplateDir, first *poolMember) (wrenn.SandboxNet, bool) {
	for {
		member := first
		first = nil
		if member == nil {
			member = m.pool.take(key, tmpl)
		}
		if member == nil {
			return wrenn.SandboxNet{}, false
		}
		if net, ok := m.claimMember(ctx, sb, rec, member.sb); ok {
			return net, true
		}
	}
}

func (m *Manager) claimMember(ctx context.Context, sb *sandbox, rec record, p *sandbox) (wrenn.SandboxNet, bool) {
	p.op.Lock()
	mach, prec, err := p.begin(lcGone)
	if err == nil {
		p.mu.Lock()
		p.mach = nil // its watcher stands down: sb watches the VM now
		p.mu.Unlock()
	}
	p.op.Unlock()
	if err != nil {
		m.endMember(p) // its VM died while it waited
		return wrenn.SandboxNet{}, false
	}
	m.dropMember(p) // sb holds its VM now, or it ends below
	rec.Kernel, rec.PID, rec.Slot = prec.Kernel, prec.PID, prec.Slot
	rec.FromSnapshot, rec.OwnMemory = true, false
	rec.DataPort = prec.DataPort // its VM's devices, for its pause and templates
	// The three steps of a claim touch different things (the slot's
	// namespace, the guest, the run directory), so they run at once: a
	// claim takes as long as its slowest, not their sum.
	start := time.Now()
	var egress, record time.Duration
	var egressErr, recordErr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		egressErr = m.cfg.Network.SetEgress(ctx, mach.slot, *rec.Network)
		egress = time.Since(start)
	}()
	go func() {
		defer wg.Done()
		recordErr = writeRecord(p.dir, rec)
		record = time.Since(start)
	}()
	err = m.initGuest(ctx, mach.envd, rec.ID)
	initTook := time.Since(start)
	wg.Wait()
	err = errors.Join(egressErr, err, recordErr)
	sb.log.Debug("warm pool: claimed", slog.Duration("egress", egress), slog.Duration("init", initTook),
		slog.Duration("record", record), slog.Duration("took", time.Since(start)))
	if err != nil {
		sb.log.Warn("warm pool: sandbox could not be claimed", slog.String("pool_dir", p.dir.Path()), slog.Any(attrError, err))
		logErr(sb.log, "end unclaimable pool sandbox", errors.Join(mach.release.run(context.WithoutCancel(ctx)), removeRunDir(p.dir)))
		return wrenn.SandboxNet{}, false
	}
	sb.mu.Lock()
	sb.dir = p.dir
	sb.mu.Unlock()
	sb.run(mach, rec, lcRunning)
	go m.watch(sb, mach)
	return mach.net, true
}
