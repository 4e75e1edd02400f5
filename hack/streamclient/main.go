// Command streamclient is an independent client for a Kubernetes CRI streaming server (the
// server behind the URLs that the CRI Exec, Attach and PortForward RPCs return). It speaks the
// wire protocols the way client-go does (k8s.io/client-go/tools/remotecommand and
// tools/portforward, over SPDY/3.1 or WebSocket), so that e2e tests can check a server against
// kubectl's behaviour without a Kubernetes checkout. Only the Go standard library and Debian's
// packaged github.com/moby/spdystream and github.com/gorilla/websocket are used; build it with
// hack/streamclient/build.sh.
//
// Usage:
//
//	streamclient exec|attach --url URL --transport spdy|websocket [--stdin] [--stdout] [--stderr] [--tty]
//	streamclient portforward --url URL --transport spdy|websocket --port P [--send TEXT]
//
// Exit codes: the remote command's exit code (exec/attach, NonZeroExitCode status), 0 on
// success, 1 when a port-forward's error stream carried a message, 124 on --timeout, 125 on
// another remote failure (the message goes to stderr), 126 on a connection or protocol error,
// 2 on a usage error.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Wire constants, as k8s.io/api/core/v1 and k8s.io/apimachinery define them.
const (
	headerProtocolVersion = "X-Stream-Protocol-Version"
	headerStreamType      = "streamType" // v1.StreamType; on the SPDY wire it is lower-cased
	headerPort            = "port"       // v1.PortHeader
	headerRequestID       = "requestID"  // v1.PortForwardRequestIDHeader

	streamTypeStdin  = "stdin"
	streamTypeStdout = "stdout"
	streamTypeStderr = "stderr"
	streamTypeError  = "error"
	streamTypeResize = "resize"
	streamTypeData   = "data"

	protoV1 = "channel.k8s.io"
	protoV2 = "v2.channel.k8s.io"
	protoV3 = "v3.channel.k8s.io"
	protoV4 = "v4.channel.k8s.io"
	protoV5 = "v5.channel.k8s.io"

	portForwardProtocolV1 = "portforward.k8s.io"
)

// Exit codes.
const (
	exitOK          = 0
	exitPFError     = 1
	exitUsage       = 2
	exitTimeout     = 124
	exitRemoteError = 125
	exitProtoError  = 126
)

// exitError carries the process exit code for an outcome.
type exitError struct {
	code int
	msg  string // printed to stderr when not empty
}

func (e *exitError) Error() string { return e.msg }

func protoErr(format string, args ...interface{}) error {
	return &exitError{code: exitProtoError, msg: "streamclient: " + fmt.Sprintf(format, args...)}
}

var verbose bool

// vlog prints a diagnostic line to stderr when --verbose is set.
func vlog(format string, args ...interface{}) {
	if verbose {
		fmt.Fprintf(os.Stderr, "streamclient: "+format+"\n", args...)
	}
}

type commonOpts struct {
	url       *url.URL
	transport string
	timeout   time.Duration
	protocols []string // nil: the defaults for the transport and command
	insecure  bool
}

type execOpts struct {
	commonOpts
	stdin, stdout, stderr, tty bool
	resize                     *terminalSize
}

type portForwardOpts struct {
	commonOpts
	port      uint16
	send      string
	requestID int
}

// terminalSize is client-go's remotecommand.TerminalSize; encoding/json writes it as
// {"Width":W,"Height":H} (no json tags).
type terminalSize struct {
	Width  uint16
	Height uint16
}

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  streamclient exec|attach --url URL --transport spdy|websocket [--stdin] [--stdout] [--stderr] [--tty] [--resize WxH]
  streamclient portforward --url URL --transport spdy|websocket --port P [--send TEXT]
common flags: [--timeout 30s] [--protocols P1,P2,...] [--insecure-skip-tls-verify] [--verbose]
`)
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(exitUsage)
	}
	cmd := os.Args[1]
	fs := flag.NewFlagSet("streamclient "+cmd, flag.ContinueOnError)
	rawURL := fs.String("url", "", "the streaming URL the CRI Exec/Attach/PortForward RPC returned")
	transport := fs.String("transport", "spdy", "spdy or websocket")
	timeout := fs.Duration("timeout", 30*time.Second, "limit for the whole run (exit 124 when reached)")
	protocols := fs.String("protocols", "", "comma-separated protocols to offer instead of client-go's defaults "+
		"(X-Stream-Protocol-Version values for SPDY, Sec-WebSocket-Protocol values for WebSocket)")
	insecure := fs.Bool("insecure-skip-tls-verify", false, "for https URLs: do not verify the server certificate")
	fs.BoolVar(&verbose, "verbose", false, "print what is sent and negotiated to stderr")

	var eo execOpts
	var po portForwardOpts
	var resize, port string
	switch cmd {
	case "exec", "attach":
		fs.BoolVar(&eo.stdin, "stdin", false, "create a stdin stream and copy this process's stdin to it")
		fs.BoolVar(&eo.stdout, "stdout", false, "create a stdout stream")
		fs.BoolVar(&eo.stderr, "stderr", false, "create a stderr stream (not created with --tty, as in client-go)")
		fs.BoolVar(&eo.tty, "tty", false, "terminal session: resize stream (v3+), no stderr stream")
		fs.StringVar(&resize, "resize", "", "with --tty: send this terminal size (WxH) once on the resize stream")
	case "portforward", "port-forward":
		cmd = "portforward"
		fs.StringVar(&port, "port", "", "the pod port to forward to")
		fs.StringVar(&po.send, "send", "", "text to write on the forwarded connection before closing the write side")
		fs.IntVar(&po.requestID, "request-id", 0, "SPDY requestID header value (client-go counts from 0)")
	case "-h", "--help", "help":
		usage()
		os.Exit(exitOK)
	default:
		fmt.Fprintf(os.Stderr, "streamclient: unknown command %q\n", cmd)
		usage()
		os.Exit(exitUsage)
	}
	if err := fs.Parse(os.Args[2:]); err != nil {
		os.Exit(exitUsage)
	}
	if fs.NArg() > 0 {
		fail(exitUsage, "unexpected arguments: %q", fs.Args())
	}
	if *rawURL == "" {
		fail(exitUsage, "--url is required")
	}
	u, err := url.Parse(*rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fail(exitUsage, "--url must be an absolute http or https URL, got %q", *rawURL)
	}
	if *transport != "spdy" && *transport != "websocket" {
		fail(exitUsage, "--transport must be spdy or websocket, got %q", *transport)
	}
	common := commonOpts{url: u, transport: *transport, timeout: *timeout, insecure: *insecure}
	if *protocols != "" {
		for _, p := range strings.Split(*protocols, ",") {
			if p = strings.TrimSpace(p); p != "" {
				common.protocols = append(common.protocols, p)
			}
		}
	}

	var run func() error
	switch cmd {
	case "exec", "attach":
		eo.commonOpts = common
		if resize != "" {
			w, h, ok := strings.Cut(resize, "x")
			wi, err1 := strconv.ParseUint(w, 10, 16)
			hi, err2 := strconv.ParseUint(h, 10, 16)
			if !ok || err1 != nil || err2 != nil {
				fail(exitUsage, "--resize must be WIDTHxHEIGHT, got %q", resize)
			}
			eo.resize = &terminalSize{Width: uint16(wi), Height: uint16(hi)}
		}
		run = func() error { return runExec(&eo) }
	case "portforward":
		po.commonOpts = common
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil || p == 0 {
			fail(exitUsage, "--port must be a port number 1-65535, got %q", port)
		}
		po.port = uint16(p)
		run = func() error { return runPortForward(&po) }
	}

	done := make(chan error, 1)
	go func() { done <- run() }()
	var timer <-chan time.Time
	if *timeout > 0 {
		timer = time.After(*timeout)
	}
	select {
	case err := <-done:
		os.Exit(exitCodeFor(err))
	case <-timer:
		fmt.Fprintf(os.Stderr, "streamclient: timed out after %s\n", *timeout)
		os.Exit(exitTimeout)
	}
}

func fail(code int, format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "streamclient: "+format+"\n", args...)
	os.Exit(code)
}

func exitCodeFor(err error) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(os.Stderr, ee.msg)
		}
		return ee.code
	}
	fmt.Fprintf(os.Stderr, "streamclient: %v\n", err)
	return exitProtoError
}

// ---- exec / attach -------------------------------------------------------------------------

func runExec(o *execOpts) error {
	if o.transport == "spdy" {
		return spdyExec(o)
	}
	return websocketExec(o)
}

func runPortForward(o *portForwardOpts) error {
	if o.transport == "spdy" {
		return spdyPortForward(o)
	}
	return websocketPortForward(o)
}

// stream is one exec/attach stream, whatever the transport: Close half-closes (this side is
// done writing), Reset tears both directions down.
type stream interface {
	io.ReadWriteCloser
	Reset() error
}

// streamCreator opens the streams of an exec/attach session (client-go's streamCreator).
type streamCreator interface {
	createStream(streamType string) (stream, error)
}

// protocolVersion maps a negotiated remote command protocol to its number; "" (no protocol
// negotiated) falls back to v1, as client-go does.
func protocolVersion(p string) (int, error) {
	switch p {
	case protoV5:
		return 5, nil
	case protoV4:
		return 4, nil
	case protoV3:
		return 3, nil
	case protoV2:
		return 2, nil
	case protoV1, "":
		return 1, nil
	}
	return 0, protoErr("server chose an unknown protocol %q", p)
}

// streamRemoteCommand runs a session the way client-go's streamProtocolV2..V5 handlers do:
// create the streams in order (error, stdin, stdout, stderr unless tty, resize if tty and
// v3+), each one only after the previous one was acknowledged; then copy stdin (closing the
// remote stdin at EOF), copy stdout and stderr until the server closes them, and finally read
// the error stream to its end and decode it. ready is called once all streams exist.
func streamRemoteCommand(c streamCreator, version int, o *execOpts, ready func()) error {
	if version == 1 {
		return streamRemoteCommandV1(c, o, ready)
	}
	var remoteStdin, remoteStdout, remoteStderr, resizeStream stream
	errorStream, err := c.createStream(streamTypeError)
	if err != nil {
		return err
	}
	if o.stdin {
		if remoteStdin, err = c.createStream(streamTypeStdin); err != nil {
			return err
		}
	}
	if o.stdout {
		if remoteStdout, err = c.createStream(streamTypeStdout); err != nil {
			return err
		}
	}
	if o.stderr && !o.tty {
		if remoteStderr, err = c.createStream(streamTypeStderr); err != nil {
			return err
		}
	}
	if version >= 3 && o.tty {
		if resizeStream, err = c.createStream(streamTypeResize); err != nil {
			return err
		}
	}
	if ready != nil {
		ready()
	}

	errorChan := watchErrorStream(errorStream, version)

	if resizeStream != nil && o.resize != nil {
		go func() {
			vlog("sending terminal size %dx%d on the resize stream", o.resize.Width, o.resize.Height)
			if err := json.NewEncoder(resizeStream).Encode(o.resize); err != nil {
				vlog("writing the resize stream: %v", err)
			}
		}()
	}

	if remoteStdin != nil {
		var once sync.Once
		closeStdin := func() {
			vlog("closing the remote stdin")
			if err := remoteStdin.Close(); err != nil {
				vlog("closing the remote stdin: %v", err)
			}
		}
		go func() {
			defer once.Do(closeStdin)
			if _, err := io.Copy(remoteStdin, os.Stdin); err != nil {
				vlog("copying stdin: %v", err)
			}
		}()
		// As client-go: read the remote stdin until the server closes it, then close ours.
		go func() {
			defer once.Do(closeStdin)
			_, _ = io.Copy(io.Discard, remoteStdin)
		}()
	}

	var wg sync.WaitGroup
	copyOut := func(name string, dst io.Writer, src stream) {
		if src == nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := io.Copy(dst, src); err != nil {
				fmt.Fprintf(os.Stderr, "streamclient: copying %s: %v\n", name, err)
			}
			vlog("%s ended", name)
		}()
	}
	copyOut("stdout", os.Stdout, remoteStdout)
	copyOut("stderr", os.Stderr, remoteStderr)
	wg.Wait()
	return <-errorChan
}

// streamRemoteCommandV1 is client-go's streamProtocolV1: no stdin half-close, and the session
// ends when stdout and stderr end or as soon as the error stream carries a message.
func streamRemoteCommandV1(c streamCreator, o *execOpts, ready func()) error {
	var remoteStdin, remoteStdout, remoteStderr stream
	errorStream, err := c.createStream(streamTypeError)
	if err != nil {
		return err
	}
	if o.stdin {
		if remoteStdin, err = c.createStream(streamTypeStdin); err != nil {
			return err
		}
	}
	if o.stdout {
		if remoteStdout, err = c.createStream(streamTypeStdout); err != nil {
			return err
		}
	}
	if o.stderr && !o.tty {
		if remoteStderr, err = c.createStream(streamTypeStderr); err != nil {
			return err
		}
	}
	if ready != nil {
		ready()
	}
	errorChan := make(chan error, 1)
	go func() {
		msg, err := io.ReadAll(errorStream)
		if err != nil && err != io.EOF {
			errorChan <- protoErr("error reading from error stream: %v", err)
		} else if len(msg) > 0 {
			errorChan <- &exitError{code: exitRemoteError, msg: "streamclient: remote error: " + string(msg)}
		}
	}()
	if remoteStdin != nil {
		go func() { _, _ = io.Copy(remoteStdin, os.Stdin) }()
	}
	done := make(chan struct{}, 2)
	waitCount := 0
	for _, p := range []struct {
		dst io.Writer
		src stream
	}{{os.Stdout, remoteStdout}, {os.Stderr, remoteStderr}} {
		if p.src == nil {
			continue
		}
		waitCount++
		go func(dst io.Writer, src stream) {
			_, _ = io.Copy(dst, src)
			done <- struct{}{}
		}(p.dst, p.src)
	}
	for completed := 0; completed < waitCount || waitCount == 0; {
		select {
		case <-done:
			completed++
		case err := <-errorChan:
			return err
		}
	}
	return nil
}

// watchErrorStream reads the error stream to its end (the server must close it) and decodes
// it as client-go's errorDecoderV4 (v4, v5) or errorDecoderV2 (v2, v3) does.
func watchErrorStream(s io.Reader, version int) <-chan error {
	ch := make(chan error, 1)
	go func() {
		msg, err := io.ReadAll(s)
		switch {
		case err != nil && err != io.EOF:
			ch <- protoErr("error reading from error stream: %v", err)
		case len(msg) == 0:
			vlog("error stream ended empty: success")
			ch <- nil
		case version >= 4:
			vlog("error stream: %s", msg)
			ch <- decodeStatusV4(msg)
		default:
			vlog("error stream: %s", msg)
			ch <- &exitError{code: exitRemoteError, msg: "streamclient: remote error: " + string(msg)}
		}
	}()
	return ch
}

// status mirrors the fields of metav1.Status, so that a value of the wrong JSON type fails to
// decode here as it does in client-go.
type status struct {
	Kind       string `json:"kind,omitempty"`
	APIVersion string `json:"apiVersion,omitempty"`
	Metadata   struct {
		SelfLink           string `json:"selfLink,omitempty"`
		ResourceVersion    string `json:"resourceVersion,omitempty"`
		Continue           string `json:"continue,omitempty"`
		RemainingItemCount *int64 `json:"remainingItemCount,omitempty"`
	} `json:"metadata"`
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Details *struct {
		Name   string `json:"name,omitempty"`
		Group  string `json:"group,omitempty"`
		Kind   string `json:"kind,omitempty"`
		UID    string `json:"uid,omitempty"`
		Causes []struct {
			Type    string `json:"reason,omitempty"` // metav1.StatusCause.Type is "reason" in JSON
			Message string `json:"message,omitempty"`
			Field   string `json:"field,omitempty"`
		} `json:"causes,omitempty"`
		RetryAfterSeconds int32 `json:"retryAfterSeconds,omitempty"`
	} `json:"details,omitempty"`
	Code int32 `json:"code,omitempty"`
}

// decodeStatusV4 is client-go's errorDecoderV4.decode, mapped onto exit codes.
func decodeStatusV4(msg []byte) error {
	var st status
	if err := json.Unmarshal(msg, &st); err != nil {
		return protoErr("error stream protocol error: %v in %q", err, string(msg))
	}
	switch st.Status {
	case "Success":
		return nil
	case "Failure":
		if st.Reason == "NonZeroExitCode" {
			if st.Details == nil {
				return protoErr("error stream protocol error: details must be set")
			}
			for _, c := range st.Details.Causes {
				if c.Type != "ExitCode" {
					continue
				}
				rc, err := strconv.ParseUint(c.Message, 10, 8)
				if err != nil {
					return protoErr("error stream protocol error: invalid exit code value %q", c.Message)
				}
				vlog("command terminated with exit code %d", rc)
				return &exitError{code: int(rc)}
			}
			return protoErr("error stream protocol error: no ExitCode cause given")
		}
		return &exitError{code: exitRemoteError, msg: "streamclient: remote error: " + st.Message}
	default:
		return protoErr("error stream protocol error: unknown error (status %q)", st.Status)
	}
}
