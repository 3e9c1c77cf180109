// Command loadgen drives one HTTP GET at a server as fast as it answers,
// over a few keep-alive connections, and prints what it saw as one JSON
// line: requests per second, latency quantiles and its own CPU time. It
// is the API-rate benchmark's load (tests/e2e/apirate_test.go), run as a
// process of its own so that the server's CPU time is the server's alone.
//
// It speaks HTTP/1.1 on raw connections instead of through net/http's
// client: on a 2-core machine the load generator shares the cores with
// the server, and a client that costs a few microseconds a request (as
// wrk does) leaves them to the server. Every answer is still read whole
// (Content-Length or chunked) and its status checked.
//
//	loadgen -url http://127.0.0.1:8080/v1/sandboxes/sb-… -H 'X-API-Key: wrn_…' -c 32 -d 5s
//	loadgen -serve 127.0.0.1:0 -body 600    # the floor: plain net/http, a fixed body
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Result is what a run prints.
type Result struct {
	Requests   int64   `json:"requests"`   // answered with the wanted status, inside the measured window
	Seconds    float64 `json:"seconds"`    // the measured window
	PerSecond  float64 `json:"per_second"` // Requests / Seconds
	P50Micros  float64 `json:"p50_us"`
	P99Micros  float64 `json:"p99_us"`
	Unexpected int64   `json:"unexpected"`  // answers with another status
	Errors     int64   `json:"errors"`      // connection or protocol failures
	FirstError string  `json:"first_error"` // the first of them, or of the unexpected answers
	CPUSeconds float64 `json:"cpu_seconds"` // this process's user+system time in the window
}

type headers []string

func (h *headers) String() string     { return strings.Join(*h, ", ") }
func (h *headers) Set(v string) error { *h = append(*h, v); return nil }

func main() {
	var (
		target   = flag.String("url", "", "the URL to GET")
		conns    = flag.Int("c", 32, "keep-alive connections, each with one request in flight")
		duration = flag.Duration("d", 5*time.Second, "how long to measure")
		warmup   = flag.Duration("warmup", time.Second, "how long to send before measuring")
		want     = flag.Int("want", http.StatusOK, "the status every answer must have")
		serve    = flag.String("serve", "", "instead: serve a fixed body on this address (the net/http floor)")
		bodySize = flag.Int("body", 600, "with -serve: the body's size in bytes")
		hs       headers
	)
	flag.Var(&hs, "H", "a request header, 'Name: value' (repeatable)")
	flag.Parse()
	if *serve != "" {
		if err := serveFloor(*serve, *bodySize); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
		return
	}
	res, err := run(*target, hs, *conns, *warmup, *duration, *want)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	_ = json.NewEncoder(os.Stdout).Encode(res)
}

// serveFloor answers every request with a fixed JSON body of size bytes
// through plain net/http: what any Go HTTP server costs here, with no
// routing, authentication or store behind it.
func serveFloor(addr string, size int) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	body := append([]byte(`{"pad":"`), bytes.Repeat([]byte("x"), max(size-11, 0))...)
	body = append(body, "\"}\n"...)
	fmt.Printf("listening %s\n", ln.Addr())
	return http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
}

// counters are shared by the connections.
type counters struct {
	measuring  atomic.Bool
	stop       atomic.Bool
	unexpected atomic.Int64
	errs       atomic.Int64
	firstMu    sync.Mutex
	first      string
}

func (c *counters) note(format string, args ...any) {
	c.firstMu.Lock()
	defer c.firstMu.Unlock()
	if c.first == "" {
		c.first = fmt.Sprintf(format, args...)
	}
}

func run(target string, hs headers, conns int, warmup, duration time.Duration, want int) (*Result, error) {
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("-url must be an http:// URL, not %q", target)
	}
	var req bytes.Buffer
	fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: wrenn-loadgen\r\n", u.RequestURI(), u.Host)
	for _, h := range hs {
		if !strings.Contains(h, ":") {
			return nil, fmt.Errorf("header %q is not 'Name: value'", h)
		}
		req.WriteString(h + "\r\n")
	}
	req.WriteString("\r\n")

	var c counters
	lat := make([][]uint32, conns) // microseconds, per connection
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() { lat[i] = c.loop(u.Host, req.Bytes(), want) })
	}
	time.Sleep(warmup)
	cpu0 := cpuTime()
	start := time.Now()
	c.measuring.Store(true)
	time.Sleep(duration)
	c.measuring.Store(false)
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	c.stop.Store(true)
	wg.Wait()

	all := slices.Concat(lat...)
	slices.Sort(all)
	res := &Result{Requests: int64(len(all)), Seconds: elapsed.Seconds(), Unexpected: c.unexpected.Load(),
		Errors: c.errs.Load(), FirstError: c.first, CPUSeconds: cpu.Seconds()}
	res.PerSecond = float64(res.Requests) / res.Seconds
	if len(all) > 0 {
		res.P50Micros = float64(all[len(all)/2])
		res.P99Micros = float64(all[len(all)*99/100])
	}
	return res, nil
}

// loop sends req on one connection, one at a time, until told to stop,
// and returns the latencies of the answers inside the measured window
// that had the wanted status.
func (c *counters) loop(addr string, req []byte, want int) []uint32 {
	var lat []uint32
	var nc net.Conn
	var br *bufio.Reader
	for !c.stop.Load() {
		if nc == nil {
			var err error
			if nc, err = net.Dial("tcp", addr); err != nil {
				c.errs.Add(1)
				c.note("dial: %v", err)
				time.Sleep(10 * time.Millisecond)
				continue
			}
			br = bufio.NewReaderSize(nc, 32<<10)
		}
		t0 := time.Now()
		status, keep, err := roundTrip(nc, br, req)
		d := time.Since(t0)
		measured := c.measuring.Load()
		switch {
		case err != nil:
			if measured {
				c.errs.Add(1)
				c.note("%v", err)
			}
		case status != want:
			if measured {
				c.unexpected.Add(1)
				c.note("status %d, want %d", status, want)
			}
		case measured:
			lat = append(lat, uint32(min(d.Microseconds(), 1<<31)))
		}
		if err != nil || !keep {
			nc.Close()
			nc = nil
		}
	}
	if nc != nil {
		nc.Close()
	}
	return lat
}

// roundTrip writes req and reads one whole answer, returning its status
// and whether the connection may carry another request.
func roundTrip(nc net.Conn, br *bufio.Reader, req []byte) (status int, keep bool, err error) {
	if _, err := nc.Write(req); err != nil {
		return 0, false, err
	}
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	length, chunked, keep := -1, false, true
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		if len(line) <= 2 {
			break
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "Content-Length"):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return 0, false, fmt.Errorf("bad Content-Length %q", value)
			}
		case asciiEqualFold(name, "Transfer-Encoding"):
			chunked = asciiEqualFold(value, "chunked")
		case asciiEqualFold(name, "Connection"):
			keep = !asciiEqualFold(value, "close")
		}
	}
	switch {
	case chunked:
		err = discardChunked(br)
	case length >= 0:
		_, err = br.Discard(length)
	default:
		return status, false, errors.New("an answer with neither Content-Length nor chunked encoding")
	}
	if err != nil {
		return 0, false, err
	}
	return status, keep, nil
}

func discardChunked(br *bufio.Reader) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(bytes.TrimSpace(line), []byte(";"))
		n, err := strconv.ParseInt(string(size), 16, 64)
		if err != nil {
			return fmt.Errorf("bad chunk size %q", line)
		}
		if n == 0 {
			break
		}
		if _, err := br.Discard(int(n) + 2); err != nil {
			return err
		}
	}
	for { // trailers, then the blank line
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			return nil
		}
	}
}

func asciiEqualFold(b []byte, s string) bool {
	return len(b) == len(s) && strings.EqualFold(string(b), s)
}

// cpuTime is this process's user and system time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
