package agent

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/layout"
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

func (m *Manager) warmKey(ctx context.Context, b Base) (string, bool) {
	f, ok := m.cfg.Driver.(Fingerprinter)
	if !ok {
		return "", false
	}
	h := sha256.New()
	fmt.Fprintf(h, "warm v1\n%s\n%s\n%d %d\n%s\n%s\n", b.RootFS, b.Kernel, WarmVCPUs, WarmMemoryMB,
		m.cfg.Driver.Name(), f.Fingerprint(ctx, b.Kernel))
	return hex.EncodeToString(h.Sum(nil))[:32], true
}

// warmSnapshot returns the warm snapshot of base at these sizes, or "".
func (m *Manager) warmSnapshot(base string, vcpus, memoryMB int) layout.TemplateDir {
	if vcpus != WarmVCPUs || memoryMB != WarmMemoryMB {
		return ""
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.warmDirs[base]
}

// Warm makes sure every base has a warm snapshot, booting and snapshotting
// those that have none. A base that cannot be warmed is logged and boots.
func (m *Manager) Warm(ctx context.Context) {
	for _, b := range m.cfg.Bases {
		key, ok := m.warmKey(ctx, b)
		if !ok {
			return
		}
		dir := m.cfg.Layout.WarmSnapshot(key)
		if _, err := readTemplateMeta(dir); err != nil {
			start := time.Now()
			if err := m.makeWarm(ctx, b, dir); err != nil {
				m.log.Warn("base will boot on every create: no warm snapshot", slog.String("base", b.Name), slog.Any(attrError, err))
				continue
			}
			m.log.Info("base warmed: creates restore a snapshot", slog.String("base", b.Name), slog.String("key", key),
				slog.Duration("took", time.Since(start)))
		}
		m.mu.Lock()
		m.warmDirs[b.Name] = dir
		m.mu.Unlock()
	}
}

// makeWarm boots b and snapshots it into dir.
func (m *Manager) makeWarm(ctx context.Context, b Base, dir layout.TemplateDir) error {
	id := "sb-warm-" + strings.ToLower(rand.Text()[:16])
	spec := wrenn.SandboxSpec{ID: id, Template: b.Name, VCPUs: WarmVCPUs, MemoryMB: WarmMemoryMB}
	if _, err := m.CreateSandbox(ctx, spec); err != nil {
		return err
	}
	if _, err := m.snapshotTo(ctx, id, dir, m.cfg.Now().UTC()); err != nil {
		if derr := m.DestroySandbox(context.WithoutCancel(ctx), id); derr != nil {
			m.log.Error("remove warm-up sandbox", slog.Any(attrError, derr))
		}
		return err
	}
	return nil
}
