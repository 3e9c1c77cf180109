package control

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wrennhq/wrenn"
)

// What a sandbox's inactivity timeout does is a property of the sandbox
// (wrenn.Sandbox.AutoPause): destroy it, leaving its record stopped, or
// pause it. A sandbox its timeout paused (AutoPaused) resumes by itself in
// the next operation that needs it running (running), inside that call; one
// a client paused stays paused until a client resumes it.
//
// The lifecycle changes of one sandbox that the control plane starts by
// itself (an automatic pause, an automatic resume) and those clients ask
// for (pause, resume, destroy) are serialised by a lock per sandbox, so
// that an operation arriving while its sandbox is being paused waits for
// the pause and then resumes it, rather than reaching a VM on its way to
// disk.

// keyedMutex is a mutex per key, held only while in use.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

// lock locks key and returns its unlock.
func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = make(map[string]*keyedEntry)
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}

// AutoPause pauses a running sandbox its inactivity timeout has passed,
// unless it has been active after idleSince. The record moves first, to
// paused by its timeout, only if it is still idle there (an operation of
// any control plane that marked it active since keeps it running); should
// the host fail to pause it, the record goes back to running and the next
// pass tries again.
func (s *Service) AutoPause(ctx context.Context, sb *wrenn.Sandbox, idleSince, now time.Time) {
	log := s.log.With(slog.String(attrSandboxID, sb.ID), slog.String(attrTeamID, sb.TeamID))
	agent, err := s.snapshotterFor(ctx, sb.HostID)
	if err != nil {
		log.WarnContext(ctx, "pause idle sandbox", slog.Any(attrError, err))
		return
	}
	unlock := s.lifecycle.lock(sb.ID)
	defer unlock()
	if _, err := s.sandboxes.PauseIdleSandbox(ctx, sb.TeamID, sb.ID, idleSince, now); err != nil {
		if c := wrenn.ErrorCode(err); c != wrenn.EConflict && c != wrenn.ENotFound {
			log.ErrorContext(ctx, "record idle sandbox paused", slog.Any(attrError, err))
		}
		return // active again, or someone else moved it on
	}
	if err := agent.PauseSandbox(ctx, sb.ID); err != nil {
		log.ErrorContext(ctx, "pause idle sandbox", slog.Any(attrError, err))
		if _, err := s.sandboxes.TransitionSandbox(context.WithoutCancel(ctx), sb.TeamID, sb.ID,
			[]wrenn.SandboxStatus{wrenn.StatusPaused}, wrenn.StatusRunning, s.nowUTC()); err != nil {
			log.ErrorContext(ctx, "record sandbox running again after a failed pause", slog.Any(attrError, err))
		}
		return
	}
	log.InfoContext(ctx, "idle sandbox paused", slog.Int("timeout_sec", sb.TimeoutSec))
}

// Bounds on a create's envs and metadata: labels and settings, not a
// place to keep data.
const (
	maxMapEntries  = 64
	maxMapKeyLen   = 256
	maxMapValueLen = 4096
	maxMapBytes    = 64 << 10
)

// checkStringMap validates a create's envs or metadata (what names the
// field); env says the keys are environment variable names.
func checkStringMap(what string, m map[string]string, env bool) error {
	if len(m) > maxMapEntries {
		return wrenn.Errorf(wrenn.EInvalid, "%s: at most %d entries", what, maxMapEntries)
	}
	total := 0
	for k, v := range m {
		total += len(k) + len(v)
		switch {
		case k == "":
			return wrenn.Errorf(wrenn.EInvalid, "%s: a key is empty", what)
		case len(k) > maxMapKeyLen:
			return wrenn.Errorf(wrenn.EInvalid, "%s: key %.40q… is longer than %d bytes", what, k, maxMapKeyLen)
		case len(v) > maxMapValueLen:
			return wrenn.Errorf(wrenn.EInvalid, "%s: the value of %q is longer than %d bytes", what, k, maxMapValueLen)
		case strings.ContainsRune(k, 0) || strings.ContainsRune(v, 0):
			return wrenn.Errorf(wrenn.EInvalid, "%s: %q holds a NUL byte", what, k)
		case env && strings.ContainsRune(k, '='):
			return wrenn.Errorf(wrenn.EInvalid, "%s: %q is not a variable name (it holds '=')", what, k)
		}
	}
	if total > maxMapBytes {
		return wrenn.Errorf(wrenn.EInvalid, "%s: more than %d bytes in all", what, maxMapBytes)
	}
	return nil
}

// withDefaults returns env over the sandbox's default environment: a
// command's own variables win.
func withDefaults(defaults, env map[string]string) map[string]string {
	if len(defaults) == 0 {
		return env
	}
	out := maps.Clone(defaults)
	maps.Copy(out, env)
	return out
}

// ListFilter narrows a list of sandboxes.
type ListFilter struct {
	// Statuses: only these; none means every status but stopped (a
	// destroyed sandbox is kept, stopped, for a while, but is not news).
	Statuses []wrenn.SandboxStatus
	// Metadata: only sandboxes whose metadata has every one of these.
	Metadata map[string]string
}

// ListSandboxes returns the team's sandboxes that f lets through, newest
// first.
func (s *Service) ListSandboxes(ctx context.Context, teamID string, f ListFilter) ([]*wrenn.Sandbox, error) {
	statuses := f.Statuses
	if len(statuses) == 0 {
		statuses = []wrenn.SandboxStatus{wrenn.StatusPending, wrenn.StatusRunning, wrenn.StatusPaused, wrenn.StatusError,
			wrenn.StatusMissing}
	}
	for _, st := range statuses {
		if !slices.Contains(allStatuses, st) {
			return nil, wrenn.Errorf(wrenn.EInvalid, "status %q is not one of %s", st, statusNames())
		}
	}
	sbs, err := s.sandboxes.ListSandboxes(ctx, teamID, statuses...)
	if err != nil {
		return nil, err
	}
	if len(f.Metadata) == 0 {
		return sbs, nil
	}
	return slices.DeleteFunc(sbs, func(sb *wrenn.Sandbox) bool {
		for k, v := range f.Metadata {
			if got, ok := sb.Metadata[k]; !ok || got != v {
				return true
			}
		}
		return false
	}), nil
}

var allStatuses = []wrenn.SandboxStatus{wrenn.StatusPending, wrenn.StatusRunning, wrenn.StatusPaused,
	wrenn.StatusStopped, wrenn.StatusError, wrenn.StatusMissing}

func statusNames() string {
	names := make([]string, len(allStatuses))
	for i, st := range allStatuses {
		names[i] = string(st)
	}
	return strings.Join(names, ", ")
}

// describe is for error messages.
func describe(sb *wrenn.Sandbox) string {
	if sb.Status == wrenn.StatusPaused && sb.AutoPaused {
		return "paused by its inactivity timeout"
	}
	return fmt.Sprint(sb.Status)
}
