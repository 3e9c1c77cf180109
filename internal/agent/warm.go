package agent

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/wrennhq/wrenn/internal/layout"
	"github.com/wrennhq/wrenn/internal/vmm"
)

// Every create from a base template at the default sizes is a restore: the
// base is booted once, snapshotted, and kept under images/warm/<key>,
// where the key covers everything the snapshot depends on (root disk,
// kernel, sizes, the VMM and how it runs guests). Other sizes boot.

// Sizes a base is kept warm at: the API's defaults.
const (
	WarmVCPUs    = 1
	WarmMemoryMB = 512
)

// Fingerprinter is a VMM driver that can say what a snapshot it takes
// depends on besides the VM's configuration (its version, accelerator and
// CPU model), so that a snapshot is never restored where it cannot run.
type Fingerprinter interface {
	Fingerprint(ctx context.Context, kernel string) string
}

// warmHost boots a base and snapshots it: the Manager.
type warmHost interface {
	makeWarm(ctx context.Context, b Base, dir layout.TemplateDir) error
}

// warmer keeps each base's warm snapshot: it makes the missing ones and
// says which to restore.
type warmer struct {
	l      layout.Layout
	driver vmm.Driver
	bases  []Base
	log    *slog.Logger
	host   warmHost

	mu   sync.Mutex
	dirs map[string]layout.TemplateDir // base name → its warm snapshot
}

func (w *warmer) key(ctx context.Context, b Base) (string, bool) {
	f, ok := w.driver.(Fingerprinter)
	if !ok {
		return "", false
	}
	h := sha256.New()
	// v2: VMs gained the bulk data port (bulk.go), a device the v1
	// snapshots lack.
	fmt.Fprintf(h, "warm v2\n%s\n%s\n%d %d\n%s\n%s\n", b.RootFS, b.Kernel, WarmVCPUs, WarmMemoryMB,
		w.driver.Name(), f.Fingerprint(ctx, b.Kernel))
	return hex.EncodeToString(h.Sum(nil))[:32], true
}

// snapshot returns the warm snapshot of base at these sizes, or "".
func (w *warmer) snapshot(base string, vcpus, memoryMB int) layout.TemplateDir {
	if vcpus != WarmVCPUs || memoryMB != WarmMemoryMB {
		return ""
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dirs[base]
}

// current is every warm snapshot in use.
func (w *warmer) current() []layout.TemplateDir {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]layout.TemplateDir, 0, len(w.dirs))
	for _, d := range w.dirs {
		out = append(out, d)
	}
	return out
}

func (w *warmer) set(base string, dir layout.TemplateDir) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dirs == nil {
		w.dirs = make(map[string]layout.TemplateDir)
	}
	w.dirs[base] = dir
}

// ensure makes sure every base has a warm snapshot, booting and
// snapshotting those that have none. A base that cannot be warmed is
// logged and boots.
func (w *warmer) ensure(ctx context.Context) {
	for _, b := range w.bases {
		key, ok := w.key(ctx, b)
		if !ok {
			return
		}
		dir := w.l.WarmSnapshot(key)
		if _, err := readTemplateMeta(dir); err != nil {
			start := time.Now()
			if err := w.host.makeWarm(ctx, b, dir); err != nil {
				w.log.Warn("base will boot on every create: no warm snapshot", slog.String("base", b.Name), slog.Any(attrError, err))
				continue
			}
			w.log.Info("base warmed: creates restore a snapshot", slog.String("base", b.Name), slog.String("key", key),
				slog.Duration("took", time.Since(start)))
		}
		w.set(b.Name, dir)
	}
}

// Warm makes sure every base has a warm snapshot (warmer.ensure).
func (m *Manager) Warm(ctx context.Context) { m.warm.ensure(ctx) }

// makeWarm boots b at the warm sizes in a sandbox of the agent's own, not
// listed to the control plane, and snapshots it into dir.
func (m *Manager) makeWarm(ctx context.Context, b Base, dir layout.TemplateDir) error {
	id := "warm-" + strings.ToLower(rand.Text()[:16])
	rec := record{ID: id, Template: b.Name, Base: b.Name, Kernel: b.Kernel, VCPUs: WarmVCPUs, MemoryMB: WarmMemoryMB,
		Driver: m.cfg.Driver.Name(), OwnMemory: true, Pool: true, CreatedAt: m.cfg.Now().UTC()}
	sb := newSandbox(id, m.cfg.Layout.Sandbox(id), m.log, lcStarting)
	sb.op.Lock()
	defer sb.op.Unlock()
	mach, err := m.start(ctx, sb.dir, &rec, origin{base: b})
	if err != nil {
		return err
	}
	sb.run(mach, rec, lcRunning)
	if _, err := m.snapshotTo(ctx, sb, dir, m.cfg.Now().UTC()); err != nil {
		logErr(sb.log, "remove warm-up sandbox", m.destroy(context.WithoutCancel(ctx), sb))
		return err
	}
	return nil
}
