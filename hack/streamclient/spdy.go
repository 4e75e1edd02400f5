package main

// The SPDY/3.1 transport, as client-go's transport/spdy, apimachinery's
// util/httpstream/spdy (SpdyRoundTripper, connection) and tools/portforward use it.

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/spdystream"
)

const (
	// createStreamResponseTimeout: how long client-go waits for the SYN_REPLY of each stream.
	createStreamResponseTimeout = 30 * time.Second
	// spdyPingPeriod: client-go's RoundTripperFor sends a SPDY PING every 5 s.
	spdyPingPeriod = 5 * time.Second
)

// spdyConn is an upgraded connection with the streams this client created.
type spdyConn struct {
	conn    *spdystream.Connection
	mu      sync.Mutex
	streams []*spdystream.Stream
}

// dialSPDY sends the upgrade request the way SpdyRoundTripper does (the request written with
// net/http's Request.Write on a fresh connection, one X-Stream-Protocol-Version header per
// offered protocol, then Connection: Upgrade and Upgrade: SPDY/3.1), checks the answer as
// SpdyRoundTripper.NewConnection does, and returns the connection and the protocol the server
// chose (its X-Stream-Protocol-Version header; "" when it sent none).
func dialSPDY(o *commonOpts, method string, protocols []string) (*spdyConn, string, error) {
	host := o.url.Host
	if o.url.Port() == "" {
		if o.url.Scheme == "https" {
			host = net.JoinHostPort(o.url.Hostname(), "443")
		} else {
			host = net.JoinHostPort(o.url.Hostname(), "80")
		}
	}
	var raw net.Conn
	var err error
	if o.url.Scheme == "https" {
		raw, err = tls.Dial("tcp", host, &tls.Config{InsecureSkipVerify: o.insecure, ServerName: o.url.Hostname()})
	} else {
		raw, err = net.Dial("tcp", host)
	}
	if err != nil {
		return nil, "", protoErr("error sending request: %v", err)
	}

	req, err := http.NewRequest(method, o.url.String(), nil)
	if err != nil {
		raw.Close()
		return nil, "", protoErr("error creating request: %v", err)
	}
	for _, p := range protocols {
		req.Header.Add(headerProtocolVersion, p)
	}
	req.Header.Add("Connection", "Upgrade")
	req.Header.Add("Upgrade", "SPDY/3.1")
	if verbose {
		vlog("SPDY upgrade: %s %s", method, o.url.String())
		for k, vs := range req.Header {
			for _, v := range vs {
				vlog("  %s: %s", k, v)
			}
		}
	}
	if err := req.Write(raw); err != nil {
		raw.Close()
		return nil, "", protoErr("error sending request: %v", err)
	}

	br := bufio.NewReader(raw)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		raw.Close()
		return nil, "", protoErr("error sending request: reading the upgrade response: %v", err)
	}
	if verbose {
		vlog("response: %s", resp.Status)
		for k, vs := range resp.Header {
			for _, v := range vs {
				vlog("  %s: %s", k, v)
			}
		}
	}
	connection := strings.ToLower(resp.Header.Get("Connection"))
	upgrade := strings.ToLower(resp.Header.Get("Upgrade"))
	if resp.StatusCode != http.StatusSwitchingProtocols || !strings.Contains(connection, "upgrade") ||
		!strings.Contains(upgrade, "spdy/3.1") {
		body, rerr := io.ReadAll(io.LimitReader(resp.Body, 64*1024))
		raw.Close()
		msg := strings.TrimSpace(string(body))
		if rerr != nil {
			msg = "unable to read error from server response"
		} else {
			var st status
			if json.Unmarshal(body, &st) == nil && st.Message != "" {
				msg = st.Message
			}
		}
		return nil, "", protoErr("unable to upgrade connection (%s): %s", resp.Status, msg)
	}
	// client-go hands the raw connection to spdystream, so whatever the server sent right
	// behind the 101 and was already buffered here is lost to it too. Say so.
	if n := br.Buffered(); n > 0 {
		fmt.Fprintf(os.Stderr, "streamclient: warning: %d bytes arrived with the 101 response; "+
			"client-go discards them (as this client does): the server must not send SPDY frames "+
			"before the client's first SYN_STREAM\n", n)
	}
	protocol := resp.Header.Get(headerProtocolVersion)
	vlog("negotiated protocol %q", protocol)

	sc, err := spdystream.NewConnection(raw, false)
	if err != nil {
		raw.Close()
		return nil, "", protoErr("creating the SPDY connection: %v", err)
	}
	c := &spdyConn{conn: sc}
	// As apimachinery's connection: accept (reply to) any stream the server opens.
	go sc.Serve(spdystream.NoOpStreamHandler)
	go func() {
		t := time.NewTicker(spdyPingPeriod)
		defer t.Stop()
		for {
			select {
			case <-sc.CloseChan():
				return
			case <-t.C:
			}
			if _, err := sc.Ping(); err != nil {
				vlog("SPDY ping failed: %v", err)
			}
		}
	}()
	return c, protocol, nil
}

// createStream opens a stream with these headers and waits for the server's SYN_REPLY, as
// apimachinery's connection.CreateStream does. spdystream writes header names lower-cased.
func (c *spdyConn) createStream(headers http.Header) (*spdystream.Stream, error) {
	vlog("creating stream %v", headers)
	s, err := c.conn.CreateStream(headers, nil, false)
	if err != nil {
		return nil, protoErr("creating stream %v: %v", headers, err)
	}
	if err := s.WaitTimeout(createStreamResponseTimeout); err != nil {
		return nil, protoErr("stream %v not accepted by the server: %v", headers, err)
	}
	c.mu.Lock()
	c.streams = append(c.streams, s)
	c.mu.Unlock()
	return s, nil
}

// close resets every stream, then sends GOAWAY, as apimachinery's connection.Close does.
func (c *spdyConn) close() {
	c.mu.Lock()
	for _, s := range c.streams {
		_ = s.Reset()
	}
	c.streams = nil
	c.mu.Unlock()
	_ = c.conn.Close()
}

// spdyStreamCreator adapts spdyConn to the exec/attach streamCreator. client-go reuses one
// header map for every stream and sets only streamType on it.
type spdyStreamCreator struct{ c *spdyConn }

func (a spdyStreamCreator) createStream(streamType string) (stream, error) {
	h := http.Header{}
	h.Set(headerStreamType, streamType)
	s, err := a.c.createStream(h)
	if err != nil {
		return nil, err
	}
	return s, nil
}

var defaultSPDYExecProtocols = []string{protoV5, protoV4, protoV3, protoV2, protoV1}

// spdyExec is client-go's spdyStreamExecutor: POST, as kubectl exec and attach use it.
func spdyExec(o *execOpts) error {
	protocols := o.protocols
	if protocols == nil {
		protocols = defaultSPDYExecProtocols
	}
	c, protocol, err := dialSPDY(&o.commonOpts, http.MethodPost, protocols)
	if err != nil {
		return err
	}
	defer c.close()
	version, err := protocolVersion(protocol)
	if err != nil {
		return err
	}
	return streamRemoteCommand(spdyStreamCreator{c}, version, o, nil)
}

// spdyPortForward forwards one connection as client-go's PortForwarder.handleConnection does:
// an error stream (closed for writing at once) and a data stream, both with the port and
// requestID headers; the local side's bytes are --send followed by EOF.
func spdyPortForward(o *portForwardOpts) error {
	protocols := o.protocols
	if protocols == nil {
		protocols = []string{portForwardProtocolV1}
	}
	c, protocol, err := dialSPDY(&o.commonOpts, http.MethodPost, protocols)
	if err != nil {
		return err
	}
	defer c.close()
	if protocol != portForwardProtocolV1 {
		return protoErr("unable to negotiate protocol: client supports %q, server returned %q",
			portForwardProtocolV1, protocol)
	}

	headers := http.Header{}
	headers.Set(headerStreamType, streamTypeError)
	headers.Set(headerPort, strconv.Itoa(int(o.port)))
	headers.Set(headerRequestID, strconv.Itoa(o.requestID))
	errorStream, err := c.createStream(headers)
	if err != nil {
		return err
	}
	// client-go: "we're not writing to this stream".
	_ = errorStream.Close()
	type readAllResult struct {
		message []byte
		err     error
	}
	errorChan := make(chan readAllResult, 1)
	go func() {
		msg, err := io.ReadAll(errorStream)
		errorChan <- readAllResult{msg, err}
	}()

	dataHeaders := http.Header{}
	for k, v := range headers {
		dataHeaders[k] = v
	}
	dataHeaders.Set(headerStreamType, streamTypeData)
	dataStream, err := c.createStream(dataHeaders)
	if err != nil {
		return err
	}

	localError := make(chan struct{})
	remoteDone := make(chan struct{})
	go func() {
		if _, err := io.Copy(os.Stdout, dataStream); err != nil {
			fmt.Fprintf(os.Stderr, "streamclient: copying from the data stream: %v\n", err)
		}
		vlog("data stream ended")
		close(remoteDone)
	}()
	go func() {
		// Inform the server we are not sending any more data once the copy is done.
		defer func() {
			vlog("closing the data stream for writing")
			_ = dataStream.Close()
		}()
		if o.send != "" {
			if _, err := io.WriteString(dataStream, o.send); err != nil {
				fmt.Fprintf(os.Stderr, "streamclient: writing to the data stream: %v\n", err)
				close(localError)
			}
		}
	}()
	select {
	case <-remoteDone:
	case <-localError:
	}
	// client-go resets the data stream before waiting on the error stream.
	_ = dataStream.Reset()

	res := <-errorChan
	switch {
	case res.err != nil:
		return protoErr("error reading from error stream: %v", res.err)
	case len(res.message) > 0:
		return &exitError{code: exitPFError, msg: "streamclient: port-forward error: " + string(res.message)}
	}
	return nil
}
