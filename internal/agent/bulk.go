package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"

	"github.com/wrennhq/wrenn/internal/envd"
	"github.com/wrennhq/wrenn/internal/layout"
)

// The bulk data path (issue 14): a VM booted by this agent has a second
// virtio-serial port, envd's bulk channel, and file bodies go over it
// rather than through the guest agent's session. A VM restored from a
// snapshot has the port exactly when the VM snapshotted had it (QEMU
// restores only into the same devices): record.DataPort and
// templateMeta.DataPort say so, and VMs without it move files over the
// session as before.

// bulkMinUpload is the size below which an upload stays on the session:
// the bulk channel's handshake costs round trips a small file does not
// win back.
const bulkMinUpload = 1 << 20

// newBulk is the bulk channel of a VM that has the port, dialled at once
// so that its guest stops polling for a host; nil without the port.
func newBulk(ctx context.Context, rec record, dir layout.SandboxDir, mach *machine, log *slog.Logger) {
	if !rec.DataPort {
		return
	}
	b := envd.NewBulk(envd.DialUnix(dir.DataSocket()), log.With(slog.String(attrSandboxID, rec.ID)))
	if err := b.Connect(ctx); err != nil {
		log.Debug("bulk channel", slog.String(attrSandboxID, rec.ID), slog.Any(attrError, err))
	}
	mach.bulk = b
	mach.release.add(func(context.Context) error { return b.Close() })
}

// bulk returns sb's bulk channel, nil if it has none or does not serve.
func (sb *sandbox) bulk() *envd.Bulk {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if !slices.Contains(serving, sb.lc) || sb.mach == nil {
		return nil
	}
	return sb.mach.bulk
}

// writeBulk sends an upload of at least bulkMinUpload over b; done is
// false when it must go over the session instead, with r (what of it
// was read put back in front).
func writeBulk(ctx context.Context, b *envd.Bulk, path string, r io.Reader) (io.Reader, bool, error) {
	head := make([]byte, bulkMinUpload)
	n, err := 0, error(nil)
	for n < len(head) && err == nil {
		var k int
		k, err = r.Read(head[n:])
		n += k
	}
	if err == io.EOF {
		return bytes.NewReader(head[:n]), false, nil // small: the session
	}
	if err != nil {
		// The session's path reports it, and leaves no file.
		return io.MultiReader(bytes.NewReader(head[:n]), errReader{err}), false, nil
	}
	rest := io.MultiReader(bytes.NewReader(head[:n]), r)
	err = b.WriteFile(ctx, path, rest)
	if errors.Is(err, envd.ErrBulkUnavailable) {
		return rest, false, nil
	}
	return nil, true, err
}

// errReader fails with err.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
