package agent

import (
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/envd"
	"github.com/wrennhq/wrenn/internal/layout"
	"github.com/wrennhq/wrenn/internal/netslot"
	"github.com/wrennhq/wrenn/internal/vmm"
)

// A sandbox's whole life on this host is one lifecycle value and the moves
// the table below allows from each. Every operation asks the table whether
// it may start from where the sandbox is; every way an operation can end is
// a move the table lists. Lifecycle operations on one sandbox run one at a
// time (sandbox.op); exec and file transfers run beside them in the
// lifecycles that serve work (running, unresponsive).
//
// The usual paths:
//
//	CreateSandbox ─► starting ─► running ─► pausing ─► paused ─► resuming
//	                              │  ▲  ▲                            │
//	                misses checks │  │  └────────────────────────────┘
//	                              ▼  │ answers again
//	                          unresponsive
//	                              │ silent past the grace period
//	                              ▼
//	                           failed ─► destroying ─► gone
//
//	pool fill ─► starting ─► pooled ─► gone (a create claimed its VM)
//	running ─► snapshotting ─► gone (it is a template now)
//	running, paused ─► destroying ─► gone (DestroySandbox)
//
// Every move, and why (lifecycle_test.go checks this list against the
// table):
//
//	starting     ─► running       the guest answers
//	starting     ─► pooled        a pool member is ready
//	starting     ─► gone          the start failed; what it took is freed
//	pooled       ─► gone          a create claimed its VM
//	pooled       ─► destroying    the pool ends it
//	pooled       ─► failed        its VM exited
//	running      ─► pausing       PauseSandbox
//	running      ─► snapshotting  CreateSnapshot, or a base being warmed
//	running      ─► destroying    DestroySandbox
//	running      ─► unresponsive  the guest missed a health check
//	running      ─► failed        its VM exited
//	unresponsive ─► running       the guest answers again
//	unresponsive ─► pausing       PauseSandbox
//	unresponsive ─► destroying    DestroySandbox
//	unresponsive ─► failed        silent past the grace period, or its VM exited
//	pausing      ─► paused        written to disk; VM and slot freed
//	pausing      ─► running       the snapshot failed; the guest runs on
//	pausing      ─► failed        the guest can neither be paused nor go on
//	paused       ─► resuming      ResumeSandbox
//	paused       ─► destroying    DestroySandbox
//	paused       ─► gone          moved to the shared store (travel.go), or not taken from it whole
//	resuming     ─► running       the guest answers
//	resuming     ─► paused        no VM got to run; the snapshot is intact
//	resuming     ─► failed        the guest ran, then the resume failed
//	snapshotting ─► gone          the template is made; the sandbox is consumed
//	snapshotting ─► running       the snapshot failed; the guest runs on
//	snapshotting ─► failed        the guest can neither be saved nor go on
//	destroying   ─► gone          everything freed
//	destroying   ─► failed        a step failed; a retry runs what is left
//	failed       ─► destroying    DestroySandbox, which the control plane
//	                              sends once it has recorded the error
//
// A failed sandbox holds at most what an undo could not free; it is
// listed as not running until destroyed.
type lifecycle string

const (
	lcStarting     lifecycle = "starting"     // a create or pool fill is making its VM
	lcPooled       lifecycle = "pooled"       // a warm pool member: running, unclaimed, not listed
	lcRunning      lifecycle = "running"      // the VM runs and the guest answers
	lcUnresponsive lifecycle = "unresponsive" // the VM runs; the guest missed health checks
	lcPausing      lifecycle = "pausing"      // being written to disk
	lcPaused       lifecycle = "paused"       // on disk only: no VM, no network slot
	lcResuming     lifecycle = "resuming"     // a new VM is loading the paused state
	lcSnapshotting lifecycle = "snapshotting" // being made into a template
	lcDestroying   lifecycle = "destroying"   // being torn down
	lcFailed       lifecycle = "failed"       // the VM is gone, or cannot go on; awaiting destroy
	lcGone         lifecycle = "gone"         // destroyed, consumed, claimed or never made
)

// transitions lists, for each lifecycle, where a sandbox may move from it.
var transitions = map[lifecycle][]lifecycle{
	lcStarting:     {lcRunning, lcPooled, lcGone},
	lcPooled:       {lcGone, lcDestroying, lcFailed},
	lcRunning:      {lcPausing, lcSnapshotting, lcDestroying, lcUnresponsive, lcFailed},
	lcUnresponsive: {lcRunning, lcPausing, lcDestroying, lcFailed},
	lcPausing:      {lcPaused, lcRunning, lcFailed},
	lcPaused:       {lcResuming, lcDestroying, lcGone},
	lcResuming:     {lcRunning, lcPaused, lcFailed},
	lcSnapshotting: {lcGone, lcRunning, lcFailed},
	lcDestroying:   {lcGone, lcFailed},
	lcFailed:       {lcDestroying},
}

// serving are the lifecycles in which the guest takes commands and files.
var serving = []lifecycle{lcRunning, lcUnresponsive}

func (l lifecycle) may(next lifecycle) bool { return slices.Contains(transitions[l], next) }

// refusal is the error an operation that may not start from l returns.
func (l lifecycle) refusal() error {
	switch l {
	case lcGone, lcStarting, lcPooled:
		return wrenn.Errorf(wrenn.ENotFound, "sandbox not found on this host")
	case lcPaused, lcResuming:
		return wrenn.Errorf(wrenn.EConflict, "sandbox is paused")
	case lcPausing:
		return wrenn.Errorf(wrenn.EConflict, "sandbox is being paused")
	case lcSnapshotting:
		return wrenn.Errorf(wrenn.EConflict, "sandbox is being made into a template")
	case lcDestroying:
		return wrenn.Errorf(wrenn.EConflict, "sandbox is being destroyed")
	case lcFailed:
		return wrenn.Errorf(wrenn.EConflict, "sandbox is not running")
	}
	return wrenn.Errorf(wrenn.EConflict, "sandbox is %s", l)
}

// report is what the control plane is told of a sandbox in l; ok is false
// for sandboxes it is not told of (a create in flight, pool members).
func (l lifecycle) report(id string) (st wrenn.SandboxState, ok bool) {
	st.ID = id
	switch l {
	case lcStarting, lcPooled, lcGone:
		return st, false
	case lcRunning, lcPausing, lcSnapshotting, lcDestroying:
		st.Running = true
	case lcUnresponsive:
		st.Running, st.Unresponsive = true, true
	case lcPaused, lcResuming:
		st.Paused = true
	}
	return st, true
}

// sandbox is one sandbox this host holds.
type sandbox struct {
	id  string
	log *slog.Logger

	// op serialises lifecycle operations (create, pause, resume, snapshot,
	// destroy, a health check's verdict, the VM's death); exec and files
	// run beside them.
	op sync.Mutex

	mu    sync.Mutex // guards what follows
	lc    lifecycle
	rec   record            // what its run directory records
	dir   layout.SandboxDir // its run directory
	mach  *machine          // what its VM holds; nil when no VM runs
	since time.Time         // unresponsive since
	want  need              // its size, before rec has it (admit.go)
}

// machine is what a sandbox's running VM holds. release frees all of it,
// newest first: the guest agent session, the VM, the network slot.
type machine struct {
	vm      vmm.VM
	envd    *envd.Client
	bulk    *envd.Bulk // the bulk data channel (bulk.go); nil without the port
	slot    *netslot.Slot
	net     wrenn.SandboxNet
	release cleanup
}

func newSandbox(id string, dir layout.SandboxDir, log *slog.Logger, lc lifecycle) *sandbox {
	return &sandbox{id: id, dir: dir, lc: lc, log: log.With(slog.String(attrSandboxID, id))}
}

// begin starts the lifecycle operation that moves sb to next, if the table
// allows it from where sb is, and returns the VM's resources and the
// record. Call with sb.op held.
func (sb *sandbox) begin(next lifecycle) (*machine, record, error) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if !sb.lc.may(next) {
		return nil, record{}, sb.lc.refusal()
	}
	sb.lc = next
	return sb.mach, sb.rec, nil
}

// move ends an operation (or a step of one) in next. The table says where
// each lifecycle may go; a move it does not list is a bug, logged loudly.
func (sb *sandbox) move(next lifecycle) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	sb.moveLocked(next)
}

func (sb *sandbox) moveLocked(next lifecycle) {
	if !sb.lc.may(next) {
		sb.log.Error("illegal lifecycle transition", slog.String("from", string(sb.lc)), slog.String("to", string(next)))
	}
	sb.lc = next
}

// lifecycle is where sb is now.
func (sb *sandbox) lifecycle() lifecycle {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return sb.lc
}

// client is the guest agent session of a sandbox that serves work.
func (sb *sandbox) client() (*envd.Client, error) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if !slices.Contains(serving, sb.lc) || sb.mach == nil || sb.mach.envd == nil {
		return nil, sb.lc.refusal()
	}
	return sb.mach.envd, nil
}

// run makes sb a sandbox whose VM runs m, recording rec. Call from an
// operation that may move to running (or, for a pool member, pooled).
func (sb *sandbox) run(m *machine, rec record, lc lifecycle) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	sb.mach, sb.rec = m, rec
	sb.moveLocked(lc)
}
