package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/layout"
	"github.com/wrennhq/wrenn/internal/vmm"
)

// StrayFinder is a VMM driver that can find the VMM processes started in
// a run directory, whatever its record says: a create cut short leaves one
// that no record names.
type StrayFinder interface {
	Strays(runDir string) []int
}

// Sweeper is a VMM driver that keeps host state beside its VMs (control
// groups) and can remove what VMs no longer running left of it in run
// directories under runsDir.
type Sweeper interface {
	Sweep(runsDir string) error
}

// Adopt takes over the sandboxes a previous agent process left behind (see
// adopter) and starts watching the running ones.
func (m *Manager) Adopt(ctx context.Context) error {
	a := adopter{l: m.cfg.Layout, driver: m.cfg.Driver, net: m.cfg.Network, log: m.log, bootTimeout: m.cfg.BootTimeout}
	sbs, err := a.adopt(ctx)
	for _, sb := range sbs {
		m.mu.Lock()
		m.sandboxes[sb.id] = sb
		m.mu.Unlock()
		if sb.mach != nil {
			go m.watch(sb, sb.mach)
		}
	}
	return errors.Join(err, m.openStore())
}

// adopter takes over what a previous agent process left: a sandbox whose
// VM still runs is adopted with its network slot and a new guest agent
// session, a paused one as it is; a run directory that cannot be adopted
// is cleaned up, and so are the agent's own sandboxes (pool members, a
// base being warmed) and unfinished templates. Then network slots that no
// sandbox holds are swept away.
type adopter struct {
	l           layout.Layout
	driver      vmm.Driver
	net         Network
	log         *slog.Logger
	bootTimeout time.Duration
}

func (a adopter) adopt(ctx context.Context) ([]*sandbox, error) {
	a.removeUnfinishedTemplates()
	entries, err := os.ReadDir(a.l.Sandboxes())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, a.net.Sweep(ctx, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("adopt: %w", err)
	}
	var out []*sandbox
	var inUse []int
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if strings.HasPrefix(e.Name(), ".") {
			// A paused sandbox half copied in from the shared store
			// (shared.go): the store still has it.
			logErr(a.log, "remove unfinished run dir", os.RemoveAll(filepath.Join(a.l.Sandboxes(), e.Name())))
			continue
		}
		dir := a.l.Sandbox(e.Name())
		log := a.log.With(slog.String(attrSandboxID, e.Name()))
		rec, err := readRecord(dir)
		if err != nil {
			// A create the previous agent never finished: its VM, if it got
			// that far, has no record to adopt it by. Kill it and remove
			// the directory; its network slot goes with the sweep.
			log.Warn("removing a sandbox that never finished starting", slog.Any(attrError, err))
			a.killStrays(log, dir)
			logErr(log, "remove run dir", removeRunDir(dir))
			continue
		}
		if rec.Pool {
			// Unclaimed warm pool members are not worth keeping: the pool
			// starts afresh. Nor is a base warmed halfway.
			log.Info("ending a sandbox of an earlier agent's own")
			a.cleanup(ctx, rec, dir, log)
			continue
		}
		sb, err := a.adoptOne(ctx, rec, dir)
		if err != nil {
			log.Warn("could not adopt sandbox; cleaning up", slog.Any(attrError, err))
			a.cleanup(ctx, rec, dir, log)
			continue
		}
		out = append(out, sb)
		if sb.mach != nil {
			inUse = append(inUse, rec.Slot)
		}
	}
	if sw, ok := a.driver.(Sweeper); ok {
		logErr(a.log, "sweep what ended VMs left", sw.Sweep(a.l.Sandboxes()))
	}
	return out, a.net.Sweep(ctx, inUse)
}

// removeUnfinishedTemplates removes what snapshots and deletions that an
// earlier agent did not finish left: hidden directories beside templates.
// Teams' templates are this agent's alone; beside warm snapshots, in an
// images directory other installations may share, only those older than a
// few minutes go, so that another process's snapshot in progress is spared.
func (a adopter) removeUnfinishedTemplates() {
	for _, p := range []struct {
		pattern string
		minAge  time.Duration
	}{
		{filepath.Join(a.l.Templates(), "*", ".*"), templateMinAge(a.l)},
		{filepath.Join(a.l.WarmSnapshots(), ".*"), 10 * time.Minute},
	} {
		left, err := filepath.Glob(p.pattern)
		logErr(a.log, "list unfinished templates", err)
		for _, path := range left {
			if fi, err := os.Stat(path); err != nil || time.Since(fi.ModTime()) < p.minAge {
				continue
			}
			a.log.Warn("removing an unfinished template", slog.String("path", path))
			logErr(a.log, "remove unfinished template", os.RemoveAll(path))
		}
	}
}

// adoptOne adopts the sandbox rec whose run directory is dir: named by its
// ID, or, for one a create took from the warm pool, by its pool name.
func (a adopter) adoptOne(ctx context.Context, rec record, dir layout.SandboxDir) (*sandbox, error) {
	if !wrenn.ValidID(wrenn.PrefixSandbox, rec.ID) {
		return nil, fmt.Errorf("the record names no valid sandbox id")
	}
	if rec.Driver != a.driver.Name() {
		return nil, fmt.Errorf("recorded by driver %q, this agent runs %q", rec.Driver, a.driver.Name())
	}
	sb := newSandbox(rec.ID, dir, a.log, lcPaused)
	if rec.Resuming {
		// A resume was cut short. If its VM started, the guest may have
		// run on and changed its memory and disk, so the snapshot cannot
		// be trusted; if none did, the snapshot is as the pause left it.
		if a.killStrays(sb.log, dir) {
			return nil, errors.New("a resume was interrupted after its VM started; its snapshot is no longer consistent")
		}
		rec.Resuming = false
		if err := writeRecord(dir, rec); err != nil {
			return nil, err
		}
		sb.log.Info("a resume was interrupted before its VM started; the sandbox stays paused")
	}
	sb.rec = rec
	if rec.Paused {
		// A VM may linger if the agent died between writing the record
		// and stopping it: the record says paused, so it must not run.
		a.killStrays(sb.log, dir)
		sb.log.Info("paused sandbox adopted")
		return sb, nil
	}
	mach, err := a.adoptMachine(ctx, rec, dir)
	if err != nil {
		return nil, err
	}
	sb.mach, sb.lc = mach, lcRunning
	a.removeUnfinishedPause(sb.log, rec, dir)
	sb.log.Info("sandbox adopted", slog.Int(attrPID, mach.vm.PID()))
	return sb, nil
}

// adoptMachine takes over the network slot, VM and guest agent of a
// running sandbox; on failure it lets go of what it took.
func (a adopter) adoptMachine(ctx context.Context, rec record, dir layout.SandboxDir) (_ *machine, err error) {
	mach := &machine{}
	defer func() {
		if err != nil {
			err = errors.Join(err, mach.release.run(ctx))
		}
	}()
	slot, err := a.net.Adopt(ctx, rec.Slot)
	if err != nil {
		return nil, fmt.Errorf("adopt network slot %d: %w", rec.Slot, err)
	}
	mach.net = wrenn.SandboxNet{GuestIP: slot.GuestIP.String(), HostIP: slot.HostIP.String()}
	mach.release.addBackground(func(ctx context.Context) error { return a.net.Release(ctx, slot) })
	mach.slot = slot
	if rec.Network != nil {
		// The rules are still in the slot; its resolver ended with the
		// agent that started it.
		if err := a.net.SetEgress(ctx, slot, *rec.Network); err != nil {
			return nil, fmt.Errorf("egress policy: %w", err)
		}
	}
	vm, err := a.driver.Adopt(ctx, vmConfig(rec, dir), rec.PID)
	if err != nil {
		return nil, err
	}
	mach.vm = vm
	mach.release.add(vm.Stop)
	client, err := connectGuest(ctx, dir, vm, a.bootTimeout, a.log)
	if err != nil {
		return nil, err
	}
	mach.envd = client
	mach.release.add(mach.closeGuest)
	newBulk(ctx, rec, dir, mach, a.log)
	return mach, nil
}

// cleanup frees what a sandbox that is not adopted still holds: its VM
// process if one is alive, and its run directory. Its slot is left to the
// sweep.
func (a adopter) cleanup(ctx context.Context, rec record, dir layout.SandboxDir, log *slog.Logger) {
	if vm, err := a.driver.Adopt(ctx, vmConfig(rec, dir), rec.PID); err == nil {
		logErr(log, "stop orphaned vm", vm.Stop(ctx))
	}
	a.killStrays(log, dir) // one the record does not name
	logErr(log, "remove run dir", removeRunDir(dir))
}

// killStrays kills the VMM processes the driver finds started in dir and
// reports whether there were any.
func (a adopter) killStrays(log *slog.Logger, dir layout.SandboxDir) bool {
	f, ok := a.driver.(StrayFinder)
	if !ok {
		return false
	}
	pids := f.Strays(dir.Path())
	for _, pid := range pids {
		log.Warn("killing a stray vm process", slog.Int(attrPID, pid))
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			log.Error("kill stray", slog.Int(attrPID, pid), slog.Any(attrError, err))
		}
	}
	return len(pids) > 0
}

// removeUnfinishedPause removes what a pause cut short before it recorded
// the sandbox paused left in the run directory of a sandbox that runs on:
// the device state, and a memory file that is not the running guest's.
func (a adopter) removeUnfinishedPause(log *slog.Logger, rec record, dir layout.SandboxDir) {
	left := []string{dir.VMState()}
	if !rec.OwnMemory {
		left = append(left, dir.Memory())
	}
	for _, p := range left {
		if err := os.Remove(p); err == nil {
			log.Info("removed what an interrupted pause left", slog.String("path", p))
		} else if !errors.Is(err, fs.ErrNotExist) {
			log.Warn("remove what an interrupted pause left", slog.String("path", p), slog.Any(attrError, err))
		}
	}
}

// templateMinAge is how old what an unfinished template left must be to
// be removed: in a shared store other hosts' agents make templates too.
func templateMinAge(l layout.Layout) time.Duration {
	if l.Shared != "" {
		return 10 * time.Minute
	}
	return 0
}
