package agent

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/wrennhq/wrenn"
)

// diskWatchHost is what the disk watch acts on: the Manager.
type diskWatchHost interface {
	all() []*sandbox
	fail(sb *sandbox)
}

// diskWatch is the backstop behind disk admission. Every interval it
// measures the host's free disk (one statfs); when that is below the
// reserve it ends, as failed, the running sandbox whose files grew most
// since the watch first saw its VM, one a round, until the free disk is
// above the reserve again. The control plane then records it as error.
//
// With WRENN_DISK_OVERCOMMIT 1 admission already keeps the reserve and
// this never acts unless something other than sandboxes fills the disk;
// with overcommit above 1 it is what keeps the reserve when sandboxes
// really do fill what they were promised.
type diskWatch struct {
	log       *slog.Logger
	host      diskWatchHost
	free      func() (int64, error) // MiB
	reserveMB int64
	seen      map[*machine]int64 // a VM's files when first seen, bytes
	cancel    context.CancelFunc
	done      chan struct{}
}

func newDiskWatch(c AdmissionConfig, a *admitter, host diskWatchHost, log *slog.Logger) *diskWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &diskWatch{log: log, host: host, reserveMB: int64(c.DiskReserveMB), seen: make(map[*machine]int64),
		free: func() (int64, error) { return a.host.FreeMB(a.root) }, cancel: cancel, done: make(chan struct{})}
	if c.DiskReserveMB <= 0 {
		close(w.done) // no reserve to keep
		return w
	}
	go w.run(ctx, cmp.Or(c.DiskWatchInterval, DefaultDiskWatchInterval))
	return w
}

func (w *diskWatch) close() {
	w.cancel()
	<-w.done
}

func (w *diskWatch) run(ctx context.Context, interval time.Duration) {
	defer close(w.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.round()
	}
}

// grown is a running sandbox and how much its files grew.
type grown struct {
	sb        *sandbox
	mach      *machine
	grew, now int64 // bytes
}

// round measures the free disk and, if it is below the reserve, ends the
// sandbox that grew most. Only the watch's goroutine (or a test) calls it.
func (w *diskWatch) round() {
	free, err := w.free()
	if err != nil {
		w.log.Warn("disk watch: measure free disk", slog.Any(attrError, err))
		return
	}
	var running []grown
	live := make(map[*machine]bool)
	for _, sb := range w.host.all() {
		sb.mu.Lock()
		mach, lc, dir := sb.mach, sb.lc, sb.dir
		sb.mu.Unlock()
		if mach == nil || !slices.Contains(serving, lc) {
			continue
		}
		now := ownAllocated(dir)
		first, ok := w.seen[mach]
		if !ok {
			w.seen[mach], first = now, now
		}
		live[mach] = true
		running = append(running, grown{sb: sb, mach: mach, grew: now - first, now: now})
	}
	for mach := range w.seen {
		if !live[mach] {
			delete(w.seen, mach)
		}
	}
	if free >= w.reserveMB {
		return
	}
	slices.SortFunc(running, func(a, b grown) int {
		return cmp.Or(cmp.Compare(b.grew, a.grew), cmp.Compare(b.now, a.now))
	})
	for _, g := range running {
		if w.end(g, free) {
			return
		}
	}
	w.log.Error("disk watch: the host's free disk is below its reserve and no running sandbox could be ended",
		slog.Int64("free_mb", free), slog.Int64("reserve_mb", w.reserveMB))
}

// end ends g's sandbox as failed if it still runs the VM g saw and no
// lifecycle operation holds it, and reports whether it did.
func (w *diskWatch) end(g grown, free int64) bool {
	if !g.sb.op.TryLock() {
		return false // a pause or destroy is under way: it frees the VM itself
	}
	defer g.sb.op.Unlock()
	g.sb.mu.Lock()
	current := g.sb.mach == g.mach && slices.Contains(serving, g.sb.lc)
	g.sb.mu.Unlock()
	if !current {
		return false
	}
	g.sb.log.Error("the host's free disk is below its reserve; ending the sandbox whose files grew most",
		slog.Int64("free_mb", free), slog.Int64("reserve_mb", w.reserveMB),
		slog.Int64("grew_mb", g.grew/wrenn.MiB), slog.Int64("files_mb", g.now/wrenn.MiB))
	w.host.fail(g.sb)
	delete(w.seen, g.mach)
	return true
}
