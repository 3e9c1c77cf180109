package agent

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
)

// persist flushes paths (files, and directories for the renames in them)
// to disk in the background. A pause or snapshot answers once its files
// are written, which puts them in the page cache; they reach the disk
// moments later, so that a paused sandbox or a template also outlives a
// host that loses power. Close waits for flushes in flight.
func (m *Manager) persist(log *slog.Logger, paths ...string) {
	m.flushes.Add(1)
	go func() {
		defer m.flushes.Done()
		for _, p := range paths {
			if err := syncPath(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				// Removed meanwhile (destroyed, resumed) is fine.
				log.Warn("flush to disk", slog.String("path", p), slog.Any(attrError, err))
			}
		}
	}()
}

func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
