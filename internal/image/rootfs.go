package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// EnsureBase builds base template name ("minimal" is the only one now) if
// missing or stale, and the kernel it boots. Only what changed is rebuilt:
// a new envd remakes rootfs.ext4 from the cached package tarball; a new
// kernel only rewrites the manifest.
func (b *Builder) EnsureBase(ctx context.Context, name string) (*Base, error) {
	r, ok := recipes()[name]
	if !ok {
		return nil, fmt.Errorf("ensure base %q: unknown base template (known: %s)", name, strings.Join(BaseNames(), ", "))
	}
	unlock, err := b.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	base, err := b.ensureBase(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("ensure base %q: %w", name, err)
	}
	return base, nil
}

func (b *Builder) ensureBase(ctx context.Context, r recipe) (*Base, error) {
	_, kernelKey, err := b.ensureKernel(ctx)
	if err != nil {
		return nil, err
	}
	goTool, err := b.goTool()
	if err != nil {
		return nil, err
	}
	if err := b.cleanLeftovers(); err != nil {
		return nil, err
	}
	dir := b.layout.BaseTemplate(r.Name)
	if err := cleanStale(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(b.layout.BuildCache(), 0o755); err != nil {
		return nil, fmt.Errorf("create build cache: %w", err)
	}
	work, err := os.MkdirTemp(b.layout.BuildCache(), tmpMarker+r.Name+"-")
	if err != nil {
		return nil, fmt.Errorf("create work dir: %w", err)
	}
	defer removeAll(work)

	envd := filepath.Join(work, "envd")
	envdSum, err := b.buildEnvd(ctx, goTool, envd)
	if err != nil {
		return nil, err
	}
	in := rootfsInputs{Packages: r.Packages, EnvdSHA256: envdSum, Files: r.Files, MinSize: r.MinSize}
	rootfsKey := in.key()
	log := b.log.With(logName, r.Name, logRootFSKey, rootfsKey)

	if m, err := readManifest(dir); err == nil && m.RootFSKey == rootfsKey && exists(filepath.Join(dir, rootfsFile)) {
		if m.KernelKey != kernelKey {
			m.KernelKey = kernelKey
			m.Key = baseKey(rootfsKey, kernelKey)
			if err := writeManifest(dir, m); err != nil {
				return nil, err
			}
			log.Info("base template now boots a new kernel", "kernel", kernelKey)
		}
		b.prog.note("base %s: up to date (%s)", r.Name, dir)
		return b.base(dir, m), nil
	}

	if err := b.check(rootfsRequirements()); err != nil {
		return nil, err
	}
	if err := b.checkRoot(); err != nil {
		return nil, err
	}
	b.prog.note("base %s: building %s", r.Name, rootfsKey)
	tarball, err := b.ensurePackages(ctx, r.Name, r.Packages)
	if err != nil {
		return nil, err
	}
	m := &manifest{
		Name: r.Name, RootFSKey: rootfsKey, KernelKey: kernelKey, Key: baseKey(rootfsKey, kernelKey),
		Suite: r.Packages.Suite, Packages: sortedPackages(r.Packages.Packages), EnvdSHA256: envdSum,
		BuilderVersion: builderVersion, VCPUs: r.VCPUs, MemoryMiB: r.MemoryMiB,
	}
	if err := b.buildRootFS(ctx, r, tarball, envd, work, dir, m); err != nil {
		return nil, err
	}
	log.Info("base template built", logKey, m.Key, logPath, dir, "size", m.SizeBytes)
	return b.base(dir, m), nil
}

func sortedPackages(p []string) []string {
	p = slices.Clone(p)
	slices.Sort(p)
	return slices.Compact(p)
}

// buildEnvd builds the guest agent from the repo, static, into dst, and
// returns its SHA-256. -trimpath and -buildvcs=false keep the binary (and
// so the rootfs key) the same for the same source, whatever the checkout.
func (b *Builder) buildEnvd(ctx context.Context, goTool, dst string) (string, error) {
	src := filepath.Join(b.repoDir, "cmd", "envd")
	if _, err := os.Stat(src); err != nil {
		return "", fmt.Errorf("build envd: no guest agent source: %w", err)
	}
	s := b.prog.step("envd: go build ./cmd/envd")
	var out strings.Builder
	err := b.run(ctx, command{
		Name: goTool,
		Args: []string{"build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", dst, "./cmd/envd"},
		Dir:  b.repoDir,
		Env:  []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64"},
		Log:  &out,
	})
	s.done(err)
	if err != nil {
		return "", fmt.Errorf("build envd: %w: %s", err, strings.TrimSpace(out.String()))
	}
	sum, err := fileSHA256(dst)
	if err != nil {
		return "", fmt.Errorf("build envd: %w", err)
	}
	return sum, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ensurePackages returns the mmdebstrap tarball for in, from the build
// cache or freshly made. It is keyed by the package list alone, so a new
// envd never downloads packages again.
func (b *Builder) ensurePackages(ctx context.Context, name string, in packageInputs) (string, error) {
	cache := b.layout.BuildCache()
	tarball := filepath.Join(cache, "debian-"+in.key()+".tar")
	if exists(tarball) {
		b.prog.note("base %s: packages cached (%s)", name, tarball)
		return tarball, nil
	}
	work, err := os.MkdirTemp(cache, tmpMarker+"debian-")
	if err != nil {
		return "", fmt.Errorf("download packages: %w", err)
	}
	defer removeAll(work)
	logPath := filepath.Join(cache, "debian-"+in.key()+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return "", fmt.Errorf("download packages: %w", err)
	}
	defer logf.Close()

	out := filepath.Join(work, "debian.tar")
	args := []string{
		"--variant=" + in.Variant,
		"--include=" + strings.Join(sortedPackages(in.Packages), ","),
		"--format=tar",
		in.Suite, out,
	}
	args = append(args, in.Sources...)
	s := b.prog.step(fmt.Sprintf("base %s: mmdebstrap %s (%s)", name, in.Suite, in.Variant))
	err = b.run(ctx, command{
		Name: "mmdebstrap", Args: args, Log: logf,
		// mmdebstrap makes its chroot under TMPDIR: keep it inside the
		// work dir, which removeAll cleans even after a kill.
		Env: []string{"TMPDIR=" + work},
		Line: func(l string) {
			if msg, ok := strings.CutPrefix(l, "I: "); ok {
				s.status("%s", msg)
			}
		},
	})
	s.done(err)
	if err != nil {
		if ctx.Err() == nil {
			b.printTail(logPath)
		}
		return "", fmt.Errorf("download packages: %w (log: %s)", err, logPath)
	}
	if err := syncFile(out); err != nil {
		return "", fmt.Errorf("download packages: %w", err)
	}
	if err := os.Rename(out, tarball); err != nil {
		return "", fmt.Errorf("download packages: %w", err)
	}
	return tarball, nil
}

// buildRootFS unpacks tarball, adds envd and r's files, makes rootfs.ext4
// and installs it with m as base template dir, atomically.
func (b *Builder) buildRootFS(ctx context.Context, r recipe, tarball, envd, work, dir string, m *manifest) error {
	root := filepath.Join(work, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	s := b.prog.step(fmt.Sprintf("base %s: unpack packages and add envd", r.Name))
	var out strings.Builder
	err := b.run(ctx, command{Name: "tar", Args: []string{
		"-xpf", tarball, "-C", root, "--numeric-owner", "--xattrs", "--xattrs-include=*",
	}, Log: &out})
	if err != nil {
		err = fmt.Errorf("unpack: %w: %s", err, strings.TrimSpace(out.String()))
	}
	if err == nil {
		err = addFiles(root, envd, r.Files)
	}
	var content int64
	if err == nil {
		content, err = contentSize(root)
	}
	s.done(err)
	if err != nil {
		return err
	}

	tmp, err := tempBeside(dir)
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	size := imageSize(content, r.MinSize)
	img := filepath.Join(tmp, rootfsFile)
	s = b.prog.step(fmt.Sprintf("base %s: mkfs.ext4 %s (%d MiB, %d MiB used)", r.Name, rootfsFile, size>>20, content>>20))
	err = b.mkfs(ctx, root, img, size)
	if err == nil {
		err = syncFile(img)
	}
	s.done(err)
	if err != nil {
		return err
	}
	m.SizeBytes, m.ContentBytes, m.BuiltAt = size, content, b.now().UTC()
	if err := writeManifest(tmp, m); err != nil {
		return err
	}
	return installDir(tmp, dir)
}

// addFiles installs envd and files into the unpacked root. Paths are
// resolved inside root (os.Root): a symlink in the image, such as an
// absolute /etc/resolv.conf link, can never make the builder write to the
// host.
func addFiles(root, envd string, files []file) error {
	data, err := os.ReadFile(envd)
	if err != nil {
		return fmt.Errorf("add envd: %w", err)
	}
	all := append(slices.Clone(files), file{Path: EnvdPath, Mode: 0o755, Data: string(data)})
	r, err := os.OpenRoot(root)
	if err != nil {
		return fmt.Errorf("add files: %w", err)
	}
	defer r.Close()
	for _, f := range all {
		rel := strings.TrimPrefix(path.Clean(f.Path), "/")
		if err := r.MkdirAll(path.Dir(rel), 0o755); err != nil {
			return fmt.Errorf("add %s: %w", f.Path, err)
		}
		if err := r.Remove(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("add %s: %w", f.Path, err)
		}
		w, err := r.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, f.Mode)
		if err != nil {
			return fmt.Errorf("add %s: %w", f.Path, err)
		}
		_, err = io.WriteString(w, f.Data)
		if err == nil {
			err = w.Chmod(f.Mode) // the umask may have trimmed it
		}
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("add %s: %w", f.Path, err)
		}
	}
	return nil
}

// contentSize is about how much space root's files take on ext4.
func contentSize(root string) (int64, error) {
	var total int64
	err := filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		total += 4096 // an inode's share and a directory block
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += (info.Size() + 4095) &^ 4095
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("measure root: %w", err)
	}
	return total, nil
}

// imageSize is the size of the ext4 image for content bytes of files: at
// least minSize, else the content with a quarter more plus 512 MiB for the
// sandbox's own writes, rounded to 64 MiB. The file is sparse, so the
// headroom costs nothing until written.
func imageSize(content, minSize int64) int64 {
	const round = 64 << 20
	size := content + content/4 + 512<<20
	size = (size + round - 1) / round * round
	return max(size, minSize)
}

// mkfs makes img, an ext4 file system of size bytes holding root's files.
// Inode tables and the journal are initialised now rather than lazily by
// the guest kernel, which would otherwise write them into every sandbox's
// copy-on-write disk after boot.
func (b *Builder) mkfs(ctx context.Context, root, img string, size int64) error {
	f, err := os.OpenFile(img, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("mkfs: %w", err)
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("mkfs: %w", err)
	}
	var out strings.Builder
	err = b.run(ctx, command{Name: "mkfs.ext4", Args: []string{
		"-q", "-F", "-L", "rootfs", "-m", "0",
		"-E", "lazy_itable_init=0,lazy_journal_init=0",
		"-d", root, img,
	}, Log: &out})
	if err != nil {
		return fmt.Errorf("mkfs: %w: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}
