package envd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/wrennhq/wrenn"
)

// The bulk channel moves file bodies apart from the session: a second
// virtio-serial port, BulkPortName, that carries one transfer at a time
// as raw bytes in large chunks, with no yamux, no per-frame JSON and no
// multiplexing. Under emulation every byte the guest copies costs dearly,
// and the session's path copied each byte several times inside the guest
// (virtio ring, port read, yamux, frame, page cache).
//
// Each transfer starts with a handshake in text lines, so bytes an
// earlier transfer left in the channel (a host that went away part way)
// are skipped rather than mistaken for the new one; the guest serves a
// nonce once, so a go the host repeated is not served twice:
//
//	host  → guest   wrenn-bulk-hello <nonce>\n               (with go, in one write,
//	                wrenn-bulk-go <nonce> {"op":"write"|"read","path":...}\n
//	                                                          repeated until answered)
//	guest → host    wrenn-bulk-ok <nonce>\n                  (one per hello it reads)
//	guest → host    wrenn-bulk-ready <nonce> {"type":"ok",...}\n
//	              | wrenn-bulk-done <nonce> {"type":"error",...}\n   (refused)
//
// write: the host then sends wrenn-bulk-body <nonce>\n (what it repeated
// before it heard back all comes before it) and the body (bulk_frame.go: chunks, then an end
// with the length and a checksum); the guest writes it to a temporary file
// beside path and, if the end matches what arrived, renames it over path;
// it answers wrenn-bulk-done with {"type":"ok","size":N} or an error (the
// temporary file removed). A host that gives up part way finishes its
// chunk and sends the abort mark; the guest removes the file and answers
// done with an error.
//
// read: the guest's ready carries the file's size when opened; the body
// follows as chunks and an end, which the host checks. A guest that fails
// part way sends the abort mark, then done with its error. A host that
// stops reading closes its connection: the guest's writes then go nowhere
// (QEMU drops them) and it is back at the handshake once the file is sent.
//
// The checksum is the low 32 bits of XXH64 where the host offers it in
// its go ("sum":"xxh64") and the guest says in its ready that it took
// it, else CRC32C (a guest from before XXH64 ignores the offer).
//
// The host checks every end against the checksum it computed over what it
// sent or received, and the guest, over an upload, against its own: a
// damaged byte fails the transfer, and fails an upload before its rename.

// BulkPortName is the name of envd's bulk data port (docs/GUEST.md).
const BulkPortName = "wrenn.data"

// Bulk operations, the op of a go line.
const (
	bulkWrite = "write"
	bulkRead  = "read"
)

// Words of the bulk lines.
const (
	bulkHello = "hello"
	bulkOK    = "ok"
	bulkGo    = "go"
	bulkReady = "ready"
	bulkDone  = "done"
	bulkBody  = "body" // host → guest: an upload's body follows
)

// bulkRequest is the JSON of a go line.
type bulkRequest struct {
	Op   string `json:"op"`
	Path string `json:"path"`
	// Sum is the body checksum the host offers (sumXXH64); absent, or
	// refused, the body is summed by CRC32C. A guest that takes it says
	// so in its ready.
	Sum string `json:"sum,omitempty"`
}

// bulkReply is the JSON of a ready or done line.
type bulkReply struct {
	Type    string `json:"type"` // msgOK or msgError
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	Size    int64  `json:"size,omitempty"`
	Sum     string `json:"sum,omitempty"` // in a ready: the checksum the body is summed by; absent: CRC32C
}

func bulkReplyOf(err error) bulkReply {
	if err == nil {
		return bulkReply{Type: msgOK}
	}
	m := errorMessage(err)
	return bulkReply{Type: msgError, Code: m.Code, Message: m.Message}
}

// err is the reply as an error; a guest's error, so only its refusals
// keep their codes (message.guestError).
func (r bulkReply) err() error {
	switch r.Type {
	case msgOK:
		return nil
	case msgError:
		return message{Type: msgError, Code: r.Code, Message: r.Message}.guestError()
	}
	return fmt.Errorf("%w: a %q reply", errBadFrame, r.Type)
}

// writeBulkLine writes "wrenn-bulk-<word> <nonce>[ <JSON of v>]\n" in one Write.
func writeBulkLine(w io.Writer, word, nonce string, v any) error {
	var b bytes.Buffer
	b.WriteString(bulkLinePrefx + word + " " + nonce)
	if v != nil {
		js, err := encodeJSON(v)
		if err != nil {
			return err
		}
		b.WriteByte(' ')
		b.Write(bytes.TrimRight(js, "\n"))
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}

// readBulkLine returns the next bulk line's word, nonce and JSON, skipping
// whatever else comes first (text or bytes a transfer left behind).
func readBulkLine(r *bufio.Reader) (word, nonce string, rest []byte, err error) {
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			continue // no line: the rest of something else
		}
		if err != nil {
			return "", "", nil, err
		}
		// A line may follow bytes of something else on the same line.
		i := bytes.LastIndex(line, []byte(bulkLinePrefx))
		if i < 0 || len(line)-i > maxBulkLine {
			continue
		}
		fields := strings.SplitN(strings.TrimRight(string(line[i+len(bulkLinePrefx):]), "\n"), " ", 3)
		if len(fields) < 2 {
			continue
		}
		if len(fields) == 3 {
			rest = []byte(fields[2])
		}
		return fields[0], fields[1], rest, nil
	}
}

// ServeBulkPort serves transfers on the virtio-serial port called name
// until ctx ends, reopening the port whenever its host goes away. A VM
// without the port (made before it existed) gets none: the host then
// moves files over the session.
func ServeBulkPort(ctx context.Context, name string, log *slog.Logger) error {
	s := &bulkServer{log: log}
	var dev string
	for wait := time.Now(); ; {
		var err error
		if dev, err = FindPort("/sys/class/virtio-ports", "/dev", name); err == nil {
			break
		}
		if time.Since(wait) > 5*time.Second {
			log.Info("no bulk port: files move over the session", slog.Any(attrError, err))
			return nil
		}
		sleep(ctx, portPoll)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	for ctx.Err() == nil {
		conn, err := openBulkPort(dev)
		if err != nil {
			log.Warn("bulk port", slog.Any(attrError, err))
			sleep(ctx, portSlowPoll)
			continue
		}
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		err = s.serve(conn)
		stop()
		conn.Close() // drops what the host that went away left unread
		log.Debug("bulk host gone", slog.Any(attrError, err))
	}
	return ctx.Err()
}

// bulkServer is the guest's end of the bulk channel.
type bulkServer struct {
	log     *slog.Logger
	crcOnly bool // take no checksum but CRC32C, as guests before XXH64 (tests)
}

// agreeSum is the checksum a transfer offered offer is summed by.
func (s *bulkServer) agreeSum(offer string) string {
	if offer == sumXXH64 && !s.crcOnly {
		return sumXXH64
	}
	return ""
}

// serve runs transfers on conn, one after another, until it fails.
func (s *bulkServer) serve(conn io.ReadWriter) error {
	br := bufio.NewReaderSize(conn, guestBufSize)
	var done string // the nonce served last
	for {
		nonce, req, err := s.handshake(br, conn, done)
		if err != nil {
			return err
		}
		done = nonce
		switch req.Op {
		case bulkWrite:
			err = s.receive(br, conn, nonce, req.Path, s.agreeSum(req.Sum))
		case bulkRead:
			err = s.send(conn, nonce, req.Path, s.agreeSum(req.Sum))
		default:
			err = writeBulkLine(conn, bulkDone, nonce, bulkReplyOf(wrenn.Errorf(wrenn.EInvalid, "unknown bulk op %q", req.Op)))
		}
		if err != nil {
			return err
		}
	}
}

// handshake answers hellos until the go line of the latest one. A host
// repeats hello and go together until it hears back, so a go of a nonce
// already served (done) is ignored.
func (s *bulkServer) handshake(br *bufio.Reader, w io.Writer, done string) (string, bulkRequest, error) {
	var want string
	for {
		word, nonce, rest, err := readBulkLine(br)
		if err != nil {
			return "", bulkRequest{}, err
		}
		if nonce == done {
			continue
		}
		switch {
		case word == bulkHello:
			want = nonce
			if err := writeBulkLine(w, bulkOK, nonce, nil); err != nil {
				return "", bulkRequest{}, err
			}
		case word == bulkGo && nonce == want && want != "":
			var req bulkRequest
			if err := json.Unmarshal(rest, &req); err != nil {
				if err := writeBulkLine(w, bulkDone, nonce, bulkReplyOf(wrenn.Errorf(wrenn.EInvalid, "bad request: %v", err))); err != nil {
					return "", bulkRequest{}, err
				}
				done, want = nonce, ""
				continue
			}
			return nonce, req, nil
		}
	}
}

// receive is an upload: into a temporary file beside path, renamed over
// it once the body's end matches. An error of the channel itself is
// returned; the transfer's own outcome goes to the host.
func (s *bulkServer) receive(br *bufio.Reader, w io.Writer, nonce, path, sum string) error {
	up, err := createUpload(path)
	if err != nil {
		return writeBulkLine(w, bulkDone, nonce, bulkReplyOf(err))
	}
	defer up.discard()
	ready := bulkReplyOf(nil)
	ready.Sum = sum
	if err := writeBulkLine(w, bulkReady, nonce, ready); err != nil {
		return err
	}
	// Past the hellos and gos the host repeated before it heard back.
	for {
		word, got, _, err := readBulkLine(br)
		if err != nil {
			return err
		}
		if word == bulkBody && got == nonce {
			break
		}
	}
	mem, free, err := alignedBuffer(2 * bulkChunk)
	if err != nil {
		return fmt.Errorf("upload buffer: %w", err)
	}
	defer free()
	sink := newUploadSink(up.f)
	defer sink.close()
	// Two buffers: the port fills one while the disk takes the other, so
	// the guest's CPU reads on while QEMU writes.
	w8 := newSinkWriter(sink, mem[:bulkChunk:bulkChunk], mem[bulkChunk:])
	cr := &chunkReader{r: br, sum: guestSum(sum)}
	for {
		buf := w8.next()
		n, err := cr.readChunk(buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			w8.wait()
			up.discard()
			if errors.Is(err, errBulkAborted) || errors.Is(err, errBulkCorrupt) {
				s.log.Info("bulk write", slog.String(attrPath, path), slog.Any(attrError, err))
				return writeBulkLine(w, bulkDone, nonce, bulkReplyOf(err))
			}
			return err // cut off: the host is gone
		}
		w8.write(buf[:n])
	}
	var werr error // the file's failure: the body was still read to its end
	if err := w8.wait(); err != nil {
		werr = refusal(fmt.Errorf("write: %w", err), wrenn.EInvalid, "cannot write "+path)
	}
	sink.close()
	if werr == nil {
		werr = up.commit()
	}
	if werr != nil {
		s.log.Info("bulk write", slog.String(attrPath, path), slog.Any(attrError, werr))
		up.discard() // before the reply: once told, the host may look
		return writeBulkLine(w, bulkDone, nonce, bulkReplyOf(refusal(werr, wrenn.EInvalid, "cannot write "+path)))
	}
	reply := bulkReplyOf(nil)
	reply.Size = cr.total
	return writeBulkLine(w, bulkDone, nonce, reply)
}

// send is a download: the file's body as chunks and its end.
func (s *bulkServer) send(w io.Writer, nonce, path, sum string) error {
	f, size, err := openRead(path)
	if err != nil {
		return writeBulkLine(w, bulkDone, nonce, bulkReplyOf(err))
	}
	defer f.Close()
	reply := bulkReplyOf(nil)
	reply.Size, reply.Sum = size, sum
	if err := writeBulkLine(w, bulkReady, nonce, reply); err != nil {
		return err
	}
	// A port sends the bytes from the page cache itself (sendfile), and
	// their checksum is read through a mapping of the same pages, so the
	// guest copies none of them. What cannot be mapped is read into a
	// buffer for its CRC instead.
	sender, zeroCopy := w.(fileSender)
	// A buffer the file's size (at least a page, should it grow): under
	// emulation clearing and collecting a whole chunk's buffer costs a
	// small file's download several times its own work. Mapped chunks
	// need none: the buffer is made when a chunk must be read.
	readSize := int(min(max(size, 4<<10), bulkChunk))
	bufSize := readSize
	if zeroCopy {
		bufSize = 0
	}
	cw := newChunkWriter(w, bufSize, guestSum(sum))
	var off int64
	mapped := zeroCopy
	for {
		if mapped {
			n, err := mapSum(cw.sum, f, off)
			if err != nil {
				return s.sendFailed(w, cw, nonce, path, err)
			}
			if n > 0 {
				if err := cw.sendSummed(n); err != nil {
					return err
				}
				if err := sender.SendFile(f, off, n); err != nil {
					return err
				}
				off += int64(n)
				continue
			}
			// Not mappable (or at its end): read the rest.
			mapped = false
			cw.reserve(readSize)
		}
		n, err := f.ReadAt(cw.payload(), off)
		if n > 0 {
			var serr error
			if zeroCopy {
				if serr = cw.sendHeader(n); serr == nil {
					serr = sender.SendFile(f, off, n)
				}
			} else {
				serr = cw.send(n)
			}
			if serr != nil {
				return serr
			}
			off += int64(n)
		}
		if errors.Is(err, io.EOF) {
			return cw.end()
		}
		if err != nil {
			return s.sendFailed(w, cw, nonce, path, err)
		}
	}
}

// sendFailed ends a download whose file could not be read at err.
func (s *bulkServer) sendFailed(w io.Writer, cw *chunkWriter, nonce, path string, err error) error {
	s.log.Info("bulk read", slog.String(attrPath, path), slog.Any(attrError, err))
	if err := cw.abort(); err != nil {
		return err
	}
	return writeBulkLine(w, bulkDone, nonce, bulkReplyOf(refusal(fmt.Errorf("read: %w", err), wrenn.ENotFound, "cannot read "+path)))
}
