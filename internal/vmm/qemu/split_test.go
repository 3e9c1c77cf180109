package qemu

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// stream builds migration streams for the splitter's tests.
type stream struct{ bytes.Buffer }

func (s *stream) be32(v uint32) *stream { binary.Write(&s.Buffer, binary.BigEndian, v); return s }
func (s *stream) be64(v uint64) *stream { binary.Write(&s.Buffer, binary.BigEndian, v); return s }
func (s *stream) str(v string) *stream  { s.WriteByte(byte(len(v))); s.WriteString(v); return s }
func (s *stream) b(v ...byte) *stream   { s.Write(v); return s }

func (s *stream) header() *stream {
	s.be32(streamMagic).be32(streamVersion)
	// The configuration section with the subsections QEMU 7.2 sends.
	s.b(secConfig).be32(7).b([]byte("microvm")...)
	s.b(secSubsection).str("configuration/target-page-bits").be32(1).be32(12)
	s.b(secSubsection).str("configuration/capabilities").be32(1).be32(1).str("x-ignore-shared")
	// The RAM section's start: two blocks, each with its address.
	s.b(secStart).be32(2).str("ram").be32(0).be32(4)
	s.be64((3*pageSize + pageSize) | ramMemSize)
	s.str("pc.bios").be64(pageSize).be64(0xfffc0000)
	s.str(memoryBlock).be64(3 * pageSize).be64(0)
	s.be64(ramEOS).b(secFooter).be32(2)
	return s
}

func page(fill byte) []byte { return bytes.Repeat([]byte{fill}, pageSize) }

func TestSplitStream(t *testing.T) {
	var in stream
	in.header()
	// A part: mem page 0 data, page 1 zero, a bios page, mem page 2 data
	// continuing... from the bios block as far as the stream says.
	in.b(secPart).be32(2)
	in.be64(0 | ramPage).str(memoryBlock).b(page(0xaa)...)
	in.be64(pageSize | ramZero | ramContinue).b(0)
	in.be64(0 | ramPage).str("pc.bios").b(page(0xbb)...)
	in.be64(2*pageSize | ramPage).str(memoryBlock).b(page(0xcc)...)
	in.be64(ramEOS).b(secFooter).be32(2)
	// The end, then a device's state, which is copied as it is.
	in.b(secEnd).be32(2).be64(ramEOS).b(secFooter).be32(2)
	device := []byte{secFull, 0, 0, 0, 3, 4, 'c', 'p', 'u', 0, 0, 0, 0, 0, 0, 0, 1, 0xde, 0xad, secFooter, 0, 0, 0, 3, secEOF}
	in.b(device...)

	mem, err := os.Create(filepath.Join(t.TempDir(), "mem"))
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	var out bytes.Buffer
	if err := splitStream(bytes.NewReader(in.Bytes()), &out, mem, memoryBlock, true); err != nil {
		t.Fatal(err)
	}

	got, err := os.ReadFile(mem.Name())
	if err != nil {
		t.Fatal(err)
	}
	want := append(append(page(0xaa), page(0)...), page(0xcc)...)
	if !bytes.Equal(got, want) {
		t.Errorf("memory file: %d bytes, want the two pages around a hole", len(got))
	}
	var exp stream
	exp.header()
	exp.b(secPart).be32(2)
	exp.be64(0 | ramPage).str("pc.bios").b(page(0xbb)...) // names its block: the page before it was dropped
	exp.be64(ramEOS).b(secFooter).be32(2)
	exp.b(secEnd).be32(2).be64(ramEOS).b(secFooter).be32(2)
	exp.b(device...)
	if !bytes.Equal(out.Bytes(), exp.Bytes()) {
		t.Errorf("device stream:\n got %x\nwant %x", out.Bytes(), exp.Bytes())
	}
}

func TestSplitStreamRejects(t *testing.T) {
	for _, c := range []struct {
		name, want string
		build      func(*stream)
	}{
		{"not a stream", "not a migration stream", func(s *stream) { s.b([]byte("hello world")...) }},
		{"compressed page", "unsupported RAM record", func(s *stream) {
			s.header().b(secPart).be32(2).be64(0x100 | ramContinue)
		}},
		{"page outside the block", "outside block", func(s *stream) {
			s.header().b(secPart).be32(2).be64(3*pageSize | ramPage).str(memoryBlock).b(page(1)...)
		}},
		{"another section", "not the RAM's", func(s *stream) { s.header().b(secPart).be32(9) }},
		{"truncated", "unexpected EOF", func(s *stream) {
			s.header().b(secPart).be32(2).be64(0|ramPage).str(memoryBlock).b(1, 2, 3)
		}},
		{"unknown subsection", "unknown configuration subsection", func(s *stream) {
			s.be32(streamMagic).be32(streamVersion).b(secConfig).be32(1).b('m').b(secSubsection).str("configuration/new").be32(1)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var in stream
			c.build(&in)
			mem, err := os.Create(filepath.Join(t.TempDir(), "mem"))
			if err != nil {
				t.Fatal(err)
			}
			defer mem.Close()
			var out bytes.Buffer
			err = splitStream(bytes.NewReader(in.Bytes()), &out, mem, memoryBlock, true)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one saying %q", err, c.want)
			}
		})
	}
}
