package agent

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"time"
)

// persist flushes paths (files, and directories for the renames in them)
// to disk in the background. A pause or snapshot answers once its files
// are written, which puts them in the page cache; they reach the disk
// moments later, so that a paused sandbox or a template also outlives a
// host that loses power. Close waits for flushes in flight.
//
// later is the same for steps of a cleanup that need not hold up an
// answer (cleanup.runThen): they run once it is sent.
func (m *Manager) persist(log *slog.Logger, paths ...string) {
	m.background.Add(1)
	go func() {
		defer m.background.Done()
		for _, p := range paths {
			if err := syncPath(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				// Removed meanwhile (destroyed, resumed) is fine.
				log.Warn("flush to disk", slog.String("path", p), slog.Any(attrError, err))
			}
		}
	}()
}

func (m *Manager) later(log *slog.Logger) func(func(context.Context) error) {
	return func(f func(context.Context) error) {
		m.background.Add(1)
		go func() {
			defer m.background.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			logErr(log, "free resources in the background", f(ctx))
		}()
	}
}

func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
