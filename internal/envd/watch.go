package envd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/wrennhq/wrenn"
)

// Watch bounds. A recursive watch holds an inotify watch per directory,
// at most maxWatchDirs of them (the kernel bounds them all together by
// fs.inotify.max_user_watches). Events are sent in batches: what arrives within
// watchBatchWait of the first, up to watchBatchMax, repeats of one change
// to one path in a row folded into one.
const (
	maxWatchDirs   = 8192
	watchBatchWait = 20 * time.Millisecond
	watchBatchMax  = 256
)

// fsEvent is one change, as the wire carries it.
type fsEvent struct {
	Op   string `json:"op"`
	Path string `json:"path"`
}

// uploadTemp matches the temporary files writeFile renames into place:
// their comings and goings are not the client's business; the file's
// arrival is reported as the create its final name sees.
var uploadTemp = regexp.MustCompile(`^\..+\.envd-[0-9]+$`)

// watchDir serves a watch: the directory path, and everything below it if
// recursive, directories made later included. It answers ok once the
// watch is in place, then sends batches of events until the host closes
// the stream or the watch fails (the kernel's queue overflowed: ETooLarge).
func (s *server) watchDir(ctx context.Context, p *peer, path string, recursive bool) {
	w, err := startWatch(path, recursive)
	if err != nil {
		s.log.DebugContext(ctx, "watch", slog.String(attrPath, path), slog.Any(attrError, err))
		s.answer(ctx, p, err)
		return
	}
	defer w.fsw.Close()
	gone := make(chan struct{})
	p.watch(func(message) {}, func() { close(gone) })
	if err := p.reply(nil); err != nil {
		return
	}
	err = w.run(gone, func(evs []fsEvent) error { return p.send(message{Type: msgEvents, Events: evs}) })
	if err != nil && !errors.Is(err, errWatchGone) {
		s.log.DebugContext(ctx, "watch ended", slog.String(attrPath, path), slog.Any(attrError, err))
		s.answer(ctx, p, err)
	}
}

var errWatchGone = errors.New("the host ended the watch")

type dirWatch struct {
	fsw       *fsnotify.Watcher
	recursive bool
	dirs      int
}

func startWatch(path string, recursive bool) (*dirWatch, error) {
	path, err := absPath(path)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(path)
	switch {
	case absent(err):
		return nil, wrenn.Errorf(wrenn.ENotFound, "%s not found", path)
	case err != nil:
		return nil, refusal(fmt.Errorf("stat: %w", err), wrenn.ENotFound, "cannot watch "+path)
	case !fi.IsDir():
		return nil, wrenn.Errorf(wrenn.EInvalid, "%s is not a directory", path)
	}
	fsw, err := fsnotify.NewBufferedWatcher(4096)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	w := &dirWatch{fsw: fsw, recursive: recursive}
	if err := w.add(path); err != nil {
		fsw.Close()
		return nil, err
	}
	return w, nil
}

// add watches dir, and with a recursive watch the directories below it.
// Directories that vanish meanwhile are skipped.
func (w *dirWatch) add(dir string) error {
	if !w.recursive {
		w.dirs++
		return refusal(w.fsw.Add(dir), wrenn.ENotFound, "cannot watch "+dir)
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if absent(err) || p != dir {
				return nil
			}
			return refusal(err, wrenn.ENotFound, "cannot watch "+dir)
		}
		if !d.IsDir() {
			return nil
		}
		if w.dirs >= maxWatchDirs {
			return wrenn.Errorf(wrenn.ETooLarge, "a recursive watch covers at most %d directories", maxWatchDirs)
		}
		if err := w.fsw.Add(p); err != nil {
			if absent(err) && p != dir {
				return nil
			}
			return refusal(err, wrenn.ENotFound, "cannot watch "+p)
		}
		w.dirs++
		return nil
	})
}

// run sends batches of events until gone is closed or the watch fails.
func (w *dirWatch) run(gone <-chan struct{}, send func([]fsEvent) error) error {
	batch := make([]fsEvent, 0, watchBatchMax)
	var flush <-chan time.Time
	for {
		select {
		case <-gone:
			return errWatchGone
		case err := <-w.fsw.Errors:
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				return wrenn.Errorf(wrenn.ETooLarge, "changes came faster than the watch could report them")
			}
			return fmt.Errorf("inotify: %w", err)
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return errors.New("inotify closed")
			}
			for _, e := range w.translate(ev) {
				if n := len(batch); n > 0 && batch[n-1] == e {
					continue
				}
				batch = append(batch, e)
			}
			if flush == nil && len(batch) > 0 {
				flush = time.After(watchBatchWait)
			}
			if len(batch) < watchBatchMax {
				continue
			}
		case <-flush:
		}
		if len(batch) > 0 {
			if err := send(batch); err != nil {
				return errWatchGone
			}
			batch = batch[:0]
		}
		flush = nil
	}
}

// translate turns one inotify event into what the wire reports; a
// directory made under a recursive watch is watched from now on.
func (w *dirWatch) translate(ev fsnotify.Event) []fsEvent {
	if uploadTemp.MatchString(filepath.Base(ev.Name)) {
		return nil
	}
	var out []fsEvent
	add := func(op string) { out = append(out, fsEvent{Op: op, Path: ev.Name}) }
	if ev.Has(fsnotify.Create) {
		add(wrenn.FileCreated)
		if w.recursive {
			if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
				_ = w.add(ev.Name) // best effort: it may be gone already, or past the bound
			}
		}
	}
	if ev.Has(fsnotify.Write) {
		add(wrenn.FileWritten)
	}
	if ev.Has(fsnotify.Remove) {
		add(wrenn.FileRemoved)
	}
	if ev.Has(fsnotify.Rename) {
		add(wrenn.FileRenamed)
	}
	if ev.Has(fsnotify.Chmod) {
		add(wrenn.FileChmod)
	}
	return out
}
