package envd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/wrennhq/wrenn"
)

// abortWait bounds how long WriteFile waits for the guest to confirm that
// it dropped an aborted upload.
const abortWait = 5 * time.Second

func checkPath(path string) error {
	if !filepath.IsAbs(path) {
		return wrenn.Errorf(wrenn.EInvalid, "path must be absolute")
	}
	return nil
}

// bodyError is a failure of the caller's reader, not of the transfer.
type bodyError struct{ err error }

func (e bodyError) Error() string { return e.err.Error() }

// WriteFile streams r into the guest file path, creating parent
// directories. The file appears whole or not at all: the guest writes a
// temporary file beside it and renames it once the body is complete. If r
// fails, ctx is cancelled or the transfer is cut off, nothing is left
// behind and WriteFile returns an error.
func (c *Client) WriteFile(ctx context.Context, path string, r io.Reader) error {
	if err := checkPath(path); err != nil {
		return err
	}
	cl, err := c.open(ctx, opWrite, request{Op: opWrite, Path: path})
	if err != nil {
		return err
	}
	defer cl.close()
	if err := cl.reply(); err != nil {
		return err
	}

	// The guest answers once, at the end or as soon as it fails; a failure
	// unblocks the body's writes, which may be waiting for window.
	final := make(chan error, 1)
	go func() {
		err := cl.reply()
		final <- err
		if err != nil {
			cl.st.SetWriteDeadline(time.Unix(1, 0))
		}
	}()

	err = sendBody(cl, r)
	if be, ok := errors.AsType[bodyError](err); ok {
		// Closing the host's side before the end frame aborts the upload.
		cl.st.Close()
		select {
		case <-final:
		case <-time.After(abortWait):
			cl.close()
			<-final
		}
		return fmt.Errorf("envd write: read body: %w", be.err)
	}
	if err != nil {
		select {
		case ferr := <-final:
			if ferr != nil {
				return ferr
			}
		default:
			cl.close()
			<-final
		}
		return cl.fail(err)
	}
	if err := <-final; err != nil {
		return err
	}
	return nil
}

// sendBody sends r as data frames and the end frame.
func sendBody(cl *call, r io.Reader) error {
	buf := make([]byte, frameHeaderSize+fileChunkSize)
	var total int64
	for {
		n, err := fill(r, buf[frameHeaderSize:])
		if n > 0 {
			putHeader(buf, frameData, n)
			if _, werr := cl.st.Write(buf[:frameHeaderSize+n]); werr != nil {
				return werr
			}
			total += int64(n)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return bodyError{err}
		}
	}
	return writeEnd(cl.st, total)
}

// fill reads into buf until it is full or r fails. Unlike io.ReadFull it
// passes r's own errors on as they are: only io.EOF ends a body, and an
// io.ErrUnexpectedEOF from r (a request body cut short) must fail the upload.
func fill(r io.Reader, buf []byte) (int, error) {
	n, idle := 0, 0
	for n < len(buf) {
		k, err := r.Read(buf[n:])
		n += k
		if err != nil {
			return n, err
		}
		if k > 0 {
			idle = 0
		} else if idle++; idle > 100 {
			return n, io.ErrNoProgress
		}
	}
	return n, nil
}

// ReadFile streams the guest file path. A missing file is a wrenn.ENotFound
// error, a directory wrenn.EInvalid. The body's Read returns io.EOF only
// once the whole file has arrived; a transfer cut short is an error.
// Cancelling ctx ends the transfer too.
func (c *Client) ReadFile(ctx context.Context, path string) (io.ReadCloser, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	cl, err := c.open(ctx, opRead, request{Op: opRead, Path: path})
	if err != nil {
		return nil, err
	}
	if err := cl.reply(); err != nil {
		cl.close()
		return nil, err
	}
	return &fileReader{cl: cl}, nil
}

// fileReader is the body of ReadFile.
type fileReader struct {
	cl   *call
	left int   // bytes of the current data frame not yet read
	got  int64 // bytes read so far
	err  error // sticky; io.EOF once the end frame has checked out
}

func (f *fileReader) Read(p []byte) (int, error) {
	if f.err == nil && f.cl.ctx.Err() != nil {
		f.err, f.left = f.cl.fail(f.cl.ctx.Err()), 0
		f.cl.close()
	}
	for f.left == 0 {
		if f.err != nil {
			return 0, f.err
		}
		if f.err = f.nextFrame(); f.err != nil {
			f.cl.close()
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := f.cl.r.Read(p[:min(len(p), f.left)])
	f.left -= n
	f.got += int64(n)
	if err != nil {
		f.err = f.cutOff(err)
		f.left = 0
		f.cl.close()
		if n == 0 {
			return 0, f.err
		}
	}
	return n, nil
}

func (f *fileReader) nextFrame() error {
	typ, n, err := readHeader(f.cl.r)
	if err != nil {
		return f.cutOff(err)
	}
	switch typ {
	case frameData:
		f.left = n
		return nil
	case frameEnd:
		total, err := readEnd(f.cl.r, n)
		if err != nil {
			return f.cutOff(err)
		}
		if total != f.got {
			return f.cl.fail(fmt.Errorf("%w: guest sent %d bytes, says %d", errBadFrame, f.got, total))
		}
		return io.EOF
	case frameJSON:
		var m message
		if err := decodeMessage(f.cl, n, &m); err != nil {
			return err
		}
		if err := f.cl.check(m); err != nil {
			return err
		}
		return f.cl.fail(fmt.Errorf("%w: %q message during read", errBadFrame, m.Type))
	}
	return f.cl.fail(fmt.Errorf("%w: %q during read", errBadFrame, typ))
}

// cutOff reports a transfer that ended before its end frame.
func (f *fileReader) cutOff(err error) error {
	return f.cl.fail(fmt.Errorf("transfer cut off after %d bytes: %w", f.got, noEOF(err)))
}

// Close ends the transfer, whether or not it is complete.
func (f *fileReader) Close() error {
	f.cl.close()
	return nil
}
