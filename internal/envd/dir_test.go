package envd

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/wrennhq/wrenn"
)

// mustTree makes files (a name ending in / is a directory) under a new
// temporary directory and returns it.
func mustTree(tb testing.TB, names ...string) string {
	tb.Helper()
	root := tb.TempDir()
	for _, n := range names {
		p := filepath.Join(root, n)
		if strings.HasSuffix(n, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				tb.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(n), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return root
}

func paths(root string, es []wrenn.FileEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, strings.TrimPrefix(e.Path, root))
	}
	return out
}

func TestListDirDepth(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	root := mustTree(t, "a/b/c/deep", "a/x", "top", "empty/")
	if err := os.Symlink(filepath.Join(root, "a"), filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		depth int
		want  string
	}{
		{0, "/a /empty /link /top"},
		{1, "/a /empty /link /top"},
		{2, "/a /a/b /a/x /empty /link /top"},
		{9, "/a /a/b /a/b/c /a/b/c/deep /a/x /empty /link /top"},
	} {
		es, err := g.ListDir(context.Background(), root, tc.depth)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(paths(root, es), " "); got != tc.want {
			t.Errorf("depth %d: %s; want %s", tc.depth, got, tc.want)
		}
	}
}

func TestListDirEntry(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	root := mustTree(t, "f", "d/")
	if err := os.Chmod(filepath.Join(root, "f"), fs.ModeSetuid|0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", filepath.Join(root, "l")); err != nil {
		t.Fatal(err)
	}
	es, err := g.ListDir(context.Background(), root, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 {
		t.Fatalf("%d entries, want 3", len(es))
	}
	d, f, l := es[0], es[1], es[2]
	if d.Type != wrenn.FileTypeDirectory || d.Permissions != "drwxr-xr-x" || d.Mode != 0o755 || d.Name != "d" {
		t.Errorf("directory: %+v", d)
	}
	if f.Type != wrenn.FileTypeFile || f.Size != 1 || f.Permissions != "-rwsr-x---" || f.Mode != 0o4750 ||
		f.Path != filepath.Join(root, "f") || f.ModifiedAt.IsZero() || f.Owner == "" || f.Group == "" {
		t.Errorf("file: %+v", f)
	}
	if l.Type != wrenn.FileTypeSymlink || l.SymlinkTarget != "f" || l.Permissions[0] != 'l' {
		t.Errorf("symlink: %+v", l)
	}
}

func TestListDirLarge(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	root := t.TempDir()
	long := strings.Repeat("n", 200)
	for i := range 3000 { // several batches
		if err := os.WriteFile(filepath.Join(root, long+strconv.Itoa(i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	es, err := g.ListDir(context.Background(), root, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3000 {
		t.Errorf("%d entries, want 3000", len(es))
	}
}

func TestFileSystemErrors(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	root := mustTree(t, "file", "dir/inner")
	ctx := context.Background()
	j := func(p string) string { return filepath.Join(root, p) }
	for _, tc := range []struct {
		name string
		run  func() error
		code string
	}{
		{"list relative", func() error { _, err := g.ListDir(ctx, "tmp", 1); return err }, wrenn.EInvalid},
		{"list missing", func() error { _, err := g.ListDir(ctx, j("nope"), 1); return err }, wrenn.ENotFound},
		{"list a file", func() error { _, err := g.ListDir(ctx, j("file"), 1); return err }, wrenn.EInvalid},
		{"list negative depth", func() error { _, err := g.ListDir(ctx, root, -1); return err }, wrenn.EInvalid},
		{"mkdir relative", func() error { _, err := g.MakeDir(ctx, "a/b", true); return err }, wrenn.EInvalid},
		{"mkdir existing", func() error { _, err := g.MakeDir(ctx, j("dir"), true); return err }, wrenn.EConflict},
		{"mkdir over a file", func() error { _, err := g.MakeDir(ctx, j("file"), false); return err }, wrenn.EConflict},
		{"mkdir under a file", func() error { _, err := g.MakeDir(ctx, j("file/x/y"), true); return err }, wrenn.EInvalid},
		{"mkdir no parent", func() error { _, err := g.MakeDir(ctx, j("p/q"), false); return err }, wrenn.ENotFound},
		{"remove relative", func() error { return g.Remove(ctx, "x") }, wrenn.EInvalid},
		{"remove missing", func() error { return g.Remove(ctx, j("nope")) }, wrenn.ENotFound},
		{"remove root", func() error { return g.Remove(ctx, "/") }, wrenn.EInvalid},
		{"stat missing", func() error { _, err := g.Stat(ctx, j("nope")); return err }, wrenn.ENotFound},
		{"move missing", func() error { _, err := g.Move(ctx, j("nope"), j("x")); return err }, wrenn.ENotFound},
		{"move onto existing", func() error { _, err := g.Move(ctx, j("file"), j("dir")); return err }, wrenn.EConflict},
		{"move relative target", func() error { _, err := g.Move(ctx, j("file"), "x"); return err }, wrenn.EInvalid},
		{"move into itself", func() error { _, err := g.Move(ctx, j("dir"), j("dir/inner2")); return err }, wrenn.EInvalid},
		{"move no parent", func() error { _, err := g.Move(ctx, j("file"), j("p/q")); return err }, wrenn.ENotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if code := wrenn.ErrorCode(err); code != tc.code {
				t.Errorf("%v: code %q, want %q", err, code, tc.code)
			}
		})
	}
}

func TestMakeDirRemoveMove(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	root := t.TempDir()
	ctx := context.Background()
	e, err := g.MakeDir(ctx, filepath.Join(root, "a/b/c"), true)
	if err != nil {
		t.Fatal(err)
	}
	if e.Type != wrenn.FileTypeDirectory || e.Name != "c" || e.Path != filepath.Join(root, "a/b/c") {
		t.Errorf("mkdir entry %+v", e)
	}
	if _, err := g.MakeDir(ctx, filepath.Join(root, "a/d"), false); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "a/b/c/f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err = g.Move(ctx, filepath.Join(root, "a/b"), filepath.Join(root, "moved"))
	if err != nil {
		t.Fatal(err)
	}
	if e.Path != filepath.Join(root, "moved") || e.Type != wrenn.FileTypeDirectory {
		t.Errorf("move entry %+v", e)
	}
	if st, err := g.Stat(ctx, filepath.Join(root, "moved/c/f")); err != nil || st.Size != 1 {
		t.Fatalf("stat moved file: %+v, %v", st, err)
	}
	if err := g.Remove(ctx, filepath.Join(root, "moved")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(root, "moved")); !os.IsNotExist(err) {
		t.Errorf("moved still there: %v", err)
	}
	if err := g.Remove(ctx, filepath.Join(root, "a/d")); err != nil {
		t.Fatal(err)
	}
}

func TestPermissions(t *testing.T) {
	t.Parallel()
	for m, want := range map[fs.FileMode]string{
		0o644:                              "-rw-r--r--",
		fs.ModeDir | 0o777 | fs.ModeSticky: "drwxrwxrwt",
		fs.ModeDir | 0o776 | fs.ModeSticky: "drwxrwxrwT",
		fs.ModeSetgid | 0o755:              "-rwxr-sr-x",
		fs.ModeSetuid | 0o644:              "-rwSr--r--",
		fs.ModeSymlink | 0o777:             "lrwxrwxrwx",
		fs.ModeNamedPipe | 0o600:           "prw-------",
	} {
		if got := permissions(m); got != want {
			t.Errorf("%v: %s, want %s", m, got, want)
		}
	}
}

// A batch of entries whose names JSON escapes six bytes for one still
// fits a frame.
func TestListDirEscapedNames(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	root := t.TempDir()
	dir := filepath.Join(root, strings.Repeat("\x01", 200))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		name := strings.Repeat("\x02", 240) + strconv.Itoa(i)
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	es, err := g.ListDir(context.Background(), root, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1001 {
		t.Errorf("%d entries, want 1001", len(es))
	}
}

// BenchmarkListDir10k: a listing of a directory of 10,000 files over the
// wire protocol (a Unix socket, no VM).
func BenchmarkListDir10k(b *testing.B) {
	g := MustStart(b)
	root := b.TempDir()
	for i := range 10000 {
		if err := os.WriteFile(filepath.Join(root, "file-"+strconv.Itoa(i)), nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		es, err := g.ListDir(context.Background(), root, 1)
		if err != nil || len(es) != 10000 {
			b.Fatalf("%d entries, %v", len(es), err)
		}
	}
}

// The hand-made encoding of a batch decodes to what it encodes.
func TestAppendBatch(t *testing.T) {
	t.Parallel()
	batch := []entry{
		{Name: "plain", Path: "/a/plain", Type: "file", Size: 7, Mode: 0o644, Permissions: "-rw-r--r--", Owner: "root", Group: "0", ModifiedNS: 1700000000123456789},
		{Name: "q\"b\\c\x01\u00e9\xff", Path: "/a/q", Type: "symlink", SymlinkTarget: "t\n<&>", ModifiedNS: -1},
	}
	var m message
	if err := json.Unmarshal(appendBatch(nil, batch), &m); err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(batch)
	want[1].Name = "q\"b\\c\x01\u00e9\ufffd" // invalid UTF-8 is replaced, as encoding/json does
	if m.Type != msgList || !reflect.DeepEqual(m.Entries, want) {
		t.Errorf("decoded %+v\nwant %+v", m, want)
	}
}

func BenchmarkAppendBatch(b *testing.B) {
	batch := make([]entry, 10000)
	for i := range batch {
		batch[i] = entry{Name: "file-" + strconv.Itoa(i), Path: "/root/many/file-" + strconv.Itoa(i), Type: "file", Permissions: "-rw-r--r--", Owner: "root", Group: "root"}
	}
	b.Run("hand", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf = appendBatch(buf[:0], batch)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			if _, err := encodeJSON(message{Type: msgList, Entries: batch}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
