package agent

import (
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/wrennhq/wrenn/internal/disk"
	"github.com/wrennhq/wrenn/internal/layout"
)

// imageMinAge spares what another installation sharing the images
// directory (test runs do) may have just made and be using.
const imageMinAge = time.Hour

// collector removes images nothing on this host uses any more.
type collector struct {
	l     layout.Layout
	bases []Base
	log   *slog.Logger
}

// CollectImages removes images nothing on this host uses any more (see
// collector.collect). Call it after Adopt and Warm.
func (m *Manager) CollectImages() {
	collector{l: m.cfg.Layout, bases: m.cfg.Bases, log: m.log}.collect(m.warm.current())
}

// collect removes warm snapshots of bases as they were before a rebuild
// (any but current), then pinned root disks that no current base,
// sandbox, template or warm snapshot is a copy-on-write disk over. An
// images directory shared with other installations (Layout.ImagesRoot)
// is left alone: their sandboxes and templates are not visible from here.
func (c collector) collect(current []layout.TemplateDir) {
	if c.l.ImagesRoot != "" {
		return
	}
	keep := map[string]bool{}
	for _, d := range current {
		keep[d.Path()] = true
	}
	warm, err := filepath.Glob(filepath.Join(c.l.WarmSnapshots(), "*"))
	logErr(c.log, "list warm snapshots", err)
	for _, d := range warm {
		if !keep[d] && old(d) {
			c.log.Info("removing an outdated warm snapshot", slog.String("path", d))
			logErr(c.log, "remove outdated warm snapshot", os.RemoveAll(d))
		}
	}

	inUse := map[string]bool{}
	for _, b := range c.bases {
		inUse[b.RootFS] = true
	}
	var disks []string
	for _, pattern := range []string{
		filepath.Join(c.l.Sandboxes(), "*", "*.qcow2"),
		filepath.Join(c.l.Templates(), "*", "*", "*.qcow2"),
		filepath.Join(c.l.WarmSnapshots(), "*", "*.qcow2"),
	} {
		found, err := filepath.Glob(pattern)
		if err != nil {
			c.log.Error("list disks; keeping every pinned image", slog.Any(attrError, err))
			return
		}
		disks = append(disks, found...)
	}
	for _, d := range disks {
		b, err := disk.Backing(d)
		if err != nil {
			c.log.Warn("cannot tell what a disk is over; keeping every pinned image", slog.String("path", d), slog.Any(attrError, err))
			return
		}
		inUse[b] = true
	}
	pinned, err := filepath.Glob(filepath.Join(c.l.PinnedRootFSes(), "*"))
	logErr(c.log, "list pinned images", err)
	for _, p := range pinned {
		if !inUse[p] && old(p) {
			c.log.Info("removing a root disk nothing uses", slog.String("path", p))
			logErr(c.log, "remove unused root disk", os.Remove(p))
		}
	}
}

func old(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && time.Since(fi.ModTime()) > imageMinAge
}
