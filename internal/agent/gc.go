package agent

import (
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/wrennhq/wrenn/internal/disk"
)

// imageMinAge spares what another installation sharing the images
// directory (test runs do) may have just made and be using.
const imageMinAge = time.Hour

// CollectImages removes images nothing on this host uses any more: warm
// snapshots of bases as they were before a rebuild, then pinned root disks
// that no current base, sandbox, template or warm snapshot is a copy-on-
// write disk over. Call it after Adopt and Warm. An images directory
// shared with other installations (Layout.ImagesRoot) is left alone: their
// sandboxes and templates are not visible from here.
func (m *Manager) CollectImages() {
	if m.cfg.Layout.ImagesRoot != "" {
		return
	}
	current := map[string]bool{}
	m.mu.Lock()
	for _, d := range m.warmDirs {
		current[d.Path()] = true
	}
	m.mu.Unlock()
	warm, _ := filepath.Glob(filepath.Join(m.cfg.Layout.WarmSnapshots(), "*"))
	for _, d := range warm {
		if !current[d] && old(d) {
			m.log.Info("removing an outdated warm snapshot", slog.String("path", d))
			logErr(m.log, "remove outdated warm snapshot", os.RemoveAll(d))
		}
	}

	inUse := map[string]bool{}
	for _, b := range m.cfg.Bases {
		inUse[b.RootFS] = true
	}
	var disks []string
	for _, pattern := range []string{
		filepath.Join(m.cfg.Layout.Sandboxes(), "*", "*.qcow2"),
		filepath.Join(m.cfg.Layout.Templates(), "*", "*", "*.qcow2"),
		filepath.Join(m.cfg.Layout.WarmSnapshots(), "*", "*.qcow2"),
	} {
		found, _ := filepath.Glob(pattern)
		disks = append(disks, found...)
	}
	for _, d := range disks {
		b, err := disk.Backing(d)
		if err != nil {
			m.log.Warn("cannot tell what a disk is over; keeping every pinned image", slog.String("path", d), slog.Any(attrError, err))
			return
		}
		inUse[b] = true
	}
	pinned, _ := filepath.Glob(filepath.Join(m.cfg.Layout.PinnedRootFSes(), "*"))
	for _, p := range pinned {
		if !inUse[p] && old(p) {
			m.log.Info("removing a root disk nothing uses", slog.String("path", p))
			logErr(m.log, "remove unused root disk", os.Remove(p))
		}
	}
}

func old(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && time.Since(fi.ModTime()) > imageMinAge
}
