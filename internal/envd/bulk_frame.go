package envd

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// The body of a bulk transfer (see bulkDoc in bulk.go): chunks of raw
// bytes, each behind its length, then an end that carries the body's
// length and CRC32C, so a body cut short or damaged on the way is never
// taken for a whole one.
//
//	length (4 bytes, big endian, 1..bulkChunk)  bytes
//	...
//	0 (4 bytes)  total length (8 bytes)  CRC32C of the body (4 bytes)
//
// or, to give the transfer up part way, the length bulkAbort (no end).
const (
	bulkChunk     = 1 << 20 // the largest chunk
	bulkAbort     = 0xFFFFFFFF
	chunkHeader   = 4
	chunkTrailer  = 12
	bulkBufSize   = bulkChunk + 64<<10 // the host's reader's buffer: a whole chunk and a line
	guestBufSize  = 32 << 10           // the guest's: chunks are read past it
	maxBulkLine   = 16 << 10           // the longest text line either side sends
	bulkLinePrefx = "wrenn-bulk-"
)

// castagnoli is the CRC32C table; the standard library computes it with
// SSE4.2 where the CPU has it.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	// errBulkAborted is a body its sender gave up part way.
	errBulkAborted = errors.New("the sender gave the transfer up")
	// errBulkCorrupt is a body whose end does not match what arrived.
	errBulkCorrupt = errors.New("the data was damaged on the way")
)

// chunkWriter frames a body onto w. Each chunk goes in one Write of
// its header and bytes, so a writer that fails part way knows what of
// the chunk is still to go (finish).
type chunkWriter struct {
	w     io.Writer
	sum   bodySum
	buf   []byte // header + payload of the chunk being written
	sent  int    // bytes of buf[:chunkHeader+n] already written
	n     int    // payload of the chunk in buf
	total int64
}

func newChunkWriter(w io.Writer, size int, sum bodySum) *chunkWriter {
	return &chunkWriter{w: w, sum: sum, buf: make([]byte, chunkHeader+min(size, bulkChunk))}
}

// reserve makes room for chunks of n bytes in the payload.
func (cw *chunkWriter) reserve(n int) {
	if len(cw.buf) < chunkHeader+n {
		cw.buf = make([]byte, chunkHeader+min(n, bulkChunk))
	}
}

// payload is where the next chunk's bytes go.
func (cw *chunkWriter) payload() []byte { return cw.buf[chunkHeader:] }

// send writes the first n bytes of payload as a chunk.
func (cw *chunkWriter) send(n int) error {
	if n == 0 {
		return nil
	}
	binary.BigEndian.PutUint32(cw.buf, uint32(n))
	cw.sum.Write(cw.buf[chunkHeader : chunkHeader+n])
	cw.total += int64(n)
	cw.n, cw.sent = n, 0
	return cw.finish()
}

// sendHeader counts the first n bytes of payload into the body and
// writes only their header: the caller sends the bytes itself (sendfile).
func (cw *chunkWriter) sendHeader(n int) error {
	cw.sum.Write(cw.buf[chunkHeader : chunkHeader+n])
	return cw.sendSummed(n)
}

// sendSummed writes the header of an n-byte chunk the caller has added
// to cw.sum and sends itself.
func (cw *chunkWriter) sendSummed(n int) error {
	binary.BigEndian.PutUint32(cw.buf, uint32(n))
	cw.total += int64(n)
	cw.n, cw.sent = 0, 0
	_, err := cw.w.Write(cw.buf[:chunkHeader])
	return err
}

// finish writes what of the current chunk a failed send left unwritten.
func (cw *chunkWriter) finish() error {
	end := chunkHeader + cw.n
	for cw.sent < end {
		k, err := cw.w.Write(cw.buf[cw.sent:end])
		cw.sent += k
		if err != nil {
			return err
		}
	}
	return nil
}

// end writes the end of the body.
func (cw *chunkWriter) end() error {
	var b [chunkHeader + chunkTrailer]byte
	binary.BigEndian.PutUint64(b[chunkHeader:], uint64(cw.total))
	binary.BigEndian.PutUint32(b[chunkHeader+8:], cw.sum.Sum32())
	_, err := cw.w.Write(b[:])
	return err
}

// abort finishes the current chunk and writes the abort mark.
func (cw *chunkWriter) abort() error {
	if err := cw.finish(); err != nil {
		return err
	}
	var b [chunkHeader]byte
	binary.BigEndian.PutUint32(b[:], bulkAbort)
	_, err := cw.w.Write(b[:])
	return err
}

// chunkReader reads a body that a chunkWriter framed, checking its end.
// Reads of r are the caller's buffer's size, so next can hand out whole
// chunks without copying them.
type chunkReader struct {
	r     *bufio.Reader
	sum   bodySum // nil: CRC32C by hash/crc32
	left  int     // bytes of the current chunk not yet read
	total int64
	err   error // sticky; io.EOF once the end has checked out
}

// next returns the next bytes of the body, at most max, valid until the
// next call; io.EOF once the body has ended whole.
func (cr *chunkReader) next(max int) ([]byte, error) {
	for cr.left == 0 {
		if cr.err != nil {
			return nil, cr.err
		}
		cr.err = cr.header()
	}
	k := min(cr.left, max, cr.r.Size())
	p, err := cr.r.Peek(k)
	if err != nil {
		cr.err = fmt.Errorf("body cut off after %d bytes: %w", cr.total+int64(len(p)), noEOF(err))
		return nil, cr.err
	}
	cr.r.Discard(k)
	cr.left -= k
	cr.total += int64(k)
	cr.add(p)
	return p, nil
}

// readChunk reads the next bytes of the body into p, as much of the
// current chunk as fits: a reader whose buffer is smaller than p reads
// most of it straight into p. io.EOF once the body has ended whole.
func (cr *chunkReader) readChunk(p []byte) (int, error) {
	for cr.left == 0 {
		if cr.err != nil {
			return 0, cr.err
		}
		cr.err = cr.header()
	}
	k := min(cr.left, len(p))
	n, err := io.ReadFull(cr.r, p[:k])
	cr.left -= n
	cr.total += int64(n)
	cr.add(p[:n])
	if err != nil {
		cr.err = fmt.Errorf("body cut off after %d bytes: %w", cr.total, noEOF(err))
		return 0, cr.err
	}
	return k, nil
}

func (cr *chunkReader) add(p []byte) { cr.digest().Write(p) }

func (cr *chunkReader) digest() bodySum {
	if cr.sum == nil {
		cr.sum = hostSum("")
	}
	return cr.sum
}

// Read copies the body into p.
func (cr *chunkReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	b, err := cr.next(len(p))
	return copy(p, b), err
}

// header reads a chunk's length, or the end and checks it.
func (cr *chunkReader) header() error {
	var h [chunkHeader]byte
	if _, err := io.ReadFull(cr.r, h[:]); err != nil {
		return fmt.Errorf("body cut off after %d bytes: %w", cr.total, noEOF(err))
	}
	switch n := binary.BigEndian.Uint32(h[:]); {
	case n == bulkAbort:
		return errBulkAborted
	case n > bulkChunk:
		return fmt.Errorf("%w: a chunk of %d bytes", errBadFrame, n)
	case n > 0:
		cr.left = int(n)
		return nil
	}
	var t [chunkTrailer]byte
	if _, err := io.ReadFull(cr.r, t[:]); err != nil {
		return fmt.Errorf("body cut off at its end: %w", noEOF(err))
	}
	total, crc := int64(binary.BigEndian.Uint64(t[:8])), binary.BigEndian.Uint32(t[8:])
	if got := cr.digest().Sum32(); total != cr.total || crc != got {
		return fmt.Errorf("%w: %d bytes with checksum %08x arrived, the sender sent %d with %08x",
			errBulkCorrupt, cr.total, got, total, crc)
	}
	return io.EOF
}
