package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/layout"
)

// record is what a sandbox's run directory records (state.json), so that
// a restarted agent can adopt the VM, or keep the sandbox paused.
type record struct {
	ID       string `json:"id"`
	TeamID   string `json:"team_id"`
	Template string `json:"template"`
	Base     string `json:"base"` // the base template its disk chain ends in
	VCPUs    int    `json:"vcpus"`
	MemoryMB int    `json:"memory_mb"`
	Kernel   string `json:"kernel"`
	Driver   string `json:"driver"`
	PID      int    `json:"pid"`
	Slot     int    `json:"slot"`
	// OwnMemory: guest RAM is the sandbox's own shared file; otherwise a
	// private mapping of its template's memory.
	OwnMemory bool `json:"own_memory"`
	// FromSnapshot: restored from a template (a team's or a base's warm
	// snapshot); the root disk is an overlay over TemplateDisk.
	FromSnapshot bool `json:"from_snapshot,omitempty"`
	// Paused: no VM runs; VMState holds the device state (and, without
	// OwnMemory, the RAM) to resume from.
	Paused bool `json:"paused,omitempty"`
	// Pool: a sandbox of the agent's own, which a new agent ends rather
	// than adopts: a warm pool member no create has claimed yet (pool.go),
	// or a base being warmed (warm.go).
	Pool bool `json:"pool,omitempty"`
	// Resuming: a resume began. Once the guest has run, memory and disk
	// no longer match the snapshot, so an agent that finds this set after
	// a crash cannot trust the paused state and gives the sandbox up.
	Resuming bool `json:"resuming,omitempty"`
	// Network is the sandbox's egress policy; nil for the agent's own
	// sandboxes, whose slots reach nothing.
	Network   *wrenn.Network `json:"network,omitempty"`
	CreatedAt time.Time      `json:"created_at"`
	// DataPort: the VM has the bulk data port (bulk.go).
	DataPort bool `json:"data_port,omitempty"`
}

func writeRecord(dir layout.SandboxDir, rec record) error {
	return writeJSONFile(dir.State(), rec)
}

func readRecord(dir layout.SandboxDir) (record, error) {
	var rec record
	b, err := os.ReadFile(dir.State())
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("decode %s: %w", dir.State(), err)
	}
	return rec, nil
}

// writeJSONFile replaces path with v's JSON, atomically.
func writeJSONFile(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

// templateMeta is a snapshot template's meta.json.
type templateMeta struct {
	Base      string    `json:"base"`
	Kernel    string    `json:"kernel"`
	VCPUs     int       `json:"vcpus"`
	MemoryMB  int       `json:"memory_mb"`
	CreatedAt time.Time `json:"created_at"`
	// DataPort: the snapshot's VM had the bulk data port (bulk.go), so
	// VMs restored from it have it too.
	DataPort bool `json:"data_port,omitempty"`
}

func readTemplateMeta(d layout.TemplateDir) (templateMeta, error) {
	var meta templateMeta
	b, err := os.ReadFile(d.Meta())
	if errors.Is(err, fs.ErrNotExist) {
		return meta, wrenn.Errorf(wrenn.EInvalid, "template %q is not available on this host", filepath.Base(d.Path()))
	}
	if err != nil {
		return meta, fmt.Errorf("read template: %w", err)
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		return meta, fmt.Errorf("read template %s: %w", d.Meta(), err)
	}
	return meta, nil
}
