package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// lockFile is the name of the lock file under layout.Images(). One build
// at a time per data dir: builds share the cache, and a build removes the
// leftovers of earlier ones, which is only safe when no other is running.
const lockFile = ".build.lock"

// lock takes the data dir's build lock, waiting (and saying so) while
// another process holds it. The returned func releases it.
func (b *Builder) lock(ctx context.Context) (func(), error) {
	dir := b.layout.Images()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lock images: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock images: %w", err)
	}
	said := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock images: %w", err)
		}
		if !said {
			b.prog.note("waiting for another image build in %s", dir)
			said = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock images: %w", ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}
