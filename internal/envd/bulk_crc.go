package envd

import (
	"hash/crc32"
	"math"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
)

// Under QEMU's TCG the SSE4.2 crc32 instruction (and PCLMULQDQ) that
// hash/crc32 uses for CRC32C are emulated bit by bit in helpers: slower
// than plain table lookups, which TCG translates into a few host
// instructions. The guest times both on its first transfer and keeps the
// faster; under KVM that is the instruction.

// slicing8 is the CRC32C slicing-by-8 tables.
var slicing8 = sync.OnceValue(func() *[8][256]uint32 {
	var t [8][256]uint32
	for i := range 256 {
		crc := uint32(i)
		for range 8 {
			if crc&1 == 1 {
				crc = crc>>1 ^ crc32.Castagnoli
			} else {
				crc >>= 1
			}
		}
		t[0][i] = crc
	}
	for i := range 256 {
		crc := t[0][i]
		for j := 1; j < 8; j++ {
			crc = t[0][crc&0xff] ^ crc>>8
			t[j][i] = crc
		}
	}
	return &t
})

// crc32cTables updates crc with p by table lookups, 8 bytes at a time.
func crc32cTables(crc uint32, p []byte) uint32 {
	t := slicing8()
	crc = ^crc
	for len(p) >= 8 {
		crc ^= uint32(p[0]) | uint32(p[1])<<8 | uint32(p[2])<<16 | uint32(p[3])<<24
		crc = t[0][p[7]] ^ t[1][p[6]] ^ t[2][p[5]] ^ t[3][p[4]] ^
			t[4][crc>>24] ^ t[5][crc>>16&0xff] ^ t[6][crc>>8&0xff] ^ t[7][crc&0xff]
		p = p[8:]
	}
	for _, b := range p {
		crc = t[0][byte(crc)^b] ^ crc>>8
	}
	return ^crc
}

func crc32cStd(crc uint32, p []byte) uint32 { return crc32.Update(crc, castagnoli, p) }

// guestCRC is the faster of the two where the guest runs: the least of
// three timings of each, taken in turn, so that a vCPU descheduled during
// one of them (common on a busy host) does not choose for the guest's
// lifetime. The two differ 4–10× either way.
var guestCRC = sync.OnceValue(func() func(uint32, []byte) uint32 {
	buf := make([]byte, 64<<10)
	crc32cTables(0, buf) // the tables, built once
	tables, std := time.Duration(math.MaxInt64), time.Duration(math.MaxInt64)
	for range 3 {
		tables = min(tables, timeOf(crc32cTables, buf))
		std = min(std, timeOf(crc32cStd, buf))
	}
	if tables < std {
		return crc32cTables
	}
	return crc32cStd
})

func timeOf(f func(uint32, []byte) uint32, buf []byte) time.Duration {
	t0 := time.Now()
	f(0, buf)
	return time.Since(t0)
}

// bodySum is a transfer body's running checksum, the end's 32 bits:
// CRC32C, or where both ends offer it (bulkRequest.Sum) the low 32 bits
// of XXH64, which TCG runs ~17x faster than the CRC's table loop (3.6
// GB/s against 0.2-0.5 in a guest) and natively at half the speed of the
// CRC instruction (11 GB/s).
type bodySum interface {
	Write(p []byte) (int, error) // never fails
	Sum32() uint32
}

// sumXXH64 names XXH64 in bulkRequest and bulkReply; "" is CRC32C.
const sumXXH64 = "xxh64"

// crcSum is CRC32C by an update function.
type crcSum struct {
	update func(uint32, []byte) uint32
	crc    uint32
}

func (c *crcSum) Write(p []byte) (int, error) {
	c.crc = c.update(c.crc, p)
	return len(p), nil
}

func (c *crcSum) Sum32() uint32 { return c.crc }

type xxhSum struct{ *xxhash.Digest }

func (x xxhSum) Sum32() uint32 { return uint32(x.Sum64()) }

// hostSum is the checksum kind names, as the host computes it.
func hostSum(kind string) bodySum {
	if kind == sumXXH64 {
		return xxhSum{xxhash.New()}
	}
	return &crcSum{update: crc32cStd}
}

// guestSum is the checksum kind names, as the guest computes it: a CRC32C
// by the faster loop where it runs.
func guestSum(kind string) bodySum {
	if kind == sumXXH64 {
		return hostSum(kind)
	}
	return &crcSum{update: guestCRC()}
}
