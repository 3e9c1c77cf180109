package image

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/wrennhq/wrenn/internal/layout"
)

//go:embed kernel.config
var kernelFragment []byte

// Log attribute keys.
const (
	logKey       = "key"
	logRootFSKey = "rootfs_key"
	logName      = "base"
	logPath      = "path"
)

// Config is what a Builder needs.
type Config struct {
	Layout   layout.Layout
	RepoDir  string       // where ./cmd/envd is built from (the module root)
	Logger   *slog.Logger // nil: discard
	Progress io.Writer    // human-readable progress; nil = quiet

	Now  func() time.Time // nil: time.Now
	Jobs int              // parallel compile jobs for the kernel; 0: one per CPU
}

// Builder builds guest kernels and base templates into a data dir. Its
// methods may be called from several goroutines or processes: builds on
// one data dir take turns.
type Builder struct {
	layout  layout.Layout
	repoDir string
	log     *slog.Logger
	prog    *progress
	now     func() time.Time
	jobs    int

	fragment     []byte
	kernelSource string

	// The outside world, replaced by unit tests.
	run           runner
	lookPath      func(string) (string, error)
	fileExists    func(string) bool
	euid          func() int
	sourceVersion func(ctx context.Context) (string, error)
}

// NewBuilder returns a builder for c.Layout.
func NewBuilder(c Config) *Builder {
	b := &Builder{
		layout:        c.Layout,
		repoDir:       c.RepoDir,
		log:           c.Logger,
		now:           c.Now,
		jobs:          c.Jobs,
		fragment:      kernelFragment,
		kernelSource:  kernelSourcePath,
		run:           execRun,
		lookPath:      exec.LookPath,
		fileExists:    exists,
		euid:          os.Geteuid,
		sourceVersion: debianSourceVersion,
	}
	if abs, err := filepath.Abs(b.repoDir); err == nil {
		b.repoDir = abs // go build runs there; -o and error messages want it whole
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.jobs <= 0 {
		b.jobs = runtime.NumCPU()
	}
	b.prog = newProgress(c.Progress, b.now)
	return b
}

// debianSourceVersion is the installed version of linux-source-6.1: the
// kernel's main input besides the config.
func debianSourceVersion(ctx context.Context) (string, error) {
	v, err := commandOutput(ctx, "dpkg-query", "-W", "-f=${Version}", "linux-source-6.1")
	if err != nil {
		return "", fmt.Errorf("%w: linux-source-6.1 (package linux-source-6.1): %v", ErrMissingTools, err)
	}
	return v, nil
}

// Base is a built base template.
type Base struct {
	Name      string
	Dir       string
	RootFS    string // the ext4 image, raw; back sandbox disks with it read-only
	Kernel    string // the vmlinux it boots
	SizeBytes int64  // size of RootFS (its virtual size: the file is sparse)
	Key       string // changes whenever RootFS or Kernel does
	BuiltAt   time.Time
	VCPUs     int // defaults for sandboxes made from it
	MemoryMiB int
}

// Names of the files in a base template's directory.
const (
	rootfsFile   = "rootfs.ext4"
	manifestFile = "manifest.json"
)

// manifest is a base template's manifest.json.
type manifest struct {
	Name           string    `json:"name"`
	Key            string    `json:"key"`
	RootFSKey      string    `json:"rootfs_key"`
	KernelKey      string    `json:"kernel_key"`
	SizeBytes      int64     `json:"size_bytes"`
	ContentBytes   int64     `json:"content_bytes"`
	Suite          string    `json:"suite"`
	Packages       []string  `json:"packages"`
	EnvdSHA256     string    `json:"envd_sha256"`
	BuiltAt        time.Time `json:"built_at"`
	BuilderVersion string    `json:"builder_version"`
	VCPUs          int       `json:"vcpus"`
	MemoryMiB      int       `json:"memory_mib"`
}

func readManifest(dir string) (*manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, manifestFile))
	if err != nil {
		return nil, err
	}
	var m manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(dir, manifestFile), err)
	}
	return &m, nil
}

func writeManifest(dir string, m *manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, manifestFile), append(data, '\n'), 0o644)
}

func (b *Builder) base(dir string, m *manifest) *Base {
	return &Base{
		Name:      m.Name,
		Dir:       dir,
		RootFS:    filepath.Join(dir, rootfsFile),
		Kernel:    b.layout.Kernel(m.KernelKey),
		SizeBytes: m.SizeBytes,
		Key:       m.Key,
		BuiltAt:   m.BuiltAt,
		VCPUs:     m.VCPUs,
		MemoryMiB: m.MemoryMiB,
	}
}

// Bases lists the base templates already built, without building
// anything. A base whose files are missing is left out (and logged).
func (b *Builder) Bases() ([]*Base, error) {
	parent := filepath.Dir(b.layout.BaseTemplate("x"))
	entries, err := os.ReadDir(parent)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list bases: %w", err)
	}
	var out []*Base
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		dir := b.layout.BaseTemplate(e.Name())
		m, err := readManifest(dir)
		if err != nil {
			b.log.Warn("skipping base template", logName, e.Name(), "err", err)
			continue
		}
		base := b.base(dir, m)
		if missing := firstMissing(base.RootFS, base.Kernel); missing != "" {
			b.log.Warn("skipping base template: file missing", logName, e.Name(), logPath, missing)
			continue
		}
		out = append(out, base)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func firstMissing(paths ...string) string {
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return p
		}
	}
	return ""
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// cleanLeftovers removes what interrupted builds left. Call with the lock.
func (b *Builder) cleanLeftovers() error {
	return errors.Join(
		cleanStale(filepath.Dir(filepath.Dir(b.layout.Kernel("x")))),
		cleanStale(filepath.Dir(b.layout.BaseTemplate("x"))),
		cleanStale(b.layout.BuildCache()),
	)
}

// Pin returns a path to b's root disk that stays this image for as long
// as the path exists: a rebuild of the base replaces its directory, and
// copy-on-write disks and snapshots made over the old image must keep
// reading it. The path is a hard link named by b's key.
func (b *Base) Pin(l layout.Layout) (string, error) {
	pinned := l.PinnedRootFS(b.Key)
	if _, err := os.Stat(pinned); err == nil {
		return pinned, nil
	}
	if err := os.MkdirAll(filepath.Dir(pinned), 0o755); err != nil {
		return "", fmt.Errorf("pin base %s: %w", b.Name, err)
	}
	tmp := pinned + ".tmp-" + rand.Text() // other processes may pin at once
	if err := os.Link(b.RootFS, tmp); err != nil {
		return "", fmt.Errorf("pin base %s: %w", b.Name, err)
	}
	if err := os.Rename(tmp, pinned); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("pin base %s: %w", b.Name, err)
	}
	return pinned, nil
}
