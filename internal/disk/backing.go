package disk

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// qcow2 header fields (QEMU's docs/interop/qcow2.txt): magic at 0, backing
// file name offset (8 bytes) at 8 and its length (4 bytes) at 16.
const (
	qcow2Magic      = 0x514649fb // "QFI\xfb"
	qcow2HeaderSize = 20
	maxBackingName  = 1023 // QEMU's own limit
)

// Backing returns the backing file a qcow2 image names, or "" if it has
// none. It reads the header only.
func Backing(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var h [qcow2HeaderSize]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return "", fmt.Errorf("read qcow2 header of %s: %w", path, err)
	}
	if binary.BigEndian.Uint32(h[0:4]) != qcow2Magic {
		return "", fmt.Errorf("%s is not a qcow2 image", path)
	}
	off := int64(binary.BigEndian.Uint64(h[8:16]))
	n := binary.BigEndian.Uint32(h[16:20])
	if off == 0 || n == 0 {
		return "", nil
	}
	if n > maxBackingName {
		return "", fmt.Errorf("%s: backing file name of %d bytes", path, n)
	}
	name := make([]byte, n)
	if _, err := f.ReadAt(name, off); err != nil {
		return "", fmt.Errorf("read backing file name of %s: %w", path, err)
	}
	return string(name), nil
}
