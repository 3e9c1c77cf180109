package envd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"

	"github.com/wrennhq/wrenn"
)

func TestFileRoundTrip(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	for _, size := range []int{0, 1, 1 << 20, 64 << 20} {
		t.Run(byteSize(size), func(t *testing.T) {
			if size > 1<<20 && testing.Short() {
				t.Skip("short")
			}
			path := filepath.Join(t.TempDir(), "a", "b", "file")
			want := sha256.New()
			body := io.TeeReader(io.LimitReader(rand.Reader, int64(size)), want)
			if err := g.WriteFile(context.Background(), path, body); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() != int64(size) || fi.Mode().Perm() != newFileMode {
				t.Errorf("file is %d bytes, mode %v; want %d, %v", fi.Size(), fi.Mode().Perm(), size, os.FileMode(newFileMode))
			}
			if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o755 {
				t.Errorf("parent mode %v, want 0755", di.Mode().Perm())
			}
			rc, err := g.ReadFile(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			got := sha256.New()
			n, err := io.Copy(got, rc)
			if err != nil {
				t.Fatalf("read back after %d bytes: %v", n, err)
			}
			if n != int64(size) || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
				t.Errorf("read back %d bytes with another SHA-256", n)
			}
		})
	}
}

func byteSize(n int) string {
	switch {
	case n >= 1<<20:
		return strconv.Itoa(n>>20) + "MiB"
	case n >= 1<<10:
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}

func mkfifo(path string) error { return unix.Mkfifo(path, 0o644) }

func TestWriteFileReplaceKeepsMode(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	path := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(path, []byte("old"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := g.WriteFile(context.Background(), path, bytes.NewReader([]byte("new"))); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	fi, _ := os.Stat(path)
	if string(b) != "new" || fi.Mode().Perm() != 0o750 {
		t.Errorf("file %q mode %v, want %q 0750", b, fi.Mode().Perm(), "new")
	}
}

func TestFileErrors(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := mkfifo(fifo); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	read := func(path string) error {
		rc, err := g.ReadFile(ctx, path)
		if err == nil {
			rc.Close()
		}
		return err
	}
	write := func(path string) error { return g.WriteFile(ctx, path, bytes.NewReader([]byte("x"))) }
	tests := []struct {
		name string
		op   func(string) error
		path string
		code string
	}{
		{"read relative", read, "etc/passwd", wrenn.EInvalid},
		{"read missing", read, filepath.Join(dir, "missing"), wrenn.ENotFound},
		{"read under a file", read, filepath.Join(file, "x"), wrenn.ENotFound},
		{"read directory", read, dir, wrenn.EInvalid},
		{"read fifo", read, fifo, wrenn.EInvalid},
		{"write relative", write, "tmp/x", wrenn.EInvalid},
		{"write directory", write, dir, wrenn.EInvalid},
		{"write under a file", write, filepath.Join(file, "x"), wrenn.EInvalid},
		{"write fifo", write, fifo, wrenn.EInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op(tt.path)
			e, ok := errors.AsType[*wrenn.Error](err)
			if !ok || e.Code != tt.code {
				t.Fatalf("got %v, want a *wrenn.Error %s", err, tt.code)
			}
			if tt.code == wrenn.ENotFound && e.Message != "file not found" {
				t.Errorf("message %q", e.Message)
			}
		})
	}
}

// TestGuestRefusals: what the guest's file systems refuse is an error that
// says why, with the code of the errno's class, never a fault.
func TestGuestRefusals(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	dir := t.TempDir()
	loop := filepath.Join(dir, "loop")
	if err := os.Symlink(loop, loop); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	read := func(path string) error {
		rc, err := g.ReadFile(ctx, path)
		if err == nil {
			rc.Close()
		}
		return err
	}
	write := func(path string) error { return g.WriteFile(ctx, path, bytes.NewReader([]byte("x"))) }
	tests := []struct {
		name string
		op   func(string) error
		path string
		code string
	}{
		{"read a symlink loop", read, loop, wrenn.EInvalid},
		{"read under a symlink loop", read, filepath.Join(loop, "x"), wrenn.EInvalid},
		{"write a symlink loop", write, loop, wrenn.EInvalid},
		{"write under a symlink loop", write, filepath.Join(loop, "x"), wrenn.EInvalid},
		// Neither takes new files, so no upload can go there: an upload is a
		// new file renamed over its target. (A read-only entry, so that
		// nothing changes this host if that ever stops being so.)
		{"write in /proc/sys", write, "/proc/sys/kernel/osrelease", wrenn.EInvalid},
		{"write in /sys", write, "/sys/envd-test", wrenn.EInvalid},
		{"write under /sys", write, "/sys/envd-test/x", wrenn.EInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op(tt.path)
			e, ok := errors.AsType[*wrenn.Error](err)
			if !ok || e.Code != tt.code || !strings.Contains(e.Message, tt.path) {
				t.Fatalf("got %v, want a *wrenn.Error %s naming %s", err, tt.code, tt.path)
			}
		})
	}
}

// TestWriteFileOverMountPoint: a file that is a mount point cannot be
// replaced; that is a conflict, and the file stays as it was.
func TestWriteFileOverMountPoint(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("bind mounts need root")
	}
	dir := t.TempDir()
	src, target := filepath.Join(dir, "src"), filepath.Join(dir, "target")
	for _, p := range []string{src, target} {
		if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mount(src, target, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("bind mount: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(target, 0) })
	g := MustStart(t)
	err := g.WriteFile(context.Background(), target, bytes.NewReader([]byte("new")))
	if wrenn.ErrorCode(err) != wrenn.EConflict {
		t.Fatalf("got %v, want a %s error", err, wrenn.EConflict)
	}
	if b, _ := os.ReadFile(target); string(b) != "old" {
		t.Errorf("the file holds %q, want %q", b, "old")
	}
	if names := dirEntries(t, dir); len(names) != 2 {
		t.Errorf("left behind %v", names)
	}
}

// TestGuestChecksPaths sends what the client refuses to send, to check
// the guest refuses it too.
func TestGuestChecksPaths(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	for _, op := range []string{opWrite, opRead} {
		cl, err := g.open(context.Background(), op, request{Op: op, Path: "relative/path"})
		if err != nil {
			t.Fatal(err)
		}
		err = cl.reply()
		cl.close()
		if wrenn.ErrorCode(err) != wrenn.EInvalid {
			t.Errorf("%s of a relative path: %v, want %s", op, err, wrenn.EInvalid)
		}
	}
}

// dirEntries lists dir, hidden files included.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteFileReaderFails(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	tests := []struct {
		name string
		n    int
		err  error
	}{
		{"error", 3 << 20, errors.New("boom")},
		{"error at once", 0, errors.New("boom")},
		{"body cut short", 100 << 10, io.ErrUnexpectedEOF}, // what net/http says of a short request body
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			err := g.WriteFile(context.Background(), filepath.Join(dir, "file"), &errReader{n: tt.n, err: tt.err})
			if !errors.Is(err, tt.err) {
				t.Fatalf("WriteFile: %v, want the reader's error", err)
			}
			if names := dirEntries(t, dir); len(names) != 0 {
				t.Errorf("left behind %v", names)
			}
			// The session is still good.
			if err := g.Ping(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestWriteFileCancelled(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	go func() {
		pw.Write(make([]byte, 1<<20))
		cancel()
		pw.Write(make([]byte, 1<<20)) // unblocked by CloseWithError below
	}()
	err := g.WriteFile(ctx, filepath.Join(dir, "file"), pr)
	pr.CloseWithError(errors.New("done"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("WriteFile: %v, want context.Canceled", err)
	}
	eventually(t, 5*time.Second, "no file and no temporary file", func() bool { return len(dirEntries(t, dir)) == 0 })
}

// TestWriteFileConnectionCut cuts the channel under an upload.
func TestWriteFileConnectionCut(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	dir := t.TempDir()
	pr, pw := io.Pipe()
	go func() {
		pw.Write(make([]byte, 2<<20))
		g.host.Close()
		pw.CloseWithError(errors.New("unreachable: the upload must fail first"))
	}()
	err := g.WriteFile(context.Background(), filepath.Join(dir, "file"), pr)
	if err == nil {
		t.Fatal("WriteFile succeeded over a cut connection")
	}
	eventually(t, 5*time.Second, "no file and no temporary file", func() bool { return len(dirEntries(t, dir)) == 0 })
	if err := g.Ping(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Ping after the cut: %v, want ErrClosed", err)
	}
}

// TestReadFileConnectionCut cuts the channel under a download: Read must
// fail, never return io.EOF.
func TestReadFileConnectionCut(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	path := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(path, make([]byte, 32<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	rc, err := g.ReadFile(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.CopyN(io.Discard, rc, 1<<20); err != nil {
		t.Fatal(err)
	}
	g.host.Close()
	n, err := io.Copy(io.Discard, rc)
	if err == nil {
		t.Fatalf("read to a clean end after the cut (%d more bytes)", n)
	}
	if _, err2 := rc.Read(make([]byte, 10)); err2 == nil || errors.Is(err2, io.EOF) {
		t.Errorf("Read after the failure: %v, want the error again", err2)
	}
}

func TestReadFileCancelled(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	path := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(path, make([]byte, 8<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rc, err := g.ReadFile(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.CopyN(io.Discard, rc, 1<<20); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := io.Copy(io.Discard, rc); !errors.Is(err, context.Canceled) {
		t.Errorf("read after cancel: %v, want context.Canceled", err)
	}
	// Closing early leaves the session usable.
	if err := g.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// fakeGuest serves a session whose streams are all handled by handle:
// a guest that misbehaves on purpose.
func fakeGuest(t *testing.T, handle func(st *yamux.Stream, r *bufio.Reader)) *Client {
	t.Helper()
	host, guest := MustSocketpair(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer guest.Close()
		br := bufio.NewReader(guest)
		if acceptHandshake(br, guest) != nil || skipToYamux(br) != nil {
			return
		}
		sess, err := yamux.Server(newBufferedConn(br, guest), yamuxConfig(testLog(t)))
		if err != nil {
			return
		}
		defer sess.Close()
		for {
			st, err := sess.AcceptStream()
			if err != nil {
				return
			}
			r := bufio.NewReader(st)
			var req request
			if readMessage(r, &req) == nil {
				handle(st, r)
			}
			st.Close()
		}
	}()
	c, err := NewClient(host, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	return c
}

// TestReadFileTruncated has a guest end a download early in the ways a
// broken transfer can: Read must report each, never io.EOF.
func TestReadFileTruncated(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		send func(w io.Writer)
	}{
		{"no end frame", func(w io.Writer) {
			writeFrame(w, frameData, []byte("abc"))
		}},
		{"frame cut short", func(w io.Writer) {
			b := make([]byte, frameHeaderSize+2)
			putHeader(b, frameData, 10)
			w.Write(b)
		}},
		{"end frame disagrees", func(w io.Writer) {
			writeFrame(w, frameData, []byte("abc"))
			writeEnd(w, 4)
		}},
		{"error mid-way", func(w io.Writer) {
			writeFrame(w, frameData, []byte("abc"))
			writeJSON(w, errorMessage(errors.New("disk on fire")))
		}},
		{"exec frame", func(w io.Writer) {
			writeFrame(w, frameStdout, []byte("abc"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := fakeGuest(t, func(st *yamux.Stream, r *bufio.Reader) {
				writeJSON(st, message{Type: msgOK, Size: 3})
				tt.send(st)
			})
			rc, err := c.ReadFile(context.Background(), "/x")
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			b, err := io.ReadAll(rc)
			if err == nil {
				t.Fatalf("read %q to a clean end", b)
			}
			t.Logf("%q, %v", b, err)
		})
	}
}

// TestGuestErrorCodes checks that the guest only gets to report the codes
// it has reason to.
func TestGuestErrorCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code string
		want string // "" for an ordinary error
	}{
		{wrenn.ENotFound, wrenn.ENotFound},
		{wrenn.EInvalid, wrenn.EInvalid},
		{wrenn.ETooLarge, wrenn.ETooLarge},
		{wrenn.EConflict, wrenn.EConflict},
		{wrenn.EUnauthorized, ""},
		{wrenn.EHostAgent, ""},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			t.Parallel()
			c := fakeGuest(t, func(st *yamux.Stream, r *bufio.Reader) {
				writeJSON(st, message{Type: msgError, Code: tt.code, Message: "nope"})
			})
			err := c.Ping(context.Background())
			e, ok := errors.AsType[*wrenn.Error](err)
			switch {
			case err == nil:
				t.Fatal("no error")
			case tt.want == "" && ok:
				t.Errorf("got %v, want an ordinary error", err)
			case tt.want != "" && (!ok || e.Code != tt.want || e.Message != "nope"):
				t.Errorf("got %v, want %s: nope", err, tt.want)
			}
		})
	}
}

// TestWriteFileDiskFull: a file that does not fit is refused as too large,
// saying so, and leaves nothing behind.
func TestWriteFileDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=256k"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, 0) })
	g := MustStart(t)
	err := g.WriteFile(context.Background(), filepath.Join(dir, "big"), bytes.NewReader(make([]byte, 4<<20)))
	if e, ok := errors.AsType[*wrenn.Error](err); !ok || e.Code != wrenn.ETooLarge || !strings.Contains(e.Message, "no space") {
		t.Fatalf("got %v, want a too-large error about space", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("a refused upload left %d files", len(ents))
	}
}
