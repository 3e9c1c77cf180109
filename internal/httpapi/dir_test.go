package httpapi_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

// TestFileSystemEndpoints: the handlers pass each request's fields on
// with the contract's defaults (depth 1, parents true), answer with
// FileEntry (symlink_target null unless a symlink), and map the agent's
// refusals to 400, 404 and 409 in the envelope.
func TestFileSystemEndpoints(t *testing.T) {
	engine := storetest.Engines(t)[0]
	var gotDepth int
	var gotParents bool
	mod := time.Unix(1700000000, 5).UTC()
	h := fakeHost()
	h.ListDirFn = func(_ context.Context, _, path string, depth int) ([]wrenn.FileEntry, error) {
		if path == "/missing" {
			return nil, wrenn.Errorf(wrenn.ENotFound, "/missing not found")
		}
		gotDepth = depth
		return []wrenn.FileEntry{
			{Name: "f", Path: "/d/f", Type: wrenn.FileTypeFile, Size: 3, Mode: 0o644, Permissions: "-rw-r--r--", Owner: "root", Group: "root", ModifiedAt: mod},
			{Name: "l", Path: "/d/l", Type: wrenn.FileTypeSymlink, SymlinkTarget: "f", Permissions: "lrwxrwxrwx"},
		}, nil
	}
	h.MakeDirFn = func(_ context.Context, _, path string, parents bool) (wrenn.FileEntry, error) {
		if path == "/exists" {
			return wrenn.FileEntry{}, wrenn.Errorf(wrenn.EConflict, "/exists already exists")
		}
		gotParents = parents
		return wrenn.FileEntry{Name: "d", Path: path, Type: wrenn.FileTypeDirectory}, nil
	}
	h.RemoveFn = func(_ context.Context, _, path string) error {
		if path == "/proc/1" {
			return wrenn.Errorf(wrenn.EInvalid, "cannot remove /proc/1: operation not permitted")
		}
		return nil
	}
	h.StatFn = func(_ context.Context, _, path string) (wrenn.FileEntry, error) {
		return wrenn.FileEntry{Name: "x", Path: path, Type: wrenn.FileTypeFile}, nil
	}
	h.MoveFn = func(_ context.Context, _, src, dst string) (wrenn.FileEntry, error) {
		return wrenn.FileEntry{Name: "b", Path: dst, Type: wrenn.FileTypeFile}, nil
	}
	e := newEnv(t, engine, envOptions{agent: h})
	key := apiKey(e.newKey(e.signup("fs@example.com").Token))
	var sb sandboxResp
	e.must(201, "POST", "/v1/sandboxes", key, map[string]any{"template": "minimal"}, &sb)
	base := "/v1/sandboxes/" + sb.ID + "/files/"

	var list struct{ Entries []map[string]any }
	e.must(200, "POST", base+"list", key, map[string]any{"path": "/d"}, &list)
	if gotDepth != 1 || len(list.Entries) != 2 {
		t.Fatalf("list: depth %d, %+v", gotDepth, list)
	}
	f, l := list.Entries[0], list.Entries[1]
	if f["modified_at"] != float64(1700000000) || f["symlink_target"] != nil || f["mode"] != float64(0o644) || f["type"] != "file" {
		t.Errorf("file entry %v", f)
	}
	if l["symlink_target"] != "f" {
		t.Errorf("symlink entry %v", l)
	}
	e.must(200, "POST", base+"list", key, map[string]any{"path": "/d", "depth": 0}, nil)
	if gotDepth != 1 {
		t.Errorf("depth 0 reached the agent as %d, want 1", gotDepth)
	}
	e.must(200, "POST", base+"list", key, map[string]any{"path": "/d", "depth": 3}, nil)
	if gotDepth != 3 {
		t.Errorf("depth 3 reached the agent as %d", gotDepth)
	}

	var made struct{ Entry map[string]any }
	e.must(200, "POST", base+"mkdir", key, map[string]any{"path": "/a/b"}, &made)
	if !gotParents || made.Entry["path"] != "/a/b" {
		t.Errorf("mkdir: parents %v, %v", gotParents, made)
	}
	e.must(200, "POST", base+"mkdir", key, map[string]any{"path": "/a/b", "parents": false}, nil)
	if gotParents {
		t.Errorf("parents false reached the agent as true")
	}
	e.must(204, "POST", base+"remove", key, map[string]any{"path": "/a"}, nil)
	e.must(200, "POST", base+"stat", key, map[string]any{"path": "/a"}, nil)
	var moved struct{ Entry map[string]any }
	e.must(200, "POST", base+"move", key, map[string]any{"source": "/a", "destination": "/b"}, &moved)
	if moved.Entry["path"] != "/b" {
		t.Errorf("move: %v", moved)
	}

	for _, tc := range []struct {
		op     string
		body   map[string]any
		status int
		code   string
	}{
		{"list", map[string]any{"path": "d"}, 400, "invalid_request"},
		{"list", map[string]any{"path": "/d", "depth": -2}, 400, "invalid_request"},
		{"list", map[string]any{"path": "/missing"}, 404, "not_found"},
		{"list", map[string]any{}, 400, "invalid_request"},
		{"mkdir", map[string]any{"path": "/exists"}, 409, "conflict"},
		{"remove", map[string]any{"path": "/proc/1"}, 400, "invalid_request"},
		{"stat", map[string]any{"path": ""}, 400, "invalid_request"},
		{"move", map[string]any{"source": "/a", "destination": "b"}, 400, "invalid_request"},
		{"move", map[string]any{"destination": "/b"}, 400, "invalid_request"},
	} {
		got, body := e.do("POST", base+tc.op, key, tc.body)
		if got != tc.status || errCode(t, body) != tc.code {
			b, _ := json.Marshal(tc.body)
			t.Errorf("%s %s = %d %s; want %d %s", tc.op, b, got, body, tc.status, tc.code)
		}
	}
}
