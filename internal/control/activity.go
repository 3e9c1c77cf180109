package control

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/wrennhq/wrenn"
)

// A sandbox's inactivity timeout counts from its last activity: a request
// on it, and every moment that an operation of it (a command, blocking or
// streamed, a file transfer, whatever comes later) runs. Activity is kept
// in one place, the record's last_active_at, so the reconciler of every
// control plane sharing the store sees the operations of all of them. An
// operation marks its sandbox active when it starts (running), again and
// again while it runs, and once more when it ends (busy).

// maxKeepAlive bounds the time between two marks of a running operation.
const maxKeepAlive = time.Minute

// keepAliveInterval is how often a running operation marks a sandbox with
// the given timeout active: a third of the timeout, so a mark may be late
// or lost and the next still comes in time. 0 means never: without a
// timeout there is nothing to keep from expiring.
func keepAliveInterval(timeoutSec int) time.Duration {
	switch {
	case timeoutSec <= 0:
		return 0
	case timeoutSec >= 3*int(maxKeepAlive/time.Second):
		return maxKeepAlive // and no conversion of a large timeout to wrap
	}
	return time.Duration(timeoutSec) * time.Second / 3
}

// touchTimeout bounds one write of activity, so ending an operation never
// waits long on a store that does not answer.
const touchTimeout = 10 * time.Second

// busy keeps sb active while an operation runs, from now until done is
// called, which marks it active once more: the end of an operation is
// activity too, and its timeout counts from there.
func (s *Service) busy(ctx context.Context, sb *wrenn.Sandbox) (done func()) {
	ctx = context.WithoutCancel(ctx) // the operation's end must still be written
	teamID, id, every := sb.TeamID, sb.ID, keepAliveInterval(sb.TimeoutSec)
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		if every == 0 {
			return
		}
		for {
			select {
			case <-stop:
				return
			case <-s.after(every):
				s.markActive(ctx, teamID, id)
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(stop)
			<-stopped
			s.markActive(ctx, teamID, id)
		})
	}
}

// markActive records activity on the sandbox now. A failure is logged, not
// returned: the operation it keeps alive has not failed.
func (s *Service) markActive(ctx context.Context, teamID, id string) {
	ctx, cancel := context.WithTimeout(ctx, touchTimeout)
	defer cancel()
	err := s.sandboxes.TouchSandbox(ctx, teamID, id, s.nowUTC())
	switch {
	case err == nil:
	case wrenn.ErrorCode(err) == wrenn.ENotFound:
		// Destroyed while the operation ran: nothing left to keep alive.
	default:
		s.log.WarnContext(ctx, "record sandbox activity", slog.String(attrSandboxID, id), slog.Any(attrError, err))
	}
}

// busyStream is a streamed command that keeps its sandbox active until it
// is closed.
type busyStream struct {
	wrenn.ExecStream
	done func()
}

func (b *busyStream) Close() error {
	defer b.done()
	return b.ExecStream.Close()
}

// busyReader is a file being read out of a sandbox; it keeps the sandbox
// active until it is closed.
type busyReader struct {
	io.ReadCloser
	done func()
}

func (b *busyReader) Close() error {
	defer b.done()
	return b.ReadCloser.Close()
}
