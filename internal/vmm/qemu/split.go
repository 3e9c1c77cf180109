package qemu

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// A VM whose RAM is a private mapping (a clone of a template) cannot leave
// its RAM out of a migration stream the way a shared memory file can, and
// a stream holding the RAM is slow to restore: every page is read up
// front. So its snapshot is split on the way: the agent reads the stream
// through a pipe, writes the pages of the guest's memory block into a
// sparse memory file at their offsets, and keeps the rest. The result is
// what a VM with shared RAM would have written under x-ignore-shared: a
// device-state stream and a memory file that restores map lazily.
//
// Only the parts of the stream that must be understood are parsed: the
// header, the configuration section, and the RAM sections, which precede
// every other device's state. RAM records are QEMU's precopy format
// (migration/ram.c); anything this splitter does not know, such as
// compressed or XBZRLE pages, fails the snapshot rather than being
// guessed at.

// Migration stream markers (migration/savevm.c).
const (
	streamMagic   = 0x5145564d // "QEVM"
	streamVersion = 3

	secStart      = 0x01
	secPart       = 0x02
	secEnd        = 0x03
	secFull       = 0x04
	secSubsection = 0x05
	secConfig     = 0x07
	secEOF        = 0x08
	secFooter     = 0x7e
)

// RAM record flags, in the low bits of each record's page address.
const (
	ramZero     = 0x02
	ramMemSize  = 0x04
	ramPage     = 0x08
	ramEOS      = 0x10
	ramContinue = 0x20
	ramFlagMask = pageSize - 1
	pageSize    = 4096 // TARGET_PAGE_SIZE of x86
)

// memoryBlock is the RAM block of the guest's memory backend (its id).
const memoryBlock = "mem"

// maxMemWrite bounds one write of contiguous pages to the memory file.
const maxMemWrite = 1 << 20

// splitter copies a migration stream to out, diverting the pages of one
// RAM block into a memory file.
type splitter struct {
	in        *bufio.Reader
	out       *bufio.Writer
	mem       *os.File
	block     string
	withAddrs bool // the stream was made under x-ignore-shared

	inBlock, outBlock string // the block of the last record read, written
	memSize           int64  // the diverted block's size, once known

	run    []byte // contiguous pages not yet written to mem
	runOff int64
}

// splitStream reads a migration stream from r and writes it to out
// without the pages of RAM block, which go into mem (empty; it is sized
// to the block) at their offsets. Zero pages are left as holes. withAddrs
// says the stream was made with x-ignore-shared on: its block list then
// carries each block's guest address.
func splitStream(r io.Reader, out io.Writer, mem *os.File, block string, withAddrs bool) error {
	s := &splitter{in: bufio.NewReaderSize(r, 1<<20), out: bufio.NewWriterSize(out, 64<<10), mem: mem,
		block: block, withAddrs: withAddrs, memSize: -1}
	if err := s.split(); err != nil {
		return fmt.Errorf("split snapshot stream: %w", err)
	}
	if err := s.flushRun(); err != nil {
		return err
	}
	return s.out.Flush()
}

func (s *splitter) split() error {
	if magic, err := s.be32(); err != nil || magic != streamMagic {
		return fmt.Errorf("not a migration stream (magic %#x): %w", magic, err)
	}
	if v, err := s.be32(); err != nil || v != streamVersion {
		return fmt.Errorf("stream version %d is not %d: %w", v, streamVersion, err)
	}
	ramSection := uint32(0)
	seenRAM := false
	for {
		typ, err := s.byte()
		if err != nil {
			return err
		}
		switch typ {
		case secConfig:
			if err := s.configuration(); err != nil {
				return err
			}
			continue
		case secStart, secFull:
			id, err := s.be32()
			if err != nil {
				return err
			}
			name, err := s.str()
			if err != nil {
				return err
			}
			if err := s.copyN(8); err != nil { // instance and version ids
				return err
			}
			if typ == secFull {
				if s.memSize < 0 {
					return errors.New("device state before the RAM block list")
				}
				// Every device's state follows the RAM: the rest is theirs.
				return s.copyRest()
			}
			if name != "ram" || seenRAM {
				return fmt.Errorf("unexpected iterative section %q", name)
			}
			ramSection, seenRAM = id, true
		case secPart, secEnd:
			id, err := s.be32()
			if err != nil {
				return err
			}
			if !seenRAM || id != ramSection {
				return fmt.Errorf("section %d is not the RAM's", id)
			}
		case secEOF:
			return s.copyRest()
		default:
			return fmt.Errorf("unknown section type %#x", typ)
		}
		if err := s.ram(); err != nil {
			return err
		}
		if err := s.footer(); err != nil {
			return err
		}
	}
}

// configuration copies the configuration section: the machine type's
// name and the subsections QEMU sends with it.
func (s *splitter) configuration() error {
	n, err := s.be32()
	if err != nil {
		return err
	}
	if err := s.copyN(int(n)); err != nil {
		return err
	}
	for {
		b, err := s.in.Peek(1)
		if err != nil {
			return err
		}
		if b[0] != secSubsection {
			return nil
		}
		if err := s.copyN(1); err != nil {
			return err
		}
		name, err := s.str()
		if err != nil {
			return err
		}
		if err := s.copyN(4); err != nil { // version
			return err
		}
		switch name {
		case "configuration/target-page-bits":
			err = s.copyN(4)
		case "configuration/uuid":
			err = s.copyN(16)
		case "configuration/capabilities":
			var count uint32
			if count, err = s.be32(); err == nil {
				for range count {
					if _, err = s.str(); err != nil {
						break
					}
				}
			}
		default:
			return fmt.Errorf("unknown configuration subsection %q", name)
		}
		if err != nil {
			return err
		}
	}
}

// ram handles the records of one RAM section, up to its end-of-section.
func (s *splitter) ram() error {
	s.outBlock = "" // each section's first page names its block
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(s.in, hdr[:]); err != nil {
			return err
		}
		v := binary.BigEndian.Uint64(hdr[:])
		addr, flags := int64(v&^ramFlagMask), v&ramFlagMask
		switch flags &^ ramContinue {
		case ramMemSize:
			if _, err := s.out.Write(hdr[:]); err != nil {
				return err
			}
			if err := s.blockList(addr); err != nil {
				return err
			}
		case ramEOS:
			if err := s.flushRun(); err != nil {
				return err
			}
			_, err := s.out.Write(hdr[:])
			return err
		case ramZero, ramPage:
			if flags&ramContinue == 0 {
				name, err := s.readStr()
				if err != nil {
					return err
				}
				s.inBlock = name
			} else if s.inBlock == "" {
				return errors.New("a page continues no block")
			}
			if err := s.page(addr, flags&^ramContinue); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unsupported RAM record flags %#x", flags)
		}
	}
}

// blockList copies the list of RAM blocks, noting the diverted block's
// size and sizing the memory file to it.
func (s *splitter) blockList(total int64) error {
	for total > 0 {
		name, err := s.str()
		if err != nil {
			return err
		}
		size, err := s.be64()
		if err != nil {
			return err
		}
		if s.withAddrs {
			if err := s.copyN(8); err != nil {
				return err
			}
		}
		if name == s.block {
			s.memSize = int64(size)
			if err := s.mem.Truncate(s.memSize); err != nil {
				return err
			}
		}
		total -= int64(size)
	}
	if total != 0 || s.memSize < 0 {
		return fmt.Errorf("RAM block list does not add up or lacks %q", s.block)
	}
	return nil
}

// page diverts or copies one page record whose header has been read.
func (s *splitter) page(addr int64, kind uint64) error {
	if s.inBlock == s.block {
		if addr+pageSize > s.memSize {
			return fmt.Errorf("page at %#x is outside block %q", addr, s.block)
		}
		if kind == ramZero {
			ch, err := s.in.ReadByte()
			if err != nil {
				return err
			}
			if ch != 0 {
				return fmt.Errorf("zero page of fill %#x", ch)
			}
			return nil // a hole in the memory file
		}
		if len(s.run) > 0 && (s.runOff+int64(len(s.run)) != addr || len(s.run) >= maxMemWrite) {
			if err := s.flushRun(); err != nil {
				return err
			}
		}
		if len(s.run) == 0 {
			s.runOff = addr
		}
		n := len(s.run)
		s.run = append(s.run, make([]byte, pageSize)...)
		_, err := io.ReadFull(s.in, s.run[n:])
		return err
	}
	// Another block's page stays in the stream, naming its block unless
	// the last page written was of the same one.
	flags := kind
	if s.outBlock == s.inBlock {
		flags |= ramContinue
	}
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(addr)|flags)
	if _, err := s.out.Write(hdr[:]); err != nil {
		return err
	}
	if flags&ramContinue == 0 {
		s.out.WriteByte(byte(len(s.inBlock)))
		s.out.WriteString(s.inBlock)
	}
	s.outBlock = s.inBlock
	n := 1
	if kind == ramPage {
		n = pageSize
	}
	return s.copyN(n)
}

func (s *splitter) flushRun() error {
	if len(s.run) == 0 {
		return nil
	}
	_, err := s.mem.WriteAt(s.run, s.runOff)
	s.run = s.run[:0]
	if err != nil {
		return fmt.Errorf("write memory file: %w", err)
	}
	return nil
}

// footer copies a section footer if one follows.
func (s *splitter) footer() error {
	b, err := s.in.Peek(1)
	if err != nil {
		return err
	}
	if b[0] != secFooter {
		return nil
	}
	err = s.copyN(5)
	return err
}

func (s *splitter) copyRest() error {
	_, err := io.Copy(s.out, s.in)
	return err
}

// copyN copies n bytes.
func (s *splitter) copyN(n int) error {
	_, err := io.CopyN(s.out, s.in, int64(n))
	return unexpected(err)
}

// value copies a big-endian value of len(b) bytes, reading it into b.
func (s *splitter) value(b []byte) error {
	if _, err := io.ReadFull(s.in, b); err != nil {
		return unexpected(err)
	}
	_, err := s.out.Write(b)
	return err
}

func (s *splitter) byte() (byte, error) {
	b, err := s.in.ReadByte()
	if err != nil {
		return 0, unexpected(err)
	}
	return b, s.out.WriteByte(b)
}

func (s *splitter) be32() (uint32, error) {
	var b [4]byte
	err := s.value(b[:])
	return binary.BigEndian.Uint32(b[:]), err
}

func (s *splitter) be64() (uint64, error) {
	var b [8]byte
	err := s.value(b[:])
	return binary.BigEndian.Uint64(b[:]), err
}

// str copies a string of a length byte and its bytes.
func (s *splitter) str() (string, error) {
	name, err := s.readStr()
	if err != nil {
		return "", err
	}
	s.out.WriteByte(byte(len(name)))
	_, err = s.out.WriteString(name)
	return name, err
}

// readStr reads a string of a length byte and its bytes without copying it.
func (s *splitter) readStr() (string, error) {
	n, err := s.in.ReadByte()
	if err != nil {
		return "", unexpected(err)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(s.in, b); err != nil {
		return "", unexpected(err)
	}
	return string(b), nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
