package envd

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// ProtocolVersion is the version of the wire protocol this package speaks.
const ProtocolVersion = 1

// Handshake lines; see the package doc.
const (
	lineHello  = "envd-hello"
	lineOK     = "envd-ok"
	lineRefuse = "envd-refuse"
	lineGo     = "envd-go"
	lineReady  = "envd-ready"

	linePrefix = "envd-"
	maxLine    = 256
)

// Hellos are repeated until answered, backing off to this interval.
const (
	helloFirstRetry = 10 * time.Millisecond
	helloMaxRetry   = 40 * time.Millisecond
)

// ErrVersion means the guest does not speak this package's protocol.
var ErrVersion = errors.New("envd: protocol version mismatch")

// handshakeLine is one parsed handshake line.
type handshakeLine struct {
	kind   string
	fields []string
}

// parseLine finds the last handshake line in b, ignoring whatever garbage
// precedes it on the same line (stale bytes of an earlier session).
func parseLine(b []byte) (handshakeLine, bool) {
	i := bytes.LastIndex(b, []byte(linePrefix))
	if i < 0 {
		return handshakeLine{}, false
	}
	f := strings.Fields(string(b[i:]))
	if len(f) < 2 {
		return handshakeLine{}, false
	}
	return handshakeLine{kind: f[0], fields: f[1:]}, true
}

// readLine returns the next handshake line, skipping anything else.
func readLine(r *bufio.Reader) (handshakeLine, error) {
	for {
		b, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			continue // not a handshake line: its tail is read next time round
		}
		if err != nil {
			return handshakeLine{}, err
		}
		if l, ok := parseLine(b); ok {
			return l, nil
		}
	}
}

func newNonce() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// acceptHandshake is the guest's half: answer every hello until a go names
// a nonce it answered, then send ready.
func acceptHandshake(r *bufio.Reader, w io.Writer) error {
	answered := map[string]bool{}
	for {
		l, err := readLine(r)
		if err != nil {
			return err
		}
		switch l.kind {
		case lineHello:
			if len(l.fields) < 2 {
				continue
			}
			nonce := l.fields[1]
			if l.fields[0] != strconv.Itoa(ProtocolVersion) {
				if _, err := fmt.Fprintf(w, "%s %s %d\n", lineRefuse, nonce, ProtocolVersion); err != nil {
					return err
				}
				continue
			}
			if len(answered) > 64 {
				clear(answered)
			}
			answered[nonce] = true
			if _, err := fmt.Fprintf(w, "%s %d %s\n", lineOK, ProtocolVersion, nonce); err != nil {
				return err
			}
		case lineGo:
			if !answered[l.fields[0]] {
				continue
			}
			_, err := fmt.Fprintf(w, "%s %s\n", lineReady, l.fields[0])
			return err
		}
	}
}

// skipToYamux discards what the host sent between its go and its first yamux
// frame: only repeated hellos, all text, while a yamux frame starts with
// version byte 0.
func skipToYamux(r *bufio.Reader) error {
	for {
		b, err := r.Peek(1)
		if err != nil {
			return err
		}
		if b[0] == 0 {
			return nil
		}
		if _, err := r.Discard(1); err != nil {
			return err
		}
	}
}

// dialHandshake is the host's half. It repeats its hello until answered,
// sends go, and returns once the guest is ready. Lines arrive from a reader
// goroutine; closing done (or the connection) ends it early.
func dialHandshake(r *bufio.Reader, w io.Writer, done <-chan struct{}) error {
	nonce := newNonce()
	hello := fmt.Sprintf("%s %d %s\n", lineHello, ProtocolVersion, nonce)
	lines := make(chan handshakeLine)
	readErr := make(chan error, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			l, err := readLine(r)
			if err != nil {
				readErr <- err
				return
			}
			select {
			case lines <- l:
			case <-stop:
				return
			}
			if l.kind == lineReady && len(l.fields) > 0 && l.fields[0] == nonce {
				return // the rest of r is yamux
			}
		}
	}()

	retry := helloFirstRetry
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
			if _, err := io.WriteString(w, hello); err != nil {
				return fmt.Errorf("send hello: %w", err)
			}
			timer.Reset(retry)
			retry = min(2*retry, helloMaxRetry)
		case l := <-lines:
			if len(l.fields) == 0 {
				continue
			}
			switch {
			case l.kind == lineOK && len(l.fields) == 2 && l.fields[1] == nonce:
				if _, err := fmt.Fprintf(w, "%s %s\n", lineGo, nonce); err != nil {
					return fmt.Errorf("send go: %w", err)
				}
			case l.kind == lineReady && l.fields[0] == nonce:
				return nil
			case l.kind == lineRefuse && l.fields[0] == nonce:
				theirs := "?"
				if len(l.fields) > 1 {
					theirs = l.fields[1]
				}
				return fmt.Errorf("%w: guest speaks version %s, host %d", ErrVersion, theirs, ProtocolVersion)
			}
		case err := <-readErr:
			return fmt.Errorf("await guest: %w", err)
		case <-done:
			return ErrClosed
		}
	}
}
