package client_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/client"
)

// TestFiles: write, read, list, mkdir, remove, stat and move against the
// real handler, and their errors.
func TestFiles(t *testing.T) {
	h := fakeHost()
	var mu sync.Mutex
	files := map[string]string{}
	h.WriteFileFn = func(_ context.Context, _, path string, r io.Reader) error {
		b, err := io.ReadAll(r)
		mu.Lock()
		defer mu.Unlock()
		files[path] = string(b)
		return err
	}
	h.ReadFileFn = func(_ context.Context, _, path string) (io.ReadCloser, error) {
		mu.Lock()
		defer mu.Unlock()
		b, ok := files[path]
		if !ok {
			return nil, wrenn.Errorf(wrenn.ENotFound, "no file %s", path)
		}
		return io.NopCloser(strings.NewReader(b)), nil
	}
	mtime := time.Unix(1700000000, 0)
	entry := func(path, typ string) wrenn.FileEntry {
		e := wrenn.FileEntry{Name: path[strings.LastIndex(path, "/")+1:], Path: path, Type: typ, Size: 3, Mode: 0o644,
			Permissions: "-rw-r--r--", Owner: "root", Group: "root", ModifiedAt: mtime}
		if typ == wrenn.FileTypeSymlink {
			e.SymlinkTarget = "/etc/hosts"
		}
		return e
	}
	var depth int
	h.ListDirFn = func(_ context.Context, _, path string, d int) ([]wrenn.FileEntry, error) {
		depth = d
		return []wrenn.FileEntry{entry(path+"/a", wrenn.FileTypeFile), entry(path+"/l", wrenn.FileTypeSymlink)}, nil
	}
	var parents bool
	h.MakeDirFn = func(_ context.Context, _, path string, p bool) (wrenn.FileEntry, error) {
		if path == "/exists" {
			return wrenn.FileEntry{}, wrenn.Errorf(wrenn.EConflict, "%s exists", path)
		}
		parents = p
		return entry(path, wrenn.FileTypeDirectory), nil
	}
	var removed string
	h.RemoveFn = func(_ context.Context, _, path string) error { removed = path; return nil }
	h.StatFn = func(_ context.Context, _, path string) (wrenn.FileEntry, error) {
		return entry(path, wrenn.FileTypeFile), nil
	}
	h.MoveFn = func(_ context.Context, _, src, dst string) (wrenn.FileEntry, error) {
		return entry(dst, wrenn.FileTypeFile), nil
	}
	e := newEnv(t, h)
	ctx := context.Background()
	c := e.account("files@example.com")
	sb := sandbox(t, c)

	if err := c.WriteFile(ctx, sb.ID, "/root/small.txt", []byte("small")); err != nil {
		t.Fatal(err)
	}
	if err := c.UploadFile(ctx, sb.ID, "/root/big.txt", strings.NewReader("streamed")); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"/root/small.txt": "small", "/root/big.txt": "streamed"} {
		rc, err := c.ReadFile(ctx, sb.ID, name)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || string(b) != want {
			t.Errorf("ReadFile(%s) = %q, %v", name, b, err)
		}
	}
	if b, err := c.ReadFileBytes(ctx, sb.ID, "/root/small.txt"); err != nil || string(b) != "small" {
		t.Errorf("ReadFileBytes = %q, %v", b, err)
	}
	_, err := c.ReadFileBytes(ctx, sb.ID, "/root/none")
	wantCode(t, err, 404, client.CodeNotFound)
	_, err = c.ReadFile(ctx, sb.ID, "/root/none")
	wantCode(t, err, 404, client.CodeNotFound)
	err = c.WriteFile(ctx, sb.ID, "relative", []byte("x"))
	wantCode(t, err, 400, client.CodeInvalid)
	err = c.UploadFile(ctx, "sb-nothere", "/root/x", strings.NewReader("x"))
	wantCode(t, err, 404, client.CodeNotFound)

	// A reader that fails fails the upload, with its error.
	boom := errors.New("disk on fire")
	err = c.UploadFile(ctx, sb.ID, "/root/broken", io.MultiReader(strings.NewReader("part"), iotestErr{boom}))
	if !errors.Is(err, boom) {
		t.Errorf("failed reader: %v", err)
	}

	es, err := c.ListDir(ctx, sb.ID, "/root", 2)
	if err != nil || len(es) != 2 || depth != 2 {
		t.Fatalf("ListDir = %+v, %v (depth %d)", es, err, depth)
	}
	if a := es[0]; a.Name != "a" || a.Path != "/root/a" || a.Type != client.FileTypeFile || a.Size != 3 || a.Mode != 0o644 ||
		a.Permissions != "-rw-r--r--" || a.Owner != "root" || !a.ModifiedAt.Equal(mtime) || a.SymlinkTarget != "" {
		t.Errorf("entry %+v", a)
	}
	if l := es[1]; l.Type != client.FileTypeSymlink || l.SymlinkTarget != "/etc/hosts" {
		t.Errorf("link %+v", l)
	}
	if _, err := c.ListDir(ctx, sb.ID, "/root", 0); err != nil || depth != 1 {
		t.Errorf("ListDir depth 0: %v, agent depth %d", err, depth)
	}
	_, err = c.ListDir(ctx, sb.ID, "/root", -1)
	wantCode(t, err, 400, client.CodeInvalid)

	d, err := c.MakeDir(ctx, sb.ID, "/root/d/e", false)
	if err != nil || d.Type != client.FileTypeDirectory || parents {
		t.Fatalf("MakeDir = %+v, %v (parents %v)", d, err, parents)
	}
	if _, err := c.MakeDir(ctx, sb.ID, "/root/d/e", true); err != nil || !parents {
		t.Fatalf("MakeDir parents: %v (parents %v)", err, parents)
	}
	_, err = c.MakeDir(ctx, sb.ID, "/exists", true)
	wantCode(t, err, 409, client.CodeConflict)
	if err := c.Remove(ctx, sb.ID, "/root/d"); err != nil || removed != "/root/d" {
		t.Fatalf("Remove: %v (%q)", err, removed)
	}
	st, err := c.Stat(ctx, sb.ID, "/root/a")
	if err != nil || st.Path != "/root/a" {
		t.Fatalf("Stat = %+v, %v", st, err)
	}
	mv, err := c.Move(ctx, sb.ID, "/root/a", "/root/b")
	if err != nil || mv.Path != "/root/b" {
		t.Fatalf("Move = %+v, %v", mv, err)
	}
	_, err = e.account("files-other@example.com").Stat(ctx, sb.ID, "/root/a")
	wantCode(t, err, 404, client.CodeNotFound)
}

// countingReader produces n bytes of a pattern, counting what it has
// produced.
type countingReader struct {
	n, produced atomic.Int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	left := r.n.Load() - r.produced.Load()
	if left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	for i := range p {
		p[i] = byte(i)
	}
	r.produced.Add(int64(len(p)))
	return len(p), nil
}

// TestUploadStreams: a 64 MiB upload is never held whole: what the
// reader has produced stays within socket buffers (at most a quarter of
// it) of what the agent has consumed, all the way through.
func TestUploadStreams(t *testing.T) {
	const size = 64 << 20
	src := &countingReader{}
	src.n.Store(size)
	var consumed, maxAhead int64
	h := fakeHost()
	h.WriteFileFn = func(_ context.Context, _, _ string, r io.Reader) error {
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Read(buf)
			consumed += int64(n)
			if ahead := src.produced.Load() - consumed; ahead > maxAhead {
				maxAhead = ahead
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
		}
	}
	e := newEnv(t, h)
	c := e.account("upload@example.com")
	sb := sandbox(t, c)
	if err := c.UploadFile(context.Background(), sb.ID, "/root/big.bin", src); err != nil {
		t.Fatal(err)
	}
	if consumed != size {
		t.Fatalf("the agent got %d bytes, want %d", consumed, size)
	}
	if maxAhead > 16<<20 {
		t.Errorf("the reader ran %d bytes ahead of the agent: the upload was buffered", maxAhead)
	}
	t.Logf("the reader was at most %d KiB ahead of the agent", maxAhead>>10)
}

type iotestErr struct{ err error }

func (r iotestErr) Read([]byte) (int, error) { return 0, r.err }
