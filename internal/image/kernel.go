package image

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// kernelBuildLines is about how many kbuild lines ("  CC  kernel/fork.o")
// `make vmlinux` prints for this config; it only scales the progress.
const kernelBuildLines = 1550

// kernelManifest sits beside vmlinux and says what it was built from.
type kernelManifest struct {
	Key            string    `json:"key"`
	SourceVersion  string    `json:"source_version"`
	BuiltAt        time.Time `json:"built_at"`
	BuilderVersion string    `json:"builder_version"`
}

// EnsureKernel builds the kernel if missing or stale and returns the
// vmlinux path.
func (b *Builder) EnsureKernel(ctx context.Context) (string, error) {
	unlock, err := b.lock(ctx)
	if err != nil {
		return "", err
	}
	defer unlock()
	path, _, err := b.ensureKernel(ctx)
	return path, err
}

// ensureKernel returns the vmlinux for the current inputs and its key,
// building it first if needed. The caller holds the lock.
func (b *Builder) ensureKernel(ctx context.Context) (path, key string, err error) {
	version, err := b.sourceVersion(ctx)
	if err != nil {
		return "", "", fmt.Errorf("ensure kernel: %w", err)
	}
	key = kernelInputs{SourceVersion: version, Fragment: b.fragment}.key()
	path = b.layout.Kernel(key)
	log := b.log.With(logKey, key)
	if exists(path) {
		log.Debug("kernel up to date", logPath, path)
		b.prog.note("kernel %s: up to date", key)
		return path, key, nil
	}
	if err := b.check(kernelRequirements(b.kernelSource)); err != nil {
		return "", "", fmt.Errorf("ensure kernel: %w", err)
	}
	if err := b.cleanLeftovers(); err != nil {
		return "", "", fmt.Errorf("ensure kernel: %w", err)
	}
	start := b.now()
	b.prog.note("kernel %s: building from linux-source-6.1 %s", key, version)
	if err := b.buildKernel(ctx, key, version); err != nil {
		return "", "", fmt.Errorf("ensure kernel: %w", err)
	}
	log.Info("kernel built", logPath, path, "took", b.now().Sub(start).Round(time.Second))
	return path, key, nil
}

// buildKernel builds vmlinux in a work dir under the build cache and
// installs it as layout.Kernel(key). Its full output goes to a log file in
// the build cache, named in the error when it fails.
func (b *Builder) buildKernel(ctx context.Context, key, version string) (err error) {
	cache := b.layout.BuildCache()
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return fmt.Errorf("create build cache: %w", err)
	}
	logPath := filepath.Join(cache, "kernel-"+key+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("create build log: %w", err)
	}
	defer logf.Close()
	defer func() {
		if err != nil {
			b.prog.printf("    full log: %s", logPath)
			err = fmt.Errorf("%w (log: %s)", err, logPath)
		}
	}()

	work, err := os.MkdirTemp(cache, tmpMarker+"kernel-")
	if err != nil {
		return fmt.Errorf("create work dir: %w", err)
	}
	defer removeAll(work)
	src := filepath.Join(work, "linux")
	if err := os.Mkdir(src, 0o755); err != nil {
		return fmt.Errorf("create work dir: %w", err)
	}

	steps := []struct {
		name string
		fn   func(context.Context, *step) error
	}{
		{"kernel: unpack " + filepath.Base(b.kernelSource), func(ctx context.Context, s *step) error {
			return b.run(ctx, command{Name: "tar", Args: []string{"-xJf", b.kernelSource, "-C", src,
				"--strip-components=1", "--no-same-owner"}, Log: logf})
		}},
		{"kernel: configure (tinyconfig + kernel.config)", func(ctx context.Context, s *step) error {
			return b.configureKernel(ctx, src, logf)
		}},
		{fmt.Sprintf("kernel: compile vmlinux (make -j%d)", b.jobs), func(ctx context.Context, s *step) error {
			return b.compileKernel(ctx, s, src, logf)
		}},
		{"kernel: install", func(ctx context.Context, s *step) error {
			return b.installKernel(src, key, version)
		}},
	}
	for _, st := range steps {
		s := b.prog.step(st.name)
		err := st.fn(ctx, s)
		s.done(err)
		if err != nil {
			if ctx.Err() == nil {
				b.printTail(logPath)
			}
			return fmt.Errorf("%s: %w", st.name, err)
		}
	}
	return nil
}

// kbuildEnv makes the build independent of who builds it and when.
func kbuildEnv() []string {
	return []string{
		"ARCH=x86_64",
		"KBUILD_BUILD_USER=wrenn",
		"KBUILD_BUILD_HOST=wrenn",
		"KBUILD_BUILD_TIMESTAMP=" + builderVersion,
		"KBUILD_BUILD_VERSION=1",
	}
}

// configureKernel writes .config: tinyconfig, then kernel.config merged
// over it, then olddefconfig to settle dependencies. Every option the
// fragment asks for must survive, or the build stops here rather than
// produce a kernel that doesn't boot.
func (b *Builder) configureKernel(ctx context.Context, src string, logf io.Writer) error {
	frag := filepath.Join(src, "wrenn.config")
	if err := os.WriteFile(frag, b.fragment, 0o644); err != nil {
		return fmt.Errorf("write fragment: %w", err)
	}
	cmds := []command{
		{Name: "make", Args: []string{"tinyconfig"}},
		{Name: "scripts/kconfig/merge_config.sh", Args: []string{"-m", ".config", "wrenn.config"}},
		{Name: "make", Args: []string{"olddefconfig"}},
	}
	for _, c := range cmds {
		c.Dir, c.Env, c.Log = src, kbuildEnv(), logf
		if err := b.run(ctx, c); err != nil {
			return err
		}
	}
	got, err := os.ReadFile(filepath.Join(src, ".config"))
	if err != nil {
		return fmt.Errorf("read .config: %w", err)
	}
	if bad := configMismatches(b.fragment, got); len(bad) > 0 {
		return fmt.Errorf("kernel.config options not in the final .config (unmet dependencies?): %s",
			strings.Join(bad, ", "))
	}
	return nil
}

// configMismatches returns the fragment's settings the final config lacks.
func configMismatches(fragment, config []byte) []string {
	have := map[string]string{}
	for _, l := range strings.Split(string(config), "\n") {
		if name, val, ok := parseConfigLine(l); ok {
			have[name] = val
		}
	}
	var bad []string
	for _, l := range strings.Split(string(fragment), "\n") {
		name, want, ok := parseConfigLine(l)
		if !ok {
			continue
		}
		got, set := have[name]
		if !set {
			got = "n"
		}
		if got != want {
			bad = append(bad, fmt.Sprintf("%s=%s (got %s)", name, want, got))
		}
	}
	return bad
}

// parseConfigLine reads "CONFIG_X=v" or "# CONFIG_X is not set" (as "n").
func parseConfigLine(l string) (name, val string, ok bool) {
	l = strings.TrimSpace(l)
	if rest, found := strings.CutPrefix(l, "# "); found {
		if n, found := strings.CutSuffix(rest, " is not set"); found && strings.HasPrefix(n, "CONFIG_") {
			return n, "n", true
		}
		return "", "", false
	}
	if !strings.HasPrefix(l, "CONFIG_") {
		return "", "", false
	}
	name, val, ok = strings.Cut(l, "=")
	return name, val, ok
}

// compileKernel runs make vmlinux, turning kbuild's output into a status
// line (what it is compiling, how far along it is).
func (b *Builder) compileKernel(ctx context.Context, s *step, src string, logf io.Writer) error {
	n := 0
	return b.run(ctx, command{
		Name: "make", Args: []string{fmt.Sprintf("-j%d", b.jobs), "vmlinux"},
		Dir: src, Env: kbuildEnv(), Log: logf,
		Line: func(l string) {
			verb, obj, ok := kbuildLine(l)
			if !ok {
				return
			}
			n++
			pct := min(99, n*100/kernelBuildLines)
			s.status("%3d%% %-7s %s", pct, verb, obj)
		},
	})
}

// kbuildLine parses kbuild's quiet output, "  CC      kernel/fork.o".
func kbuildLine(l string) (verb, obj string, ok bool) {
	if !strings.HasPrefix(l, "  ") {
		return "", "", false
	}
	f := strings.Fields(l)
	if len(f) != 2 || strings.ToUpper(f[0]) != f[0] {
		return "", "", false
	}
	return f[0], f[1], true
}

// installKernel moves vmlinux and its .config into layout.Kernel(key)'s
// directory, atomically.
func (b *Builder) installKernel(src, key, version string) error {
	target := filepath.Dir(b.layout.Kernel(key))
	tmp, err := tempBeside(target)
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, f := range []struct{ from, to string }{
		{filepath.Join(src, "vmlinux"), filepath.Base(b.layout.Kernel(key))},
		{filepath.Join(src, ".config"), "config"},
	} {
		if err := copyFile(f.from, filepath.Join(tmp, f.to), 0o644); err != nil {
			return err
		}
	}
	m := kernelManifest{Key: key, SourceVersion: version, BuiltAt: b.now().UTC(), BuilderVersion: builderVersion}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("write kernel manifest: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, manifestFile), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write kernel manifest: %w", err)
	}
	return installDir(tmp, target)
}

// copyFile copies a regular file and flushes the copy to disk.
func copyFile(from, to string, mode os.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return fmt.Errorf("copy %s: %w", from, err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("copy %s: %w", from, err)
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy %s: %w", from, err)
	}
	return nil
}

// printTail shows the end of a failed build's log on the progress writer.
func (b *Builder) printTail(path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		return
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	for _, l := range lines {
		b.prog.printf("    | %s", l)
	}
}
