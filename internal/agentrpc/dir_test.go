package agentrpc_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/agentrpc"
	"github.com/wrennhq/wrenn/internal/mock"
)

func TestFileSystemRoundTrips(t *testing.T) {
	ctx := context.Background()
	e := wrenn.FileEntry{
		Name: "l", Path: "/tmp/l", Type: wrenn.FileTypeSymlink, Size: 3, Mode: 0o4755, Permissions: "lrwsr-xr-x",
		Owner: "root", Group: "1000", ModifiedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), SymlinkTarget: "f",
	}
	h := snapHost{&mock.Agent{
		ListDirFn: func(_ context.Context, id, path string, depth int) ([]wrenn.FileEntry, error) {
			if path == "/missing" {
				return nil, wrenn.Errorf(wrenn.ENotFound, "/missing not found")
			}
			if id != "sb-1" || path != "/tmp" || depth != 3 {
				return nil, wrenn.Errorf(wrenn.EInvalid, "list %s %s %d", id, path, depth)
			}
			return []wrenn.FileEntry{e, {Name: "d", Path: "/tmp/d", Type: wrenn.FileTypeDirectory}}, nil
		},
		MakeDirFn: func(_ context.Context, id, path string, parents bool) (wrenn.FileEntry, error) {
			if !parents {
				return wrenn.FileEntry{}, wrenn.Errorf(wrenn.EConflict, "exists")
			}
			return wrenn.FileEntry{Name: "d", Path: path, Type: wrenn.FileTypeDirectory}, nil
		},
		RemoveFn: func(_ context.Context, id, path string) error {
			if path != "/tmp/x" {
				return wrenn.Errorf(wrenn.ENotFound, "%s not found", path)
			}
			return nil
		},
		StatFn: func(context.Context, string, string) (wrenn.FileEntry, error) { return e, nil },
		MoveFn: func(_ context.Context, id, src, dst string) (wrenn.FileEntry, error) {
			return wrenn.FileEntry{Name: "b", Path: dst + "|" + src}, nil
		},
	}}
	c := agentrpc.Dial(serve(t, h, "secret"), "secret")

	es, err := c.ListDir(ctx, "sb-1", "/tmp", 3)
	if err != nil || len(es) != 2 || !reflect.DeepEqual(es[0], e) || es[1].Type != wrenn.FileTypeDirectory {
		t.Errorf("list = %+v, %v", es, err)
	}
	if _, err := c.ListDir(ctx, "sb-1", "/missing", 1); wrenn.ErrorCode(err) != wrenn.ENotFound {
		t.Errorf("list of a missing directory: %v", err)
	}
	if d, err := c.MakeDir(ctx, "sb-1", "/a/d", true); err != nil || d.Path != "/a/d" {
		t.Errorf("mkdir = %+v, %v", d, err)
	}
	if _, err := c.MakeDir(ctx, "sb-1", "/a/d", false); wrenn.ErrorCode(err) != wrenn.EConflict {
		t.Errorf("mkdir without parents: %v", err)
	}
	if err := c.Remove(ctx, "sb-1", "/tmp/x"); err != nil {
		t.Errorf("remove: %v", err)
	}
	if err := c.Remove(ctx, "sb-1", "/tmp/y"); wrenn.ErrorCode(err) != wrenn.ENotFound {
		t.Errorf("remove of a missing path: %v", err)
	}
	if s, err := c.Stat(ctx, "sb-1", "/tmp/l"); err != nil || !reflect.DeepEqual(s, e) {
		t.Errorf("stat = %+v, %v", s, err)
	}
	if m, err := c.Move(ctx, "sb-1", "/a", "/b"); err != nil || m.Path != "/b|/a" {
		t.Errorf("move = %+v, %v", m, err)
	}
}

// A host without the capability answers each file system RPC with a host
// agent error saying so.
func TestFileSystemUnimplemented(t *testing.T) {
	ctx := context.Background()
	c := agentrpc.Dial(serve(t, &fakeHost{}, "secret"), "secret")
	for name, call := range map[string]func() error{
		"list":   func() error { _, err := c.ListDir(ctx, "sb-1", "/", 1); return err },
		"mkdir":  func() error { _, err := c.MakeDir(ctx, "sb-1", "/a", true); return err },
		"remove": func() error { return c.Remove(ctx, "sb-1", "/a") },
		"stat":   func() error { _, err := c.Stat(ctx, "sb-1", "/a"); return err },
		"move":   func() error { _, err := c.Move(ctx, "sb-1", "/a", "/b"); return err },
	} {
		err := call()
		if wrenn.ErrorCode(err) != wrenn.EHostAgent || !strings.Contains(wrenn.ErrorMessage(err), "cannot list") {
			t.Errorf("%s: %v, want a host agent error", name, err)
		}
	}
}
