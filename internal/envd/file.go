package envd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"github.com/wrennhq/wrenn"
)

// newFileMode is the mode of a file WriteFile creates; one it replaces
// keeps its mode and owner.
const newFileMode = 0o644

// errUploadCut is an upload that ended before its end frame.
var errUploadCut = errors.New("upload ended before the whole file arrived")

// writeFile receives a file: into a temporary file beside path, then, once
// the whole body is there, fsync and rename over path.
func (s *server) writeFile(ctx context.Context, p *peer, path string) {
	log := s.log.With(slog.String(attrPath, path))
	up, err := createUpload(path)
	if err != nil {
		s.answer(ctx, p, err)
		return
	}
	discard := func() {
		if err := up.discard(); err != nil {
			log.WarnContext(ctx, "remove the temporary file", slog.Any(attrError, err))
		}
	}
	defer discard()
	if err := p.send(message{Type: msgOK}); err != nil {
		log.DebugContext(ctx, "write file: host gone", slog.Any(attrError, err))
		return
	}
	n, err := receiveBody(p.r, up.f)
	if err == nil {
		err = up.commit()
	}
	if err != nil {
		log.InfoContext(ctx, "write file", slog.Int64(attrBytes, n), slog.Any(attrError, err))
		discard() // before the reply: once told, the host may look
		s.answer(ctx, p, refusal(err, wrenn.EInvalid, "cannot write "+path))
		return
	}
	s.answer(ctx, p, nil)
}

// upload is a temporary file on its way to becoming path.
type upload struct {
	f        *os.File
	path     string
	mode     fs.FileMode
	uid, gid int // -1: a new file, owned by envd
	done     bool
}

func createUpload(path string) (*upload, error) {
	if !filepath.IsAbs(path) {
		return nil, wrenn.Errorf(wrenn.EInvalid, "path must be absolute")
	}
	path = filepath.Clean(path)
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, fs.ErrExist) {
			return nil, wrenn.Errorf(wrenn.EInvalid, "a parent of %s is not a directory", path)
		}
		return nil, refusal(fmt.Errorf("create parent directories: %w", err), wrenn.EInvalid,
			"cannot write "+path+": cannot create its directory "+dir)
	}
	up := &upload{path: path, mode: newFileMode, uid: -1, gid: -1}
	switch fi, err := os.Stat(path); {
	case err == nil && fi.IsDir():
		return nil, wrenn.Errorf(wrenn.EInvalid, "%s is a directory", path)
	case err == nil && !fi.Mode().IsRegular():
		return nil, wrenn.Errorf(wrenn.EInvalid, "%s is not a regular file", path)
	case err == nil:
		up.mode = fi.Mode().Perm() | fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			up.uid, up.gid = int(st.Uid), int(st.Gid)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, refusal(fmt.Errorf("stat: %w", err), wrenn.EInvalid, "cannot write "+path)
	}
	base := filepath.Base(path)
	if len(base) > 100 {
		base = base[:100]
	}
	f, err := os.CreateTemp(dir, "."+base+".envd-*")
	if err != nil {
		// An upload is a new file beside path, renamed over it at the end.
		return nil, refusal(fmt.Errorf("create temporary file: %w", err), wrenn.EInvalid,
			"cannot write "+path+": cannot create a file in "+dir)
	}
	up.f = f
	return up, nil
}

// receiveBody copies data frames into w until the end frame, and checks
// that the length the host announces is what arrived.
func receiveBody(r *bufio.Reader, w io.Writer) (int64, error) {
	buf := make([]byte, fileChunkSize)
	var total int64
	for {
		typ, n, err := readHeader(r)
		if err != nil {
			if err == io.EOF {
				err = errUploadCut
			}
			return total, err
		}
		switch typ {
		case frameData:
			if buf, err = readPayload(r, buf, n); err != nil {
				return total, errUploadCut
			}
			if _, err := w.Write(buf); err != nil {
				return total, fmt.Errorf("write: %w", err)
			}
			total += int64(n)
		case frameEnd:
			want, err := readEnd(r, n)
			if err != nil {
				return total, errUploadCut
			}
			if want != total {
				return total, fmt.Errorf("%w: got %d bytes, host says %d", errBadFrame, total, want)
			}
			return total, nil
		default:
			return total, fmt.Errorf("%w: %q during upload", errBadFrame, typ)
		}
	}
}

// commit gives the temporary file its mode and owner, makes it durable and
// renames it over path.
func (up *upload) commit() error {
	if err := up.f.Chmod(up.mode); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	if up.uid >= 0 {
		if err := up.f.Chown(up.uid, up.gid); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if err := up.f.Sync(); err != nil {
		return fmt.Errorf("fsync: %w", err)
	}
	if err := up.f.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	if err := os.Rename(up.f.Name(), up.path); err != nil {
		return fmt.Errorf("rename: %w", err)
	}
	up.done = true
	if d, err := os.Open(filepath.Dir(up.path)); err == nil {
		d.Sync() // the rename's durability; the file is in place either way
		d.Close()
	}
	return nil
}

// discard removes the temporary file unless it was committed or removed.
func (up *upload) discard() error {
	if up.done {
		return nil
	}
	up.done = true
	up.f.Close() // a failed close of a file to be removed loses nothing
	if err := os.Remove(up.f.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", up.f.Name(), err)
	}
	return nil
}

// readFile sends a file: its size, its body in chunks, then the end frame
// with the length sent.
func (s *server) readFile(ctx context.Context, p *peer, path string) {
	log := s.log.With(slog.String(attrPath, path))
	f, size, err := openRead(path)
	if err != nil {
		s.answer(ctx, p, err)
		return
	}
	defer f.Close()
	if err := p.send(message{Type: msgOK, Size: size}); err != nil {
		log.DebugContext(ctx, "read file: host gone", slog.Any(attrError, err))
		return
	}
	p.watch(func(message) {}, func() {})
	buf := make([]byte, frameHeaderSize+fileChunkSize)
	var total int64
	for {
		n, err := io.ReadFull(f, buf[frameHeaderSize:])
		if n > 0 {
			putHeader(buf, frameData, n)
			if _, werr := p.st.Write(buf[:frameHeaderSize+n]); werr != nil {
				log.DebugContext(ctx, "read file: host gone", slog.Any(attrError, werr))
				return
			}
			total += int64(n)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			if werr := writeEnd(p.st, total); werr != nil {
				log.DebugContext(ctx, "read file: host gone", slog.Any(attrError, werr))
			}
			return
		}
		if err != nil {
			log.InfoContext(ctx, "read file", slog.Any(attrError, err))
			s.answer(ctx, p, refusal(fmt.Errorf("read: %w", err), wrenn.ENotFound, "cannot read "+path))
			return
		}
	}
}

func openRead(path string) (*os.File, int64, error) {
	if !filepath.IsAbs(path) {
		return nil, 0, wrenn.Errorf(wrenn.EInvalid, "path must be absolute")
	}
	// Stat first: opening a FIFO would block.
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		return nil, 0, wrenn.Errorf(wrenn.ENotFound, "file not found")
	case err != nil:
		return nil, 0, refusal(fmt.Errorf("stat: %w", err), wrenn.ENotFound, "cannot read "+path)
	case fi.IsDir():
		return nil, 0, wrenn.Errorf(wrenn.EInvalid, "%s is a directory", path)
	case !fi.Mode().IsRegular():
		return nil, 0, wrenn.Errorf(wrenn.EInvalid, "%s is not a regular file", path)
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, wrenn.Errorf(wrenn.ENotFound, "file not found")
	}
	if err != nil {
		return nil, 0, refusal(fmt.Errorf("open: %w", err), wrenn.ENotFound, "cannot read "+path)
	}
	return f, fi.Size(), nil
}
