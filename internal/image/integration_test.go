package image

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wrennhq/wrenn/internal/layout"
)

// Environment of the integration test.
const (
	envImageTests   = "WRENN_IMAGE_TESTS"         // "1" runs it
	envImageDataDir = "WRENN_IMAGE_TEST_DATA_DIR" // reuse a data dir (and its kernel) between runs
)

// TestBuildReal builds the real kernel and minimal base template, checks
// that a second build does nothing, looks inside the image and boots it
// under QEMU (TCG) when QEMU is installed. A fresh data dir costs a kernel
// build (minutes): point WRENN_IMAGE_TEST_DATA_DIR at a kept one to reuse it.
func TestBuildReal(t *testing.T) {
	if os.Getenv(envImageTests) != "1" {
		t.Skip("set " + envImageTests + "=1 to build a real kernel and base template (minutes; root; the packages in image.Packages())")
	}
	if os.Geteuid() != 0 {
		t.Skip("building a base template needs root")
	}
	dataDir := os.Getenv(envImageDataDir)
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	b := NewBuilder(Config{
		Layout:   layout.New(dataDir),
		RepoDir:  envdRepo(t),
		Logger:   slog.New(slog.NewTextHandler(&testWriter{tb: t}, nil)),
		Progress: &testWriter{tb: t},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()

	start := time.Now()
	base, err := b.EnsureBase(ctx, "minimal")
	if errors.Is(err, ErrMissingTools) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first build: %s", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	again, err := b.EnsureBase(ctx, "minimal")
	if err != nil {
		t.Fatal(err)
	}
	noop := time.Since(start)
	t.Logf("second build (no-op): %s", noop.Round(time.Millisecond))
	if again.Key != base.Key || !again.BuiltAt.Equal(base.BuiltAt) {
		t.Fatalf("second build rebuilt: %+v, then %+v", base, again)
	}
	if noop > time.Minute {
		t.Errorf("a build with nothing to do took %s", noop)
	}
	checkImage(t, base)
	bootImage(t, base)
}

// envdRepo is the module root when it has cmd/envd, else the stand-in
// module in testdata.
func envdRepo(tb testing.TB) string {
	tb.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		tb.Fatal(err)
	}
	if exists(filepath.Join(root, "cmd", "envd")) {
		return root
	}
	tb.Log("no cmd/envd in the repo yet: using testdata/standin")
	standin, err := filepath.Abs(filepath.Join("testdata", "standin"))
	if err != nil {
		tb.Fatal(err)
	}
	return standin
}

// checkImage looks inside rootfs.ext4 without mounting it.
func checkImage(tb testing.TB, base *Base) {
	tb.Helper()
	if _, err := exec.LookPath("debugfs"); err != nil {
		tb.Log("no debugfs: not looking inside the image")
		return
	}
	debugfs := func(req string) string {
		out, err := exec.Command("debugfs", "-R", req, base.RootFS).CombinedOutput()
		if err != nil {
			tb.Fatalf("debugfs %s: %v\n%s", req, err, out)
		}
		return string(out)
	}
	if st := debugfs("stat " + EnvdPath); !strings.Contains(st, "Mode:  0755") || !strings.Contains(st, "User:     0") {
		tb.Errorf("envd in image:\n%s", st)
	}
	for _, p := range []string{"/usr/bin/python3", "/usr/bin/curl", "/usr/bin/bash", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf"} {
		if out := debugfs("stat " + p); strings.Contains(out, "File not found") {
			tb.Errorf("%s missing from the image", p)
		}
	}
}

// bootScript is typed into bash, running as init on the serial console.
// The marker is computed so that the echo of the typed line doesn't match.
const bootScript = "mount -t proc proc /proc; echo uptime $(cut -d' ' -f1 /proc/uptime);" +
	" python3 --version; curl --version | head -n1; bash --version | head -n1; echo WRENN-BOOT-$((40+2));" +
	" python3 -c 'import ctypes; ctypes.CDLL(None).reboot(0x1234567)'\n"

// bootImage boots base under QEMU's microvm with TCG (the disk in
// snapshot mode, so the template is not changed), with bash as init, and
// checks that bash, python3 and curl run. The script goes in on the
// serial console once bash is up: arguments after "--" on the kernel
// command line would be mixed up with the virtio_mmio.device= entries
// QEMU appends.
func bootImage(tb testing.TB, base *Base) {
	tb.Helper()
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		tb.Log("no qemu-system-x86_64: not booting the image")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmdline := "console=ttyS0 reboot=t panic=-1 root=/dev/vda rw rootfstype=ext4 quiet init=/bin/bash"
	cmd := exec.CommandContext(ctx, qemu, qemuArgs(base.Kernel, base.RootFS, cmdline)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out := &watchBuffer{want: "no job control", seen: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	var shell time.Duration
	select {
	case <-out.seen:
		shell = time.Since(start)
		io.WriteString(stdin, bootScript)
	case <-ctx.Done():
	}
	err = cmd.Wait()
	took := time.Since(start)
	if err != nil || !strings.Contains(out.String(), "WRENN-BOOT-42") {
		tb.Fatalf("boot: %v after %s\n%s", err, took, out.String())
	}
	tb.Logf("bash up %s after starting QEMU; checks done and QEMU gone after %s:\n%s",
		shell.Round(time.Millisecond), took.Round(time.Millisecond), out.String())
}

// watchBuffer collects output and closes seen once want appears in it.
type watchBuffer struct {
	want string
	seen chan struct{}
	mu   sync.Mutex
	buf  bytes.Buffer
	done bool
}

func (w *watchBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.done && strings.Contains(w.buf.String(), w.want) {
		w.done = true
		close(w.seen)
	}
	return len(p), nil
}

func (w *watchBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// qemuArgs boots kernel with rootfs as /dev/vda under TCG: KVM on the
// machines this is tested on is kvm-pvm, which unmodified guests can't use.
func qemuArgs(kernel, rootfs, cmdline string) []string {
	return []string{
		"-M", "microvm,acpi=off", "-accel", "tcg", "-cpu", "max", "-m", "512", "-smp", "1",
		"-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio", "-no-reboot",
		"-kernel", kernel, "-append", cmdline,
		"-drive", "id=root,file=" + rootfs + ",format=raw,if=none,snapshot=on",
		"-device", "virtio-blk-device,drive=root",
	}
}

// testWriter logs each line written to it.
type testWriter struct {
	tb  testing.TB
	mu  sync.Mutex
	buf []byte
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.tb.Log(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}
