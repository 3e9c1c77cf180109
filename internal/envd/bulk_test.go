package envd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/wrennhq/wrenn"
)

// bulkPair is a Bulk whose connections reach a bulkServer, one at a
// time as a port serves them; flip, when set, damages one byte of what
// goes over the connection at the given offset.
type bulkPair struct {
	b   *Bulk
	wg  sync.WaitGroup
	dir string
	// flipUp / flipDown: offset of a byte to damage host → guest or
	// guest → host, -1 for none.
	flipUp, flipDown atomic.Int64
	// s is the guest's end; set its fields before the first transfer.
	s *bulkServer
}

func newBulkPair(t *testing.T) *bulkPair { return newBulkPairPort(t, false) }

// newBulkPairPort is newBulkPair; with port, the guest's end is a
// bulkPort on the socket's descriptor, as on a VM's port (sendfile and
// all), and damages nothing.
func newBulkPairPort(t *testing.T, port bool) *bulkPair {
	t.Helper()
	p := &bulkPair{dir: t.TempDir()}
	p.flipUp.Store(-1)
	p.flipDown.Store(-1)
	s := &bulkServer{log: testLog(t)}
	p.s = s
	p.b = NewBulk(func(context.Context) (net.Conn, error) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		f := os.NewFile(uintptr(fds[0]), "host")
		defer f.Close()
		host, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		var guest io.ReadWriteCloser = &bulkPort{fd: fds[1], closed: make(chan struct{})}
		if !port {
			g := os.NewFile(uintptr(fds[1]), "guest")
			gc, err := net.FileConn(g)
			g.Close()
			if err != nil {
				t.Fatal(err)
			}
			guest = &flipConn{Conn: gc, readAt: &p.flipUp, writeAt: &p.flipDown}
		}
		p.wg.Go(func() {
			defer guest.Close()
			s.serve(guest)
		})
		return host, nil
	}, testLog(t))
	t.Cleanup(func() {
		p.b.Close()
		p.wg.Wait()
	})
	return p
}

// flipConn damages the byte at offset *readAt of what it reads and at
// *writeAt of what it writes.
type flipConn struct {
	net.Conn
	readAt, writeAt *atomic.Int64
	read, written   int64
}

func (c *flipConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	flip(b[:n], c.read, c.readAt)
	c.read += int64(n)
	return n, err
}

func (c *flipConn) Write(b []byte) (int, error) {
	b = bytes.Clone(b)
	flip(b, c.written, c.writeAt)
	n, err := c.Conn.Write(b)
	c.written += int64(n)
	return n, err
}

func flip(b []byte, at int64, want *atomic.Int64) {
	if w := want.Load(); w >= at && w < at+int64(len(b)) {
		b[w-at] ^= 0x20
	}
}

func randomBytes(tb testing.TB, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func readAllBulk(t *testing.T, b *Bulk, path string) ([]byte, error) {
	t.Helper()
	rc, err := b.ReadFile(context.Background(), path)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// leftovers lists files in dir other than want.
func leftovers(t *testing.T, dir string, want ...string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if !strings.Contains(strings.Join(want, "/"), e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestBulkRoundTrip(t *testing.T) {
	t.Run("socket", func(t *testing.T) { testBulkRoundTrip(t, newBulkPairPort(t, false)) })
	t.Run("port", func(t *testing.T) { testBulkRoundTrip(t, newBulkPairPort(t, true)) })
	// A guest from before XXH64 takes the offer as unknown: CRC32C.
	crcOnly := func(p *bulkPair) *bulkPair { p.s.crcOnly = true; return p }
	t.Run("socket, CRC32C guest", func(t *testing.T) { testBulkRoundTrip(t, crcOnly(newBulkPairPort(t, false))) })
	t.Run("port, CRC32C guest", func(t *testing.T) { testBulkRoundTrip(t, crcOnly(newBulkPairPort(t, true))) })
}

// TestBulkSumAgreed shows which checksum a transfer's body is summed by:
// XXH64 where the guest takes the host's offer, else CRC32C.
func TestBulkSumAgreed(t *testing.T) {
	for _, crcOnly := range []bool{false, true} {
		p := newBulkPair(t)
		p.s.crcOnly = crcOnly
		path := filepath.Join(p.dir, "f")
		if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		rc, err := p.b.ReadFile(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		_, xxh := rc.(*bulkReader).cr.sum.(xxhSum)
		io.Copy(io.Discard, rc)
		rc.Close()
		if xxh == crcOnly {
			t.Errorf("a guest that takes only CRC32C: %v; the body summed by XXH64: %v", crcOnly, xxh)
		}
	}
}

func testBulkRoundTrip(t *testing.T, p *bulkPair) {
	for _, size := range []int{0, 1, bulkChunk - 1, bulkChunk, 3*bulkChunk + 12345} {
		data := randomBytes(t, size)
		path := filepath.Join(p.dir, "sub", "f.bin")
		if err := p.b.WriteFile(context.Background(), path, bytes.NewReader(data)); err != nil {
			t.Fatalf("write %d bytes: %v", size, err)
		}
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: the file holds %d bytes (%v)", size, len(got), err)
		}
		got, err := readAllBulk(t, p.b, path)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read %d bytes: got %d (%v)", size, len(got), err)
		}
	}
	if l := leftovers(t, filepath.Join(p.dir, "sub"), "f.bin"); len(l) > 0 {
		t.Errorf("left behind: %v", l)
	}
}

func TestBulkRefusals(t *testing.T) {
	p := newBulkPair(t)
	ctx := context.Background()
	if _, err := readAllBulk(t, p.b, filepath.Join(p.dir, "missing")); wrenn.ErrorCode(err) != wrenn.ENotFound {
		t.Errorf("read a missing file: %v, want not found", err)
	}
	if _, err := readAllBulk(t, p.b, p.dir); wrenn.ErrorCode(err) != wrenn.EInvalid {
		t.Errorf("read a directory: %v, want invalid", err)
	}
	if err := p.b.WriteFile(ctx, p.dir, strings.NewReader("x")); wrenn.ErrorCode(err) != wrenn.EInvalid {
		t.Errorf("write over a directory: %v, want invalid", err)
	}
	// The channel is still in step.
	if err := p.b.WriteFile(ctx, filepath.Join(p.dir, "ok"), strings.NewReader("fine")); err != nil {
		t.Fatal(err)
	}
}

// A damaged byte on the way in fails the upload and leaves no file; on
// the way out it fails the download.
func TestBulkDetectsDamage(t *testing.T) {
	t.Run("xxh64", func(t *testing.T) { testBulkDetectsDamage(t, newBulkPair(t)) })
	t.Run("crc32c", func(t *testing.T) {
		p := newBulkPair(t)
		p.s.crcOnly = true
		testBulkDetectsDamage(t, p)
	})
}

func testBulkDetectsDamage(t *testing.T, p *bulkPair) {
	data := randomBytes(t, 2*bulkChunk+100)
	path := filepath.Join(p.dir, "f.bin")
	p.flipUp.Store(bulkChunk + 4096) // inside the body, past the handshake
	err := p.b.WriteFile(context.Background(), path, bytes.NewReader(data))
	if err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged upload: %v, want an error about damage", err)
	}
	if l := leftovers(t, p.dir); len(l) > 0 {
		t.Errorf("a damaged upload left %v", l)
	}
	p.flipUp.Store(-1)
	if err := p.b.WriteFile(context.Background(), path, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	p.flipDown.Store(1 << 20) // well into the body of the next download
	if _, err := readAllBulk(t, p.b, path); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged download: %v, want an error about damage", err)
	}
}

// failAfter yields n bytes of data, then fails.
type failAfter struct {
	r io.Reader
	n int
}

var errSource = errors.New("the client went away")

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errSource
	}
	p = p[:min(len(p), f.n)]
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

// An upload whose source fails part way leaves nothing behind, and the
// channel takes the next transfer; so does a download its reader drops.
func TestBulkAbort(t *testing.T) {
	p := newBulkPair(t)
	ctx := context.Background()
	path := filepath.Join(p.dir, "f.bin")
	src := &failAfter{r: bytes.NewReader(randomBytes(t, 4*bulkChunk)), n: bulkChunk + 777}
	if err := p.b.WriteFile(ctx, path, src); !errors.Is(err, errSource) {
		t.Fatalf("upload: %v, want the source's error", err)
	}
	if l := leftovers(t, p.dir); len(l) > 0 {
		t.Fatalf("an aborted upload left %v", l)
	}
	data := randomBytes(t, 3*bulkChunk)
	if err := p.b.WriteFile(ctx, path, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	// A download given up after its first bytes.
	rc, err := p.b.ReadFile(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(rc, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	// The next transfer may find the channel busy or redialling: it says
	// so rather than failing, and a later one goes through.
	var got []byte
	for range 100 {
		if got, err = readAllBulk(t, p.b, path); !errors.Is(err, ErrBulkUnavailable) {
			break
		}
		sleep(ctx, bulkRedialAfter/10)
	}
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after a dropped download: %d bytes, %v", len(got), err)
	}
}

// A transfer that finds the channel in use is told so at once.
func TestBulkBusy(t *testing.T) {
	p := newBulkPair(t)
	path := filepath.Join(p.dir, "f.bin")
	if err := p.b.WriteFile(context.Background(), path, strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	rc, err := p.b.ReadFile(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := p.b.WriteFile(context.Background(), path, strings.NewReader("y")); !errors.Is(err, ErrBulkUnavailable) {
		t.Errorf("a second transfer: %v, want ErrBulkUnavailable", err)
	}
}

// The chunk framing on its own: a body reads back whole, and a damaged
// byte, a wrong length or a body cut short is an error, never io.EOF.
func TestChunkFraming(t *testing.T) {
	data := randomBytes(t, 2*bulkChunk+5)
	var buf bytes.Buffer
	cw := newChunkWriter(&buf, bulkChunk, hostSum(""))
	for r := bytes.NewReader(data); ; {
		n, _ := io.ReadFull(r, cw.payload())
		if n == 0 {
			break
		}
		if err := cw.send(n); err != nil {
			t.Fatal(err)
		}
	}
	if err := cw.end(); err != nil {
		t.Fatal(err)
	}
	framed := buf.Bytes()
	read := func(b []byte) ([]byte, error) {
		cr := &chunkReader{r: bufio.NewReaderSize(bytes.NewReader(b), bulkBufSize)}
		return io.ReadAll(cr)
	}
	if got, err := read(framed); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("whole body: %d bytes, %v", len(got), err)
	}
	for name, b := range map[string][]byte{
		"damaged byte": func() []byte { b := bytes.Clone(framed); b[chunkHeader+10] ^= 1; return b }(),
		"damaged crc":  func() []byte { b := bytes.Clone(framed); b[len(b)-1] ^= 1; return b }(),
		"cut short":    framed[:len(framed)-chunkTrailer-chunkHeader-3],
		"no end":       framed[:len(framed)-chunkTrailer-chunkHeader],
		"huge chunk":   {0x7f, 0xff, 0xff, 0xff},
	} {
		if _, err := read(b); err == nil || errors.Is(err, io.EOF) {
			t.Errorf("%s: %v, want an error", name, err)
		}
	}
}

// A host that repeats hello and go before it hears back (a guest slow to
// answer) gets the transfer served once, its body read past the repeats.
func TestBulkRepeatedGo(t *testing.T) {
	host, guest := MustSocketpair(t)
	s := &bulkServer{log: testLog(t)}
	var wg sync.WaitGroup
	wg.Go(func() {
		defer guest.Close()
		s.serve(guest)
	})
	defer func() {
		host.Close()
		wg.Wait()
	}()
	path := filepath.Join(t.TempDir(), "f")
	var ask bytes.Buffer
	for range 3 {
		writeBulkLine(&ask, bulkHello, "n1", nil)
		writeBulkLine(&ask, bulkGo, "n1", bulkRequest{Op: bulkWrite, Path: path})
	}
	if _, err := host.Write(ask.Bytes()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(host)
	expect := func(want string) bulkReply {
		t.Helper()
		for {
			word, nonce, rest, err := readBulkLine(br)
			if err != nil {
				t.Fatal(err)
			}
			if word == bulkOK {
				continue
			}
			var r bulkReply
			json.Unmarshal(rest, &r)
			if word != want || nonce != "n1" || r.Type != msgOK {
				t.Fatalf("got %s %s %+v, want %s", word, nonce, r, want)
			}
			return r
		}
	}
	expect(bulkReady)
	writeBulkLine(host, bulkBody, "n1", nil)
	cw := newChunkWriter(host, 10, hostSum(""))
	copy(cw.payload(), "0123456789")
	if err := cw.send(10); err != nil {
		t.Fatal(err)
	}
	cw.end()
	if r := expect(bulkDone); r.Size != 10 {
		t.Fatalf("done: %+v", r)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "0123456789" {
		t.Fatalf("file: %q, %v", b, err)
	}
}

// The guest's table CRC32C is hash/crc32's, for every length and start.
func TestCRC32CTables(t *testing.T) {
	data := randomBytes(t, 4096+13)
	for _, n := range []int{0, 1, 7, 8, 9, 63, 4096 + 13} {
		for _, seed := range []uint32{0, 0xdeadbeef} {
			if got, want := crc32cTables(seed, data[:n]), crc32cStd(seed, data[:n]); got != want {
				t.Errorf("%d bytes from %08x: %08x, want %08x", n, seed, got, want)
			}
		}
	}
	if guestCRC()(0, data) != crc32cStd(0, data) {
		t.Error("guestCRC differs")
	}
}

func BenchmarkCRC32C(b *testing.B) {
	data := randomBytes(b, 1<<20)
	b.Run("tables", func(b *testing.B) {
		b.SetBytes(1 << 20)
		for b.Loop() {
			crc32cTables(0, data)
		}
	})
	b.Run("hash-crc32", func(b *testing.B) {
		b.SetBytes(1 << 20)
		for b.Loop() {
			crc32cStd(0, data)
		}
	})
}

// TestMapSum sums a file through its mapping as the copy would, and a file
// cut short under the mapping is an error, not a crash.
func TestMapSum(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	data := randomBytes(t, bulkChunk+3*4096+17)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sum := &crcSum{update: crc32cTables}
	var off int64
	for {
		n, err := mapSum(sum, f, off)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		off += int64(n)
	}
	if crc := sum.Sum32(); off != int64(len(data)) || crc != crc32cStd(0, data) {
		t.Errorf("summed %d bytes to %08x, want %d to %08x", off, crc, len(data), crc32cStd(0, data))
	}
	cut := func(crc uint32, p []byte) uint32 {
		if err := os.Truncate(path, 0); err != nil {
			t.Fatal(err)
		}
		return crc32cTables(crc, p)
	}
	if n, err := mapSum(&crcSum{update: cut}, f, 0); !errors.Is(err, errFileShrank) || n != 0 {
		t.Errorf("a file cut short under the mapping: n %d, err %v", n, err)
	}
	// XXH64's loop is assembly: its fault is recovered all the same.
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := mapSum(truncating{xxhSum: guestSum(sumXXH64).(xxhSum), path: path}, f, 0); !errors.Is(err, errFileShrank) || n != 0 {
		t.Errorf("a file cut short under the mapping, XXH64: n %d, err %v", n, err)
	}
}

// truncating cuts its file to nothing before it sums.
type truncating struct {
	xxhSum
	path string
}

func (tr truncating) Write(p []byte) (int, error) {
	if err := os.Truncate(tr.path, 0); err != nil {
		return 0, err
	}
	return tr.xxhSum.Write(p)
}

// TestBulkReadsUnmappable downloads a file that says it is empty and
// cannot be mapped (procfs) over the port, whose downloads map files.
func TestBulkReadsUnmappable(t *testing.T) {
	p := newBulkPairPort(t, true)
	want, err := os.ReadFile("/proc/version")
	if err != nil {
		t.Skip(err)
	}
	got, err := readAllBulk(t, p.b, "/proc/version")
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("got %q (%v), want %q", got, err, want)
	}
}
