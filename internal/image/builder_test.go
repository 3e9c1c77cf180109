package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wrennhq/wrenn/internal/layout"
)

// fakeHost stands in for the host's tools: each command does just enough
// to the file system for the builder to go on, and is counted.
type fakeHost struct {
	mu      sync.Mutex
	calls   map[string]int
	envd    string                                     // what `go build` produces
	version string                                     // linux-source-6.1's version
	hook    func(ctx context.Context, c command) error // runs first when set
}

func (f *fakeHost) count(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[name]
}

func (f *fakeHost) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = map[string]int{}
}

// opName names a command for counting: "make vmlinux", "mmdebstrap", …
func opName(c command) string {
	name := filepath.Base(c.Name)
	switch name {
	case "make":
		return "make " + c.Args[len(c.Args)-1]
	case "go":
		return "go build"
	case "tar":
		if c.Args[0] == "-xJf" {
			return "tar kernel"
		}
		return "tar rootfs"
	}
	return name
}

func argAfter(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func (f *fakeHost) run(ctx context.Context, c command) error {
	op := opName(c)
	f.mu.Lock()
	f.calls[op]++
	hook := f.hook
	f.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, c); err != nil {
			return err
		}
	}
	if c.Line != nil {
		c.Line("  CC      kernel/fork.o")
	}
	switch op {
	case "make olddefconfig":
		frag, err := os.ReadFile(filepath.Join(c.Dir, "wrenn.config"))
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(c.Dir, ".config"), frag, 0o644)
	case "make -j1", "make vmlinux":
		return os.WriteFile(filepath.Join(c.Dir, "vmlinux"), []byte("ELF"), 0o644)
	case "go build":
		return os.WriteFile(argAfter(c.Args, "-o"), []byte(f.envd), 0o755)
	case "mmdebstrap":
		for _, a := range c.Args {
			if strings.HasSuffix(a, ".tar") {
				return os.WriteFile(a, []byte("tarball"), 0o644)
			}
		}
		return errors.New("fake mmdebstrap: no output path")
	case "tar rootfs":
		root := argAfter(c.Args, "-C")
		if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
			return err
		}
		// Like Debian's: an absolute symlink that must not be followed.
		return os.Symlink("/run/systemd/resolve/resolv.conf", filepath.Join(root, "etc", "resolv.conf"))
	}
	return nil
}

type fixture struct {
	b    *Builder
	host *fakeHost
	l    layout.Layout
	repo string
}

// mustFixture returns a builder on a temp data dir whose outside world is
// a fakeHost.
func mustFixture(tb testing.TB) *fixture {
	tb.Helper()
	dir := tb.TempDir()
	repo := filepath.Join(dir, "repo")
	mustWrite(tb, filepath.Join(repo, "cmd", "envd", "main.go"), "package main\n")
	l := layout.New(filepath.Join(dir, "data"))
	host := &fakeHost{calls: map[string]int{}, envd: "envd v1", version: "6.1.192-3"}
	b := NewBuilder(Config{Layout: l, RepoDir: repo, Jobs: 1})
	b.run = host.run
	b.lookPath = func(name string) (string, error) { return "/usr/bin/" + filepath.Base(name), nil }
	b.fileExists = func(string) bool { return true }
	b.euid = func() int { return 0 }
	b.sourceVersion = func(context.Context) (string, error) { return host.version, nil }
	b.fragment = []byte("CONFIG_SMP=y\n# CONFIG_PCI is not set\n")
	return &fixture{b: b, host: host, l: l, repo: repo}
}

func (f *fixture) mustBase(tb testing.TB) *Base {
	tb.Helper()
	base, err := f.b.EnsureBase(context.Background(), "minimal")
	if err != nil {
		tb.Fatal(err)
	}
	return base
}

func TestEnsureKernelCaches(t *testing.T) {
	f := mustFixture(t)
	ctx := context.Background()
	p1, err := f.b.EnsureKernel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, p1); got != "ELF" {
		t.Fatalf("vmlinux = %q", got)
	}
	if n := f.host.count("make vmlinux"); n != 1 {
		t.Fatalf("make vmlinux ran %d times, want 1", n)
	}
	for _, n := range []string{"config", manifestFile} {
		if !exists(filepath.Join(filepath.Dir(p1), n)) {
			t.Errorf("kernel dir lacks %s", n)
		}
	}

	f.host.reset()
	p2, err := f.b.EnsureKernel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p2 != p1 || len(f.host.calls) != 0 {
		t.Fatalf("second run: path %s (want %s), ran %v (want nothing)", p2, p1, f.host.calls)
	}

	f.b.fragment = append(f.b.fragment, "CONFIG_NET=y\n"...)
	p3, err := f.b.EnsureKernel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p3 == p1 || f.host.count("make vmlinux") != 1 {
		t.Fatalf("changed fragment: path %s, make vmlinux %d times", p3, f.host.count("make vmlinux"))
	}
	if !exists(p1) {
		t.Fatal("old kernel removed: snapshots may still need it")
	}
	if got := names(t, f.l.BuildCache()); len(got) != 2 || !strings.HasSuffix(got[0], ".log") {
		t.Fatalf("build cache holds %v, want two logs", got)
	}
}

func TestEnsureKernelConfigMismatch(t *testing.T) {
	f := mustFixture(t)
	f.host.hook = func(_ context.Context, c command) error {
		if opName(c) == "make vmlinux" {
			t.Error("compiled despite a bad config")
		}
		return nil
	}
	f.b.fragment = []byte("CONFIG_SMP=y\n")
	// olddefconfig drops the option, as when a dependency is missing.
	run := f.b.run
	f.b.run = func(ctx context.Context, c command) error {
		if err := run(ctx, c); err != nil {
			return err
		}
		if opName(c) == "make olddefconfig" {
			return os.WriteFile(filepath.Join(c.Dir, ".config"), []byte("# CONFIG_SMP is not set\n"), 0o644)
		}
		return nil
	}
	_, err := f.b.EnsureKernel(context.Background())
	if err == nil || !strings.Contains(err.Error(), "CONFIG_SMP=y (got n)") {
		t.Fatalf("err = %v, want the missing option named", err)
	}
	if !strings.Contains(err.Error(), "log: ") {
		t.Fatalf("err = %v, want the log path", err)
	}
}

func TestEnsureBaseRebuildsOnlyWhatChanged(t *testing.T) {
	f := mustFixture(t)
	first := f.mustBase(t)
	want := map[string]int{"make vmlinux": 1, "mmdebstrap": 1, "tar rootfs": 1, "mkfs.ext4": 1, "go build": 1}
	for op, n := range want {
		if got := f.host.count(op); got != n {
			t.Errorf("first build: %s ran %d times, want %d", op, got, n)
		}
	}
	if first.RootFS != filepath.Join(f.l.BaseTemplate("minimal"), "rootfs.ext4") || !exists(first.RootFS) {
		t.Fatalf("rootfs at %s", first.RootFS)
	}
	if !exists(first.Kernel) || first.SizeBytes != 2*gib || first.Key == "" || first.VCPUs != 1 {
		t.Fatalf("base = %+v", first)
	}

	tests := []struct {
		name       string
		change     func()
		ran        map[string]int // ops that must run this many times (others: 0, besides go build)
		sameKey    bool
		sameRootFS bool
	}{
		{"unchanged", func() {}, nil, true, true},
		{"new envd", func() { f.host.envd = "envd v2" }, map[string]int{"tar rootfs": 1, "mkfs.ext4": 1}, false, false},
		{"new kernel config", func() { f.b.fragment = append(f.b.fragment, "CONFIG_NET=y\n"...) },
			map[string]int{"tar kernel": 1, "make tinyconfig": 1, "merge_config.sh": 1, "make olddefconfig": 1, "make vmlinux": 1}, false, true},
		{"new linux-source", func() { f.host.version = "6.1.200-1" },
			map[string]int{"tar kernel": 1, "make tinyconfig": 1, "merge_config.sh": 1, "make olddefconfig": 1, "make vmlinux": 1}, false, true},
	}
	prev := first
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.host.reset()
			tt.change()
			prevManifest := mustRead(t, filepath.Join(prev.Dir, manifestFile))
			base := f.mustBase(t)
			for op, n := range f.host.calls {
				if op == "go build" {
					continue
				}
				if n != tt.ran[op] {
					t.Errorf("%s ran %d times, want %d", op, n, tt.ran[op])
				}
			}
			if (base.Key == prev.Key) != tt.sameKey {
				t.Errorf("key %s → %s, want same = %v", prev.Key, base.Key, tt.sameKey)
			}
			if !tt.sameKey && mustRead(t, filepath.Join(base.Dir, manifestFile)) == prevManifest {
				t.Error("manifest not updated")
			}
			if tt.sameRootFS && !base.BuiltAt.Equal(prev.BuiltAt) {
				t.Error("rootfs rebuilt")
			}
			if !exists(base.Kernel) {
				t.Errorf("kernel %s missing", base.Kernel)
			}
			prev = base
		})
	}
}

func TestEnsureBaseResolvConfStaysInside(t *testing.T) {
	f := mustFixture(t)
	var root string
	f.host.hook = func(_ context.Context, c command) error {
		if opName(c) == "mkfs.ext4" {
			root = argAfter(c.Args, "-d")
			fi, err := os.Lstat(filepath.Join(root, "etc", "resolv.conf"))
			if err != nil || !fi.Mode().IsRegular() {
				t.Errorf("resolv.conf in image: %v, %v; want a regular file", fi, err)
			}
			if got := mustRead(t, filepath.Join(root, "usr", "local", "bin", "envd")); got != "envd v1" {
				t.Errorf("envd in image = %q", got)
			}
			fi, err = os.Stat(filepath.Join(root, "usr", "local", "bin", "envd"))
			if err != nil || fi.Mode().Perm() != 0o755 {
				t.Errorf("envd mode: %v %v, want 0755", fi, err)
			}
		}
		return nil
	}
	f.mustBase(t)
	if root == "" {
		t.Fatal("mkfs.ext4 not run")
	}
}

func TestEnsureBaseFailureKeepsOld(t *testing.T) {
	f := mustFixture(t)
	old := f.mustBase(t)
	f.host.envd = "envd v2"
	f.host.hook = func(_ context.Context, c command) error {
		if opName(c) == "mkfs.ext4" {
			return errors.New("disk full")
		}
		return nil
	}
	if _, err := f.b.EnsureBase(context.Background(), "minimal"); err == nil {
		t.Fatal("build succeeded despite mkfs failing")
	}
	bases, err := f.b.Bases()
	if err != nil {
		t.Fatal(err)
	}
	if len(bases) != 1 || bases[0].Key != old.Key {
		t.Fatalf("bases = %+v, want the old one", bases)
	}
	assertNoLeftovers(t, f.l)
}

func TestEnsureBaseCancel(t *testing.T) {
	for _, op := range []string{"make vmlinux", "mmdebstrap", "mkfs.ext4"} {
		t.Run(op, func(t *testing.T) {
			f := mustFixture(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			f.host.hook = func(ctx context.Context, c command) error {
				if opName(c) != op {
					return nil
				}
				cancel()
				<-ctx.Done()
				return fmt.Errorf("%s: %w", c.Name, ctx.Err())
			}
			_, err := f.b.EnsureBase(ctx, "minimal")
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if exists(f.l.BaseTemplate("minimal")) {
				t.Fatal("a cancelled build left a base template")
			}
			assertNoLeftovers(t, f.l)
			if bases, _ := f.b.Bases(); len(bases) != 0 {
				t.Fatalf("bases = %v", bases)
			}
		})
	}
}

// assertNoLeftovers fails if a work dir or temp file survived a build.
func assertNoLeftovers(tb testing.TB, l layout.Layout) {
	tb.Helper()
	filepath.WalkDir(l.Images(), func(p string, d os.DirEntry, err error) error {
		if err == nil && (strings.Contains(d.Name(), tmpMarker) || strings.Contains(d.Name(), oldMarker)) {
			tb.Errorf("leftover %s", p)
		}
		return nil
	})
}

func TestEnsureBaseCleansCrashLeftovers(t *testing.T) {
	f := mustFixture(t)
	// What a build killed with SIGKILL leaves behind.
	leftovers := []string{
		filepath.Join(filepath.Dir(f.l.BaseTemplate("minimal")), ".minimal.tmp-123", "rootfs.ext4"),
		filepath.Join(f.l.BuildCache(), ".tmp-minimal-456", "root", "etc", "passwd"),
		filepath.Join(f.l.BuildCache(), ".tmp-debian-789", "debian.tar"),
		filepath.Join(filepath.Dir(filepath.Dir(f.l.Kernel("k"))), ".k.tmp-1", "vmlinux"),
	}
	for _, p := range leftovers {
		mustWrite(t, p, "half")
	}
	f.mustBase(t)
	assertNoLeftovers(t, f.l)
}

func TestEnsureBaseMissingTools(t *testing.T) {
	tests := []struct {
		name    string
		missing string
		euid    int
		want    string
	}{
		{"mmdebstrap", "mmdebstrap", 0, "mmdebstrap (package mmdebstrap)"},
		{"mkfs", "mkfs.ext4", 0, "mkfs.ext4 (package e2fsprogs)"},
		{"kernel tools", "bison", 0, "bison (package bison)"},
		{"not root", "", 1000, "needs root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustFixture(t)
			f.b.euid = func() int { return tt.euid }
			f.b.lookPath = func(name string) (string, error) {
				if name == tt.missing {
					return "", errors.New("not found")
				}
				return "/usr/bin/" + name, nil
			}
			_, err := f.b.EnsureBase(context.Background(), "minimal")
			if !errors.Is(err, ErrMissingTools) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrMissingTools naming %q", err, tt.want)
			}
		})
	}
}

func TestEnsureBaseUnknown(t *testing.T) {
	f := mustFixture(t)
	_, err := f.b.EnsureBase(context.Background(), "nope")
	if err == nil || !strings.Contains(err.Error(), "minimal") {
		t.Fatalf("err = %v, want the known names", err)
	}
}

func TestEnsureBaseNoEnvdSource(t *testing.T) {
	f := mustFixture(t)
	os.RemoveAll(filepath.Join(f.repo, "cmd"))
	_, err := f.b.EnsureBase(context.Background(), "minimal")
	if err == nil || !strings.Contains(err.Error(), "cmd/envd") {
		t.Fatalf("err = %v, want the missing envd source named", err)
	}
}

func TestBases(t *testing.T) {
	f := mustFixture(t)
	if bases, err := f.b.Bases(); err != nil || len(bases) != 0 {
		t.Fatalf("empty data dir: %v, %v", bases, err)
	}
	built := f.mustBase(t)
	parent := filepath.Dir(f.l.BaseTemplate("minimal"))
	mustWrite(t, filepath.Join(parent, ".other.tmp-1", manifestFile), "{}")
	mustWrite(t, filepath.Join(parent, "broken", "rootfs.ext4"), "")
	bases, err := f.b.Bases()
	if err != nil {
		t.Fatal(err)
	}
	if len(bases) != 1 || *bases[0] != *built {
		t.Fatalf("bases = %+v, want [%+v]", bases, built)
	}
	os.Remove(built.Kernel)
	if bases, _ := f.b.Bases(); len(bases) != 0 {
		t.Fatalf("base without its kernel listed: %+v", bases)
	}
}

func TestBuildersTakeTurns(t *testing.T) {
	f := mustFixture(t)
	other := *f.b
	var mu sync.Mutex
	running := 0
	f.host.hook = func(_ context.Context, c command) error {
		mu.Lock()
		running++
		n := running
		mu.Unlock()
		if n > 1 {
			t.Errorf("two builds ran %s at once", c.Name)
		}
		time.Sleep(time.Millisecond)
		mu.Lock()
		running--
		mu.Unlock()
		return nil
	}
	var wg sync.WaitGroup
	for _, b := range []*Builder{f.b, &other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := b.EnsureBase(context.Background(), "minimal"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := f.host.count("make vmlinux"); n != 1 {
		t.Fatalf("kernel built %d times, want once", n)
	}
}
