package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wrennhq/wrenn/internal/layout"
)

// Adopt takes over the sandboxes a previous agent process left behind: a
// VM still running is adopted with its network slot and a new guest agent
// session; a run directory whose VM has gone is cleaned up. Then network
// slots that no sandbox holds are swept away.
func (m *Manager) Adopt(ctx context.Context) error {
	m.removeUnfinishedTemplates()
	entries, err := os.ReadDir(m.cfg.Layout.Sandboxes())
	if errors.Is(err, fs.ErrNotExist) {
		return m.cfg.Network.Sweep(ctx, nil)
	}
	if err != nil {
		return fmt.Errorf("adopt: %w", err)
	}
	var inUse []int
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := m.cfg.Layout.Sandbox(e.Name())
		log := m.log.With(slog.String(attrSandboxID, e.Name()))
		st, err := readState(dir.State())
		if err != nil {
			// A create the previous agent never finished: its VM, if it got
			// that far, has no record to adopt it by. Kill it and remove
			// the directory; its network slot goes with the sweep.
			log.Warn("removing a sandbox that never finished starting", slog.Any(attrError, err))
			killStrays(log, dir.Path())
			logErr(log, "remove run dir", os.RemoveAll(dir.Path()))
			continue
		}
		if st.Pool {
			// Unclaimed warm pool members are not worth keeping: the pool
			// starts afresh.
			log.Info("ending a warm pool sandbox of an earlier agent")
			m.cleanupOrphan(ctx, st, dir, log)
			continue
		}
		if err := m.adoptOne(ctx, st, dir, log); err != nil {
			log.Warn("could not adopt sandbox; cleaning up", slog.Any(attrError, err))
			m.cleanupOrphan(ctx, st, dir, log)
			continue
		}
		if !st.Paused {
			inUse = append(inUse, st.Slot)
		}
	}
	return m.cfg.Network.Sweep(ctx, inUse)
}

// removeUnfinishedTemplates removes what snapshots and deletions that an
// earlier agent did not finish left: hidden directories beside templates
// (warm snapshots included) older than a few minutes, so that another
// process's snapshot in progress, in a shared images directory, is spared.
func (m *Manager) removeUnfinishedTemplates() {
	for _, pattern := range []string{
		filepath.Join(m.cfg.Layout.Templates(), "*", ".*"),
		filepath.Join(m.cfg.Layout.WarmSnapshots(), ".*"),
	} {
		left, _ := filepath.Glob(pattern)
		for _, p := range left {
			if fi, err := os.Stat(p); err != nil || time.Since(fi.ModTime()) < 10*time.Minute {
				continue
			}
			m.log.Warn("removing an unfinished template", slog.String("path", p))
			logErr(m.log, "remove unfinished template", os.RemoveAll(p))
		}
	}
}

func readState(path string) (state, error) {
	var st state
	b, err := os.ReadFile(path)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("decode %s: %w", path, err)
	}
	return st, nil
}

// adoptOne adopts the sandbox st whose run directory is dir: named by its
// ID, or, for one a create took from the warm pool, by its pool name.
func (m *Manager) adoptOne(ctx context.Context, st state, dir layout.SandboxDir, log *slog.Logger) error {
	if st.Driver != m.cfg.Driver.Name() {
		return fmt.Errorf("recorded by driver %q, this agent runs %q", st.Driver, m.cfg.Driver.Name())
	}
	sb := &sandbox{id: st.ID, dir: dir, log: log, st: st}
	if st.Resuming {
		// A resume was cut short: the guest may have run on and changed
		// its memory and disk, so the snapshot cannot be trusted.
		return errors.New("a resume was interrupted; its snapshot is no longer consistent")
	}
	if st.Paused {
		// A VM may linger if the agent died between writing the record
		// and stopping it: the record says paused, so it must not run.
		killStrays(log, dir.Path())
		sb.paused = true
		m.mu.Lock()
		m.sandboxes[st.ID] = sb
		m.mu.Unlock()
		log.Info("paused sandbox adopted")
		return nil
	}
	slot, err := m.cfg.Network.Adopt(ctx, st.Slot)
	if err != nil {
		return fmt.Errorf("adopt network slot %d: %w", st.Slot, err)
	}
	sb.release.addBackground(func(ctx context.Context) error { return m.cfg.Network.Release(ctx, slot) })
	vm, err := m.cfg.Driver.Adopt(ctx, m.vmConfig(st, dir), st.PID)
	if err != nil {
		_ = sb.release.run(ctx)
		return err
	}
	sb.release.add(vm.Stop)
	client, err := m.connectGuest(ctx, dir, vm)
	if err != nil {
		_ = sb.release.run(ctx)
		return err
	}
	sb.release.add(func(context.Context) error { return client.Close() })
	sb.vm, sb.envd = vm, client
	m.mu.Lock()
	m.sandboxes[st.ID] = sb
	m.mu.Unlock()
	go m.watch(sb, vm)
	log.Info("sandbox adopted", slog.Int(attrPID, vm.PID()))
	return nil
}

// cleanupOrphan frees what a sandbox that could not be adopted still
// holds: its VM process if one is alive, and its run directory. Its slot
// is left to the sweep.
func (m *Manager) cleanupOrphan(ctx context.Context, st state, dir layout.SandboxDir, log *slog.Logger) {
	if vm, err := m.cfg.Driver.Adopt(ctx, m.vmConfig(st, dir), st.PID); err == nil {
		logErr(log, "stop orphaned vm", vm.Stop(ctx))
	}
	logErr(log, "remove run dir", os.RemoveAll(dir.Path()))
}

// killStrays kills every process whose command line names dir: a VMM a
// crashed create left without a record.
func killStrays(log *slog.Logger, dir string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), dir+"/") {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil || pid == os.Getpid() {
			continue
		}
		log.Warn("killing a stray vm process", slog.Int(attrPID, pid))
		logErr(log, "kill stray", syscall.Kill(pid, syscall.SIGKILL))
	}
}
