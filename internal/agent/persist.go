package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"
)

// persist flushes paths (files, and directories for the renames in them)
// to disk in the background. A pause or snapshot answers once its files
// are written, which puts them in the page cache; they reach the disk
// moments later, so that a paused sandbox or a template also outlives a
// host that loses power.
func (m *Manager) persist(log *slog.Logger, paths ...string) {
	m.later(log)(func(context.Context) error {
		var errs []error
		for _, p := range paths {
			// Removed meanwhile (destroyed, resumed) is fine.
			if err := syncPath(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	})
}

// later runs steps in the background, after the answer they need not hold
// up (cleanup.runThen, persist), logging what fails. Close waits for them.
func (m *Manager) later(log *slog.Logger) func(func(context.Context) error) {
	return func(f func(context.Context) error) {
		m.background.Add(1)
		go func() {
			defer m.background.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			logErr(log, "background step", f(ctx))
		}()
	}
}

func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("flush %s to disk: %w", path, err)
	}
	return nil
}
