// Command ferretdb runs an embedded FerretDB v1.24.2 (SQLite backend) on a
// loopback TCP address until it receives SIGTERM or SIGINT.
//
// It exists so that tests and local development can talk the MongoDB wire
// protocol without a real MongoDB server. See README.md.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2

	ferretModule = "github.com/FerretDB/FerretDB"

	// readyTimeout bounds how long we wait for the listener to answer our own
	// ping before giving up.
	readyTimeout = 30 * time.Second
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("ferretdb", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	listenAddr := fs.String("listen-addr", "127.0.0.1:27017",
		"loopback TCP address to listen on (host:port; port 0 picks a free port)")
	stateDir := fs.String("state-dir", "",
		"directory for the SQLite database files (required; created if missing)")
	logLevel := fs.String("log-level", "warn", "FerretDB log level: debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s -state-dir DIR [-listen-addr 127.0.0.1:27017] [-log-level warn]\n\n", fs.Name())
		fs.PrintDefaults()
	}

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		return usageError(fs, fmt.Sprintf("unexpected arguments: %q", fs.Args()))
	}

	if err := checkLoopback(*listenAddr); err != nil {
		return usageError(fs, err.Error())
	}

	if *stateDir == "" {
		return usageError(fs, "-state-dir is required")
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageError(fs, fmt.Sprintf("invalid -log-level %q", *logLevel))
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	dir, err := filepath.Abs(*stateDir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: resolving -state-dir: %v\n", err)
		return exitFailure
	}
	if err = os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: creating -state-dir: %v\n", err)
		return exitFailure
	}

	// "file:/abs/dir/"; the path is escaped, so directories with '?', '#',
	// '%' or spaces still work. FerretDB requires the trailing slash.
	sqliteURL := (&url.URL{Scheme: "file", Path: dir + "/", OmitHost: true}).String()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	// The embeddable package never starts the telemetry reporter and also
	// disables telemetry explicitly in New (Config has no telemetry option).
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listenAddr},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: sqliteURL,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: %v\n", err)
		return exitFailure
	}

	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()

	// In v1.24.2 New already binds the listener, so MongoDBURI is safe here.
	uri := f.MongoDBURI()
	host := strings.TrimSuffix(strings.TrimPrefix(uri, "mongodb://"), "/")

	if err = waitReady(ctx, host, done); err != nil {
		signalled := ctx.Err() != nil
		stop() // cancels ctx, so Run returns
		if signalled {
			// Signalled before we became ready: still a clean shutdown.
			<-done
			return exitOK
		}
		fmt.Fprintf(os.Stderr, "ferretdb: not ready: %v\n", err)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
		return exitFailure
	}

	// Lifecycle lines go to stderr regardless of -log-level.
	fmt.Fprintf(os.Stderr, "ferretdb: FerretDB %s (sqlite, state-dir %s) serving %s\n",
		ferretVersion(), dir, uri)
	fmt.Fprintf(os.Stdout, "ready %s\n", uri)

	select {
	case <-ctx.Done():
	case err = <-done:
		// Run returned without a signal: treat as failure.
		fmt.Fprintf(os.Stderr, "ferretdb: stopped unexpectedly: %v\n", err)
		return exitFailure
	}

	// Restore default signal handling: a second SIGINT/SIGTERM kills us.
	stop()
	fmt.Fprintln(os.Stderr, "ferretdb: signal received, shutting down (open client connections get a few seconds)")

	if err = <-done; err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: shutdown: %v\n", err)
		return exitFailure
	}
	fmt.Fprintln(os.Stderr, "ferretdb: stopped cleanly")

	return exitOK
}

func usageError(fs *flag.FlagSet, msg string) int {
	fmt.Fprintf(os.Stderr, "ferretdb: %s\n", msg)
	fs.Usage()
	return exitUsage
}

// checkLoopback accepts only "host:port" where host is a loopback IP literal
// (127.0.0.0/8, ::1) or "localhost".
func checkLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("invalid -listen-addr %q: %v", addr, err)
	}
	if _, err = net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("invalid -listen-addr %q: bad port %q", addr, port)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing non-loopback -listen-addr %q: host must be a loopback address such as 127.0.0.1, ::1 or localhost", addr)
	}
	return nil
}

// waitReady sends MongoDB "ping" commands over the wire protocol until
// FerretDB answers one, so "ready" means requests are really being served.
func waitReady(ctx context.Context, hostPort string, done <-chan error) error {
	deadline := time.Now().Add(readyTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		if lastErr = pingOnce(hostPort); lastErr == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-done:
			return fmt.Errorf("FerretDB stopped: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("no answer to ping within %s: %v", readyTimeout, lastErr)
}

// pingOnce sends OP_MSG {ping: 1, $db: "admin"} and checks that an OP_MSG
// reply with {ok: 1.0} arrives.
func pingOnce(hostPort string) error {
	conn, err := net.DialTimeout("tcp", hostPort, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))

	// BSON document {ping: int32(1), $db: "admin"}.
	var doc []byte
	doc = append(doc, 0, 0, 0, 0) // length placeholder
	doc = append(doc, 0x10)
	doc = append(doc, "ping\x00"...)
	doc = binary.LittleEndian.AppendUint32(doc, 1)
	doc = append(doc, 0x02)
	doc = append(doc, "$db\x00"...)
	doc = binary.LittleEndian.AppendUint32(doc, uint32(len("admin")+1))
	doc = append(doc, "admin\x00"...)
	doc = append(doc, 0x00)
	binary.LittleEndian.PutUint32(doc, uint32(len(doc)))

	const opMsg = 2013
	const requestID = 1
	msg := make([]byte, 16, 16+4+1+len(doc))
	msg = binary.LittleEndian.AppendUint32(msg, 0) // flagBits
	msg = append(msg, 0)                           // section kind 0: body
	msg = append(msg, doc...)
	binary.LittleEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.LittleEndian.PutUint32(msg[4:], requestID)
	binary.LittleEndian.PutUint32(msg[8:], 0)
	binary.LittleEndian.PutUint32(msg[12:], opMsg)

	if _, err = conn.Write(msg); err != nil {
		return err
	}

	r := bufio.NewReader(conn)
	hdr := make([]byte, 16)
	if _, err = io.ReadFull(r, hdr); err != nil {
		return err
	}
	n := binary.LittleEndian.Uint32(hdr[0:])
	if n < 16 || n > 16<<20 {
		return fmt.Errorf("bad reply length %d", n)
	}
	if got := binary.LittleEndian.Uint32(hdr[8:]); got != requestID {
		return fmt.Errorf("reply responseTo %d, want %d", got, requestID)
	}
	if got := binary.LittleEndian.Uint32(hdr[12:]); got != opMsg {
		return fmt.Errorf("reply opCode %d, want %d", got, opMsg)
	}
	body := make([]byte, n-16)
	if _, err = io.ReadFull(r, body); err != nil {
		return err
	}
	// {ok: 1.0} is encoded as 0x01 "ok\x00" float64(1).
	okField := append([]byte("\x01ok\x00"), 0, 0, 0, 0, 0, 0, 0xf0, 0x3f)
	if !strings.Contains(string(body), string(okField)) {
		return errors.New("ping reply has no ok: 1")
	}
	return nil
}

// ferretVersion returns the FerretDB module version this binary was built
// with (the embedded package itself reports "unknown").
func ferretVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == ferretModule {
				if d.Replace != nil {
					return d.Replace.Version
				}
				return d.Version
			}
		}
	}
	return "unknown"
}
