package envd

import (
	"sync"
	"unicode/utf8"
)

// outputLog is a background process's latest output, stdout and stderr
// interleaved in the order they were read, each chunk marked with its
// stream, and then its exit. Writers append; readers each hold an offset
// into the whole output and wait for more. What falls out of the window
// (the oldest output past limit) is gone: a reader behind it skips ahead.
type outputLog struct {
	limit int // bytes held, each chunk counted with chunkCost more

	mu      sync.Mutex
	chunks  []outputChunk
	start   int64 // offset of the first byte held
	end     int64 // offset past the last byte written
	cost    int   // what chunks cost against limit
	exited  bool
	code    int
	changed chan struct{} // closed and replaced at every write and at exit
}

type outputChunk struct {
	typ  byte // frameStdout or frameStderr
	off  int64
	data []byte
}

// chunkCost is what a chunk costs beyond its bytes, so that a process
// writing a byte at a time cannot make the log hold a million chunks.
const chunkCost = 64

// mergeBelow is the size under which a write joins the chunk before it
// when both are of one stream: output read in small pieces is held in
// few chunks.
const mergeBelow = outputChunkSize

func newOutputLog(limit int) *outputLog {
	return &outputLog{limit: limit, changed: make(chan struct{})}
}

// write appends p, read from the stream typ, and drops the oldest output
// past the limit.
func (l *outputLog) write(typ byte, p []byte) {
	if len(p) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.chunks); n > 0 && l.chunks[n-1].typ == typ && len(l.chunks[n-1].data)+len(p) <= mergeBelow {
		l.chunks[n-1].data = append(l.chunks[n-1].data, p...)
	} else {
		data := make([]byte, len(p), max(len(p), 4<<10))
		copy(data, p)
		l.chunks = append(l.chunks, outputChunk{typ: typ, off: l.end, data: data})
		l.cost += chunkCost
	}
	l.end += int64(len(p))
	l.cost += len(p)
	l.trim()
	l.notify()
}

// trim drops the oldest output until the log is within its limit. A chunk
// cut in two keeps its tail from a rune's start, so the text a reader
// sees first is never half a character.
func (l *outputLog) trim() {
	drop := 0
	for l.cost > l.limit && drop < len(l.chunks)-1 {
		l.cost -= chunkCost + len(l.chunks[drop].data)
		drop++
	}
	if drop > 0 {
		clear(l.chunks[:drop])
		l.chunks = l.chunks[drop:]
		if cap(l.chunks) > 2*len(l.chunks)+16 {
			l.chunks = append([]outputChunk(nil), l.chunks...)
		}
	}
	if over := l.cost - l.limit; over > 0 {
		c := &l.chunks[0]
		cut := min(over, len(c.data))
		for cut < len(c.data) && cut < over+utf8.UTFMax && !utf8.RuneStart(c.data[cut]) {
			cut++
		}
		c.data = c.data[cut:]
		c.off += int64(cut)
		l.cost -= cut
	}
	l.start = l.chunks[0].off
}

// exit records the process's exit: readers that have read everything are
// told.
func (l *outputLog) exit(code int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.exited, l.code = true, code
	l.notify()
}

func (l *outputLog) notify() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// readResult is what a reader at some offset reads next.
type readResult struct {
	typ    byte            // of data
	n      int             // bytes copied into the reader's buffer
	next   int64           // the reader's offset after them
	exited bool            // no data: the process has exited (code) and all is read
	code   int             // the exit code
	wait   <-chan struct{} // no data, not exited: closed when there is more
}

// read copies into buf what follows offset off, from one chunk (one
// stream); an offset before the window starts at the window.
func (l *outputLog) read(off int64, buf []byte) readResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	off = max(off, l.start)
	if off >= l.end {
		if l.exited {
			return readResult{next: off, exited: true, code: l.code}
		}
		return readResult{next: off, wait: l.changed}
	}
	// The chunk holding off: the last one starting at or before it.
	lo, hi := 0, len(l.chunks)
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if l.chunks[mid].off <= off {
			lo = mid
		} else {
			hi = mid
		}
	}
	c := l.chunks[lo]
	n := copy(buf, c.data[off-c.off:])
	return readResult{typ: c.typ, n: n, next: off + int64(n)}
}

// held reports the window: what the log holds, as offsets.
func (l *outputLog) held() (start, end int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.start, l.end
}
