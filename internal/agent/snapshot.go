package agent

import (
	"context"
	"crypto/rand"
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
	"github.com/wrennhq/wrenn/internal/disk"
	"github.com/wrennhq/wrenn/internal/layout"
)

// A snapshot template is what a paused sandbox has (memory, device state,
// a disk) moved into the template's directory, and a meta.json; sandboxes
// made from it hard-link its memory and disk and restore its device state,
// mapping the memory privately so they share the pages none of them has
// written.

// CreateSnapshot makes the running sandbox into the snapshot template t
// and ends the sandbox. If the snapshot itself fails, the sandbox runs on.
func (m *Manager) CreateSnapshot(ctx context.Context, sandboxID string, t *wrenn.Template) error {
	if err := checkTemplate(t.TeamID, t.Name); err != nil {
		return err
	}
	start := time.Now()
	final := m.cfg.Layout.Template(t.TeamID, t.Name)
	sb, err := m.lock(sandboxID)
	if err != nil {
		return err
	}
	rec, err := m.snapshotTo(ctx, sb, final, t.CreatedAt)
	sb.op.Unlock()
	if err != nil {
		return err
	}
	m.pool.drop(poolKey{team: t.TeamID, name: t.Name}) // members of a template it replaced
	vcpus, mem := rec.VCPUs, rec.MemoryMB
	t.VCPUs, t.MemoryMB, t.SizeBytes = &vcpus, &mem, allocated(m.log, final.Path())
	m.log.Info("snapshot template created", slog.String(attrSandboxID, sandboxID), slog.String(attrTemplate, t.Name),
		slog.Int64("size_bytes", t.SizeBytes), slog.Duration("took", time.Since(start)))
	return nil
}

// checkTemplate checks a team's template name and team, which name its
// directory.
func checkTemplate(teamID, name string) error {
	if err := wrenn.ValidateTemplateName(name); err != nil {
		return err
	}
	if !wrenn.ValidID(wrenn.PrefixTeam, teamID) {
		return wrenn.Errorf(wrenn.EInvalid, "invalid team id")
	}
	return nil
}

// snapshotTo makes the running sandbox sb into the template directory
// final, replacing what is there, and ends the sandbox. If the snapshot
// itself fails, the sandbox runs on. Call with sb.op held.
func (m *Manager) snapshotTo(ctx context.Context, sb *sandbox, final layout.TemplateDir, created time.Time) (rec record, err error) {
	mach, rec, err := sb.begin(lcSnapshotting)
	if err != nil {
		return rec, err
	}
	tmp, err := makeTempBeside(final.Path())
	if err != nil {
		sb.move(lcRunning)
		return rec, fmt.Errorf("snapshot: %w", err)
	}
	dst := layout.TemplateDir(tmp)
	defer func() {
		if err != nil {
			logErr(sb.log, "remove unfinished template", os.RemoveAll(tmp))
		}
	}()
	t0 := time.Now()
	if err := m.freeze(ctx, sb, mach, rec.OwnMemory, dst.VMState(), dst.Memory()); err != nil {
		return rec, fmt.Errorf("snapshot: %w", err)
	}
	t1 := time.Now()
	// The sandbox is consumed from here on, whatever happens.
	defer m.consume(sb)
	bg := context.WithoutCancel(ctx)
	if err := mach.release.runThen(bg, m.bg.later(sb.log)); err != nil {
		return rec, fmt.Errorf("snapshot: stop sandbox: %w", err)
	}
	sb.mu.Lock()
	sb.mach = nil
	sb.mu.Unlock()
	// A team's template in the shared store is made to stand alone there
	// (shared.go); a warm snapshot, in the images directory, is this
	// host's and left over its own base.
	store := m.store()
	if store != nil && !store.holds(final.Path()) {
		store = nil
	}
	if rec.OwnMemory {
		if err := moveFile(sb.dir.Memory(), dst.Memory()); err != nil {
			return rec, fmt.Errorf("snapshot: memory: %w", err)
		}
	}
	t2 := time.Now()
	base, ok := m.bases[rec.Base]
	if store != nil && rec.FromSnapshot {
		// It may have come from another host: its chain ends in the
		// store's copy of its base, not in this host's.
		base.RootFS, err = chainBottom(sb.dir.RootDisk())
		ok = err == nil
	}
	switch {
	case !rec.FromSnapshot:
		err = moveFile(sb.dir.RootDisk(), dst.Disk()) // already an overlay of the base alone
	case !ok:
		err = errors.Join(fmt.Errorf("base %q is gone from this host", rec.Base), err)
	default:
		err = disk.Flatten(bg, sb.dir.RootDisk(), base.RootFS, "raw", dst.Disk())
	}
	if err == nil && store != nil {
		// A template in the shared store is over the store's copy of its base.
		err = store.shareBacking(bg, dst.Disk())
	}
	if err != nil {
		return rec, fmt.Errorf("snapshot: disk: %w", err)
	}
	if store != nil {
		if rec.Kernel, err = store.shareFile(rec.Kernel, store.dir.Kernels(), ".vmlinux"); err != nil {
			return rec, fmt.Errorf("snapshot: kernel: %w", err)
		}
	}
	sb.log.Debug("snapshot steps", slog.Duration("snapshot", t1.Sub(t0)), slog.Duration("memory", t2.Sub(t1)),
		slog.Duration("disk", time.Since(t2)))
	meta := templateMeta{Base: rec.Base, Kernel: rec.Kernel, VCPUs: rec.VCPUs, MemoryMB: rec.MemoryMB, CreatedAt: created,
		DataPort: rec.DataPort}
	if err := writeJSONFile(dst.Meta(), meta); err != nil {
		return rec, fmt.Errorf("snapshot: %w", err)
	}
	if err := replaceDir(tmp, final.Path()); err != nil {
		return rec, fmt.Errorf("snapshot: %w", err)
	}
	m.bg.persist(sb.log, final.Memory(), final.Disk(), final.Meta(), final.Path(), filepath.Dir(final.Path()))
	return rec, nil
}

// makeTempBeside makes a hidden directory beside path, for a template
// that becomes path once whole; the agent's start removes old ones
// (adopt.go).
func makeTempBeside(path string) (string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	return os.MkdirTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
}

// consume ends a sandbox that became a template: its VM is gone and what
// is left of its run directory is removed. Call with sb.op held.
func (m *Manager) consume(sb *sandbox) {
	sb.move(lcGone)
	logErr(sb.log, "remove run dir", removeRunDir(sb.dir))
	m.forget(sb)
}

// replaceDir moves dir to path, replacing what is there. Sandboxes made
// from a replaced template keep their links to its files.
func replaceDir(dir, path string) error {
	err := os.Rename(dir, path)
	if err == nil || !(errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST)) {
		return err
	}
	old := path + ".old-" + rand.Text()
	if err := os.Rename(path, old); err != nil {
		return err
	}
	if err := os.Rename(dir, path); err != nil {
		return errors.Join(err, os.Rename(old, path))
	}
	return os.RemoveAll(old)
}

// allocated is the disk space the files under dir take (sparse files
// count what they hold, not their length).
func allocated(log *slog.Logger, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		}
		return nil
	})
	logErr(log, "measure template size", err)
	return n
}

// ListSnapshots reports the snapshot templates on this host: every
// finished template directory, with the time its meta.json gives.
func (m *Manager) ListSnapshots(context.Context) ([]wrenn.Template, error) {
	dirs, err := filepath.Glob(filepath.Join(m.cfg.Layout.Templates(), "*", "*"))
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	var out []wrenn.Template
	for _, d := range dirs {
		team, name := filepath.Base(filepath.Dir(d)), filepath.Base(d)
		if strings.HasPrefix(name, ".") || checkTemplate(team, name) != nil {
			continue // unfinished, being deleted, or nothing of ours
		}
		t := wrenn.Template{Name: name, TeamID: team, Type: wrenn.TemplateSnapshot}
		if meta, err := readTemplateMeta(layout.TemplateDir(d)); err == nil {
			t.CreatedAt = meta.CreatedAt
		}
		out = append(out, t)
	}
	return out, nil
}

// DeleteSnapshot removes a snapshot template's files. Sandboxes made from
// it keep their links to them. Deleting one that is not here is not an
// error.
func (m *Manager) DeleteSnapshot(ctx context.Context, teamID, name string) error {
	if err := checkTemplate(teamID, name); err != nil {
		return err
	}
	m.pool.drop(poolKey{team: teamID, name: name})
	path := m.cfg.Layout.Template(teamID, name).Path()
	// Rename first so a half-removed template is never taken for one.
	gone := filepath.Join(filepath.Dir(path), "."+name+".deleted-"+rand.Text())
	if err := os.Rename(path, gone); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("delete snapshot: %w", err)
	}
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("delete snapshot: %w", err)
	}
	m.log.Info("snapshot template deleted", slog.String("team_id", teamID), slog.String(attrTemplate, name))
	return nil
}

// moveFile renames src to dst, or, across file systems (a shared store),
// copies it and removes src.
func moveFile(src, dst string) error {
	err := os.Rename(src, dst)
	if err == nil || !errors.Is(err, syscall.EXDEV) {
		return err
	}
	if err := copyFile(src, dst); err != nil {
		return err
	}
	return os.Remove(src)
}
