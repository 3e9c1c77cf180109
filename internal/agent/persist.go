package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"
)

// background runs steps after the answer they need not hold up
// (cleanup.runThen, persist), logging what fails; wait waits for them.
type background struct {
	wg sync.WaitGroup
}

// later returns a function that runs a step in the background.
func (b *background) later(log *slog.Logger) func(func(context.Context) error) {
	return func(f func(context.Context) error) {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			logErr(log, "background step", f(ctx))
		}()
	}
}

func (b *background) wait() { b.wg.Wait() }

// persist flushes paths (files, and directories for the renames in them)
// to disk in the background. A pause or snapshot answers once its files
// are written, which puts them in the page cache; they reach the disk
// moments later, so that a paused sandbox or a template also outlives a
// host that loses power.
func (b *background) persist(log *slog.Logger, paths ...string) {
	b.later(log)(func(context.Context) error {
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
