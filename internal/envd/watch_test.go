package envd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
)

// recvUntil collects events from w until one matches want or 10 s pass.
func recvUntil(t *testing.T, w *Watch, want wrenn.FileEvent) []wrenn.FileEvent {
	t.Helper()
	got := make(chan wrenn.FileEvent)
	errc := make(chan error, 1)
	go func() {
		for {
			e, err := w.Recv()
			if err != nil {
				errc <- err
				return
			}
			got <- e
			if e == want {
				return
			}
		}
	}()
	var seen []wrenn.FileEvent
	for {
		select {
		case e := <-got:
			seen = append(seen, e)
			if e == want {
				return seen
			}
		case err := <-errc:
			t.Fatalf("watch ended waiting for %+v (saw %+v): %v", want, seen, err)
		case <-time.After(10 * time.Second):
			t.Fatalf("no %+v within 10s; saw %+v", want, seen)
		}
	}
}

func TestWatchDir(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	root := mustTree(t, "sub/")
	ctx := context.Background()
	w, err := g.WatchDir(ctx, root, true)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	f := filepath.Join(root, "sub", "f")
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	recvUntil(t, w, wrenn.FileEvent{Op: wrenn.FileWritten, Path: f})
	// A directory made after the watch began is watched too.
	nd := filepath.Join(root, "new")
	if err := os.Mkdir(nd, 0o755); err != nil {
		t.Fatal(err)
	}
	recvUntil(t, w, wrenn.FileEvent{Op: wrenn.FileCreated, Path: nd})
	inner := filepath.Join(nd, "inner")
	if err := os.WriteFile(inner, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	recvUntil(t, w, wrenn.FileEvent{Op: wrenn.FileCreated, Path: inner})
	moved := filepath.Join(root, "moved")
	if err := os.Rename(f, moved); err != nil {
		t.Fatal(err)
	}
	seen := recvUntil(t, w, wrenn.FileEvent{Op: wrenn.FileCreated, Path: moved})
	if !slices.Contains(seen, wrenn.FileEvent{Op: wrenn.FileRenamed, Path: f}) {
		t.Errorf("rename: %+v", seen)
	}
	if err := os.Remove(moved); err != nil {
		t.Fatal(err)
	}
	recvUntil(t, w, wrenn.FileEvent{Op: wrenn.FileRemoved, Path: moved})

	// An upload is one create of its final name, its temporary file unseen.
	up := filepath.Join(root, "up.bin")
	if err := g.WriteFile(ctx, up, bytes.NewReader([]byte("data"))); err != nil {
		t.Fatal(err)
	}
	for _, e := range recvUntil(t, w, wrenn.FileEvent{Op: wrenn.FileCreated, Path: up}) {
		if strings.Contains(e.Path, ".envd-") {
			t.Errorf("temporary file seen: %+v", e)
		}
	}
}

func TestWatchDirNotRecursive(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	root := mustTree(t, "sub/")
	w, err := g.WatchDir(context.Background(), root, false)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := os.WriteFile(filepath.Join(root, "sub", "hidden"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	top := filepath.Join(root, "top")
	if err := os.WriteFile(top, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, e := range recvUntil(t, w, wrenn.FileEvent{Op: wrenn.FileCreated, Path: top}) {
		if strings.HasSuffix(e.Path, "hidden") {
			t.Errorf("a watch that is not recursive saw %+v", e)
		}
	}
}

func TestWatchDirRefusals(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	root := mustTree(t, "file")
	ctx := context.Background()
	for _, tc := range []struct {
		path, code string
	}{
		{"relative", wrenn.EInvalid},
		{filepath.Join(root, "missing"), wrenn.ENotFound},
		{filepath.Join(root, "file"), wrenn.EInvalid},
	} {
		if _, err := g.WatchDir(ctx, tc.path, true); wrenn.ErrorCode(err) != tc.code {
			t.Errorf("%s: %v, want %s", tc.path, err, tc.code)
		}
	}
	// The session still serves after refusals and a closed watch.
	w, err := g.WatchDir(ctx, root, false)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, err := g.ListDir(ctx, root, 1); err != nil {
		t.Fatal(err)
	}
}
