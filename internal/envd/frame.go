package envd

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Frame types; see the package doc.
const (
	frameJSON   byte = 'j'
	frameData   byte = 'd'
	frameEnd    byte = 'z'
	frameStdout byte = '1'
	frameStderr byte = '2'
)

const (
	frameHeaderSize = 5
	maxFramePayload = 1 << 20
	fileChunkSize   = 256 << 10 // file body chunk
	outputChunkSize = 32 << 10  // exec output chunk
	streamBufSize   = 8 << 10   // buffered reader on each stream
	sessionBufSize  = 64 << 10  // buffered reader on the connection
)

// errBadFrame means the peer sent a frame this side cannot take.
var errBadFrame = errors.New("malformed frame")

// putHeader fills the first frameHeaderSize bytes of b, so that a frame can
// be written with one Write (one yamux frame, never interleaved with others).
func putHeader(b []byte, typ byte, n int) {
	b[0] = typ
	binary.BigEndian.PutUint32(b[1:frameHeaderSize], uint32(n))
}

// writeFrame writes one frame with a single Write.
func writeFrame(w io.Writer, typ byte, payload []byte) error {
	b := make([]byte, frameHeaderSize+len(payload))
	putHeader(b, typ, len(payload))
	copy(b[frameHeaderSize:], payload)
	_, err := w.Write(b)
	return err
}

// writeJSON writes v as a JSON frame.
func writeJSON(w io.Writer, v any) error {
	b, err := encodeJSON(v)
	if err != nil {
		return err
	}
	return writeFrame(w, frameJSON, b)
}

// encodeJSON encodes v for a JSON frame. HTML is not escaped: a command
// full of < or & would otherwise grow sixfold towards maxFramePayload.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode message: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// writeEnd writes the end frame of a body of total bytes.
func writeEnd(w io.Writer, total int64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(total))
	return writeFrame(w, frameEnd, b[:])
}

// readHeader reads a frame header. It returns io.EOF only at a frame
// boundary; a header cut short is io.ErrUnexpectedEOF.
func readHeader(r *bufio.Reader) (typ byte, n int, err error) {
	var h [frameHeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, 0, err
	}
	n64 := binary.BigEndian.Uint32(h[1:])
	if n64 > maxFramePayload {
		return 0, 0, fmt.Errorf("%w: %d-byte payload", errBadFrame, n64)
	}
	return h[0], int(n64), nil
}

// readPayload reads n payload bytes into buf, growing it if needed.
func readPayload(r *bufio.Reader, buf []byte, n int) ([]byte, error) {
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, noEOF(err)
	}
	return buf, nil
}

// readFrame reads one whole frame, its payload in buf when it fits.
func readFrame(r *bufio.Reader, buf []byte) (typ byte, payload []byte, err error) {
	typ, n, err := readHeader(r)
	if err != nil {
		return 0, nil, err
	}
	payload, err = readPayload(r, buf, n)
	return typ, payload, err
}

// readEnd decodes the payload of an end frame.
func readEnd(r *bufio.Reader, n int) (int64, error) {
	if n != 8 {
		return 0, fmt.Errorf("%w: %d-byte end frame", errBadFrame, n)
	}
	var b [8]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, noEOF(err)
	}
	return int64(binary.BigEndian.Uint64(b[:])), nil
}

// readMessage reads one frame that must be a JSON message into v.
func readMessage(r *bufio.Reader, v any) error {
	typ, payload, err := readFrame(r, nil)
	if err != nil {
		return err
	}
	if typ != frameJSON {
		return fmt.Errorf("%w: got %q, want a message", errBadFrame, typ)
	}
	return unmarshalMessage(payload, v)
}

func unmarshalMessage(payload []byte, v any) error {
	if err := json.Unmarshal(payload, v); err != nil {
		return fmt.Errorf("%w: %w", errBadFrame, err)
	}
	return nil
}

// noEOF turns an EOF inside a frame into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
