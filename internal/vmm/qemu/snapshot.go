package qemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Snapshots are QEMU migrations to a file (DESIGN.md): with the capability
// x-ignore-shared, RAM in a shared memory-backend-file is left out, so the
// stream is the device state alone (tens of KB) and the memory file is the
// memory snapshot; RAM that is not shared goes into the stream.

// migrationPoll is how often a running migration's status is read.
const migrationPoll = 2 * time.Millisecond

// snapshotTimeout bounds one snapshot or restore: a stream that holds the
// guest's RAM is written at disk speed.
const snapshotTimeout = 2 * time.Minute

// migrationSetup is what both ends of a migration must agree on: whether
// shared RAM is left out of the stream (it must be when it is, and a VM
// whose RAM is shared can only load a stream with RAM without it). The
// default bandwidth cap (32 MiB/s) would make a stream with RAM crawl.
func migrationSetup(ctx context.Context, q *qmp, ignoreShared bool) error {
	if err := q.Execute(ctx, "migrate-set-capabilities", map[string]any{
		"capabilities": []map[string]any{{"capability": "x-ignore-shared", "state": ignoreShared}},
	}, nil); err != nil {
		return err
	}
	return q.Execute(ctx, "migrate-set-parameters", map[string]any{"max-bandwidth": int64(1) << 40}, nil)
}

// Snapshot implements vmm.VM.
func (v *vm) Snapshot(ctx context.Context, path, memory string) (err error) {
	ctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
	defer cancel()
	split := v.memFile && !v.memShared && memory != ""
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	defer f.Close()
	q, err := v.dial(ctx, 10*time.Second)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	defer q.Close()
	// Under x-ignore-shared a split stream lists each block's address, as
	// the restore, which ignores the then shared block, expects.
	if err := migrationSetup(ctx, q, v.memShared || split); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := q.Execute(ctx, "stop", nil, nil); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	defer func() {
		if err != nil { // let the guest run on, as it was
			if cerr := q.Execute(context.WithoutCancel(ctx), "cont", nil, nil); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
	}()
	target, splitDone := f, (<-chan error)(nil)
	if split {
		var w *os.File
		if w, splitDone, err = startSplit(f, memory); err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		defer w.Close()
		target = w
	}
	if err := q.ExecuteFD(ctx, "getfd", map[string]any{"fdname": "snapshot"}, target); err != nil {
		return fmt.Errorf("snapshot: pass file: %w", err)
	}
	if split {
		target.Close() // QEMU's copy is the writer now: its close ends the stream
	}
	err = q.Execute(ctx, "migrate", map[string]any{"uri": "fd:snapshot"}, nil)
	if err == nil {
		err = waitMigration(ctx, q, v.done)
	}
	if split {
		if err != nil {
			_ = q.Execute(context.WithoutCancel(ctx), "migrate_cancel", nil, nil)
		}
		err = errors.Join(err, <-splitDone)
	}
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return f.Close()
}

// startSplit creates the memory file and a pipe whose reader splits the
// stream written to it between state and memory (split.go). It returns
// the pipe's writer and where the split's result arrives.
func startSplit(state *os.File, memory string) (*os.File, <-chan error, error) {
	mem, err := os.OpenFile(memory, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		mem.Close()
		return nil, nil, err
	}
	// Fewer, larger writes by QEMU; a failure leaves the default size.
	_, _ = unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, 1<<20)
	done := make(chan error, 1)
	go func() {
		err := splitStream(r, state, mem, memoryBlock, true)
		if err != nil {
			// Drain, so that QEMU is not left blocked on a full pipe.
			_, _ = io.Copy(io.Discard, r)
		}
		r.Close()
		done <- errors.Join(err, mem.Close())
	}()
	return w, done, nil
}

// waitMigration polls an outgoing migration until it completes.
func waitMigration(ctx context.Context, q *qmp, done <-chan struct{}) error {
	for {
		var st struct {
			Status    string `json:"status"`
			ErrorDesc string `json:"error-desc"`
		}
		if err := q.Execute(ctx, "query-migrate", nil, &st); err != nil {
			return err
		}
		switch st.Status {
		case "completed":
			return nil
		case "failed", "cancelled":
			return fmt.Errorf("migration %s: %s", st.Status, st.ErrorDesc)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-done:
			return errors.New("qemu exited during migration")
		case <-time.After(migrationPoll):
		}
	}
}

// restore loads the device state from the inherited descriptor fd into a
// QEMU started with -incoming defer and, if run, lets the guest run.
func (v *vm) restore(ctx context.Context, fd int, withRAM, run bool) error {
	ctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
	defer cancel()
	q, err := v.dial(ctx, 10*time.Second)
	if err != nil {
		return err
	}
	defer q.Close()
	if err := migrationSetup(ctx, q, !withRAM); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := q.Execute(ctx, "migrate-incoming", map[string]any{"uri": fmt.Sprintf("fd:%d", fd)}, nil); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	for {
		var st struct {
			Status string `json:"status"`
		}
		if err := q.Execute(ctx, "query-status", nil, &st); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		switch st.Status {
		case "running":
			return nil
		case "inmigrate":
		case "paused", "postmigrate", "prelaunch":
			// Loaded; an incoming VM does not run by itself.
			if !run {
				return nil
			}
			if err := q.Execute(ctx, "cont", nil, nil); err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			return nil
		default:
			return fmt.Errorf("restore: vm is %s", st.Status)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("restore: %w", ctx.Err())
		case <-v.done:
			return errors.New("restore: qemu exited while loading the snapshot")
		case <-time.After(migrationPoll):
		}
	}
}
