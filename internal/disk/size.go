package disk

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// The qcow2 header holds the virtual size (8 bytes) at 24.
const qcow2SizeEnd = 32

// VirtualSize is the size of the disk a qcow2 image gives its guest (what
// the guest's file system is made in), read from its header.
func VirtualSize(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var h [qcow2SizeEnd]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return 0, fmt.Errorf("read qcow2 header of %s: %w", path, err)
	}
	if binary.BigEndian.Uint32(h[0:4]) != qcow2Magic {
		return 0, fmt.Errorf("%s is not a qcow2 image", path)
	}
	return int64(binary.BigEndian.Uint64(h[24:32])), nil
}

// MaxOverlay bounds the host disk a qcow2 overlay of a disk of virtual
// size bytes can take, however the guest writes: each guest block is
// allocated once (the guest's discards are ignored, so a freed block is
// rewritten in place), plus the tables that map them — an 8-byte L2 entry
// and a 2-byte refcount per 64 KiB cluster, an L1 table and the header —
// which this overstates, at 1/4096 of the size and 1 MiB.
func MaxOverlay(size int64) int64 {
	return size + size/4096 + 1<<20
}
