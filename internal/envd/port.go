package envd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// PortName is the name of envd's virtio-serial port (docs/GUEST.md).
const PortName = "wrenn.envd"

// portPoll is how often envd looks again for a port that is missing or has
// no host connected: virtio-serial reads return EOF at once while the host
// side is disconnected, so this is a sleep, not a spin. A port with no host
// is polled every portPoll for portFastPollFor, then every portSlowPoll.
const (
	portPoll        = 10 * time.Millisecond
	portFastPollFor = 2 * time.Second
	portSlowPoll    = 200 * time.Millisecond
)

// FindPort returns the device of the virtio-serial port called name, by
// the names in sysDir (normally /sys/class/virtio-ports) and the devices
// in devDir (normally /dev).
func FindPort(sysDir, devDir, name string) (string, error) {
	ents, err := os.ReadDir(sysDir)
	if err != nil {
		return "", fmt.Errorf("find port %s: %w", name, err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(sysDir, e.Name(), "name"))
		if err != nil || strings.TrimSpace(string(b)) != name {
			continue
		}
		return filepath.Join(devDir, e.Name()), nil
	}
	return "", fmt.Errorf("find port %s: %w", name, os.ErrNotExist)
}

// ServePort serves sessions on the virtio-serial port called name, one
// after another, until ctx ends: it waits for the port to appear, opens it,
// serves a session, and when the session ends (the host disconnected, or
// broke it) closes the port, which drops what the old session left unread,
// and opens it again for the next.
func ServePort(ctx context.Context, name string, log *slog.Logger) error {
	return newServer(log, hostSystem()).servePort(ctx, func() (*portConn, error) {
		dev, err := FindPort("/sys/class/virtio-ports", "/dev", name)
		if err != nil {
			return nil, err
		}
		f, err := os.OpenFile(dev, os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		return newPortConn(f, f), nil
	})
}

// servePort serves sessions one after another on the port open opens.
func (s *server) servePort(ctx context.Context, open func() (*portConn, error)) error {
	defer s.endProcesses()
	missing := false
	for ctx.Err() == nil {
		conn, err := open()
		if err == nil {
			// Reopen at once when a session ends: a restored VM's guest
			// must be ready for the new host's hello without delay, and a
			// port with no host behind it waits in portConn.Read.
			missing = false
			err = s.serve(ctx, conn)
			s.log.Info("envd session ended", slog.Any(attrError, err))
			continue
		}
		if !missing {
			s.log.Warn("envd port", slog.Any(attrError, err))
			missing = true
		}
		sleep(ctx, portPoll)
	}
	return ctx.Err()
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// portConn is a virtio-serial port as a session's connection. Until the
// host has sent its first byte, EOF means "no host connected yet" and is
// waited out; after that it means the host went away.
type portConn struct {
	r, w    *os.File // the same file for a real port
	started bool     // a byte has arrived; only Read touches it
	closed  chan struct{}
	once    sync.Once
}

func newPortConn(r, w *os.File) *portConn {
	return &portConn{r: r, w: w, closed: make(chan struct{})}
}

func (c *portConn) Read(b []byte) (int, error) {
	var waiting time.Time
	for {
		n, err := c.r.Read(b)
		if n > 0 {
			c.started = true
			return n, nil
		}
		if !errors.Is(err, io.EOF) || c.started {
			return n, err
		}
		// A host comes back quickly after a restore or an agent restart;
		// after that, polling slower keeps an orphaned guest's emulated
		// CPU nearly idle.
		wait := pollWait(&waiting)
		select {
		case <-c.closed:
			return 0, os.ErrClosed
		case <-time.After(wait):
		}
	}
}

// pollWait is how long a read of a port with no host behind it waits
// before it tries again: portPoll from the first wait (which it notes in
// *since) for portFastPollFor, portSlowPoll after.
func pollWait(since *time.Time) time.Duration {
	if since.IsZero() {
		*since = time.Now()
		return portPoll
	}
	if time.Since(*since) > portFastPollFor {
		return portSlowPoll
	}
	return portPoll
}

func (c *portConn) Write(b []byte) (int, error) { return c.w.Write(b) }

func (c *portConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	err := c.r.Close()
	if c.w != c.r {
		c.w.Close()
	}
	return err
}

// ServeListener serves a session on each connection ln accepts, all at
// once, until ctx ends. It is envd outside a VM, for tests and benchmarks
// that drive it over a Unix socket: Init there reseeds the RNG but does not
// touch the machine's clock or hostname.
func ServeListener(ctx context.Context, ln net.Listener, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return newServer(log, listenerSystem(log)).serveListener(ctx, ln)
}

func (s *server) serveListener(ctx context.Context, ln net.Listener) error {
	defer s.endProcesses()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	var sessions atomic.Int64
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("envd accept: %w", err)
		}
		id := sessions.Add(1)
		wg.Go(func() {
			err := s.serve(ctx, conn)
			s.log.Debug("envd session ended", slog.Int64(attrSession, id), slog.Any(attrError, err))
		})
	}
}
