package qemu

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
)

// The guest's serial console is a socket QEMU serves (a listening socket
// the driver passes in); the driver reads it and keeps the log itself,
// bounded: ConsoleLog holds up to consoleCap bytes, then becomes
// ConsoleLog.1 (replacing the one before) and a new ConsoleLog starts. So
// a guest that floods its console costs at most twice consoleCap of disk.
// While no agent reads (between an agent's exit and the next one's
// adopting the VM) QEMU drops what the guest writes rather than stalling
// it.

// consoleCap is the size at which the console log rotates.
const consoleCap = 1 << 20

func consoleSocket(runDir string) string { return filepath.Join(runDir, "console.sock") }

// rotatingLog writes to path, rotating it at limit bytes.
type rotatingLog struct {
	path  string
	limit int64
	f     *os.File
	size  int64
}

// openLog continues the log at path.
func openLog(path string, limit int64) (*rotatingLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &rotatingLog{path: path, limit: limit, f: f, size: fi.Size()}, nil
}

func (l *rotatingLog) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if l.size >= l.limit {
			if err := l.rotate(); err != nil {
				return written, err
			}
		}
		n := min(int64(len(p)), l.limit-l.size)
		m, err := l.f.Write(p[:n])
		written += m
		l.size += int64(m)
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

func (l *rotatingLog) rotate() error {
	if err := l.f.Close(); err != nil {
		return err
	}
	if err := os.Rename(l.path, l.path+".1"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("rotate console log: %w", err)
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("rotate console log: %w", err)
	}
	l.f, l.size = f, 0
	return nil
}

func (l *rotatingLog) Close() error { return l.f.Close() }

// startConsole connects to the console socket at sock and copies what the
// guest writes to the log at path until QEMU closes it. The connection is
// made at once (it waits in the listener's queue until QEMU, maybe not yet
// started, accepts it), so no boot output is lost. done is closed when the
// copy ends; a log that cannot be written is dropped, not fatal.
func startConsole(sock, path string) (done <-chan struct{}, err error) {
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	log, err := openLog(path, consoleCap)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("console: %w", err)
	}
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		defer conn.Close()
		defer log.Close()
		if _, err := io.Copy(log, conn); err != nil {
			_, _ = io.Copy(io.Discard, conn) // keep the guest's console flowing
		}
	}()
	return ch, nil
}
