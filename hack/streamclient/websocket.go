package main

// The WebSocket transport, as client-go's transport/websocket (RoundTripper) and
// tools/remotecommand/websocket.go (wsStreamExecutor, wsStreamCreator, heartbeat) use it; and
// kubelet's WebSocket port-forward protocol (pkg/kubelet/cri/streaming/portforward/websocket.go),
// for which client-go has no client.

import (
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

const (
	wsWriteDeadline    = 60 * time.Second              // client-go writeDeadline
	wsPingPeriod       = 5 * time.Second               // client-go pingPeriod
	wsPingReadDeadline = wsPingPeriod*12 + time.Second // client-go pingReadDeadline (61 s)
	wsDataBufferSize   = 32 * 1024                     // client-go RoundTripper.DataBufferSize
	wsStreamClose      = 255                           // remotecommand.StreamClose (v5 CLOSE signal)
)

// Channel numbers of the remote command protocols (remotecommand.StreamStdIn ...).
var streamTypeToID = map[string]byte{
	streamTypeStdin:  0,
	streamTypeStdout: 1,
	streamTypeStderr: 2,
	streamTypeError:  3,
	streamTypeResize: 4,
}

// dialWebSocket upgrades as client-go's websocket RoundTripper does: a GET (gorilla's dialer
// always sends GET) with the protocols in Sec-WebSocket-Protocol, then checks that the server
// chose one of them.
func dialWebSocket(o *commonOpts, rawURL string, protocols []string) (*websocket.Conn, error) {
	wsURL := rawURL
	switch {
	case strings.HasPrefix(wsURL, "https://"):
		wsURL = "wss://" + strings.TrimPrefix(wsURL, "https://")
	case strings.HasPrefix(wsURL, "http://"):
		wsURL = "ws://" + strings.TrimPrefix(wsURL, "http://")
	}
	d := websocket.Dialer{
		Subprotocols:    protocols,
		ReadBufferSize:  wsDataBufferSize + 1024,
		WriteBufferSize: wsDataBufferSize + 1024,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: o.insecure},
	}
	vlog("WebSocket upgrade: GET %s, Sec-WebSocket-Protocol: %s", wsURL, strings.Join(protocols, ", "))
	conn, resp, err := d.Dial(wsURL, nil)
	if err != nil {
		if errors.Is(err, websocket.ErrBadHandshake) && resp != nil {
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64*1024))
			msg := strings.TrimSpace(string(body))
			var st status
			if json.Unmarshal(body, &st) == nil && st.Message != "" {
				msg = st.Message
			}
			return nil, protoErr("unable to upgrade connection: %v (%s): %s", err, resp.Status, msg)
		}
		return nil, protoErr("error dialing %s: %v", wsURL, err)
	}
	if verbose {
		vlog("response: %s", resp.Status)
		for k, vs := range resp.Header {
			for _, v := range vs {
				vlog("  %s: %s", k, v)
			}
		}
	}
	found := false
	for _, p := range protocols {
		if p == conn.Subprotocol() {
			found = true
		}
	}
	if !found {
		conn.Close()
		return nil, protoErr("invalid protocol, expected one of %q, got %q", protocols, conn.Subprotocol())
	}
	vlog("negotiated protocol %q", conn.Subprotocol())
	return conn, nil
}

// wsMux multiplexes channels over one connection: each message is one channel byte followed
// by data (client-go's wsStreamCreator).
type wsMux struct {
	conn    *websocket.Conn
	writeMu sync.Mutex // one writer at a time; reading is done by readDemuxLoop only

	mu      sync.Mutex
	streams map[byte]*wsStream
	setErr  error
}

func newWSMux(conn *websocket.Conn) *wsMux {
	return &wsMux{conn: conn, streams: map[byte]*wsStream{}}
}

func (m *wsMux) createStream(streamType string) (stream, error) {
	id, ok := streamTypeToID[streamType]
	if !ok {
		return nil, fmt.Errorf("unknown stream type: %s", streamType)
	}
	s, err := m.addStream(id)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (m *wsMux) addStream(id byte) (*wsStream, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.setErr != nil {
		return nil, m.setErr
	}
	if m.streams[id] != nil {
		return nil, fmt.Errorf("duplicate stream for channel %d", id)
	}
	r, w := io.Pipe()
	s := &wsStream{mux: m, id: id, r: r, w: w}
	m.streams[id] = s
	return s, nil
}

func (m *wsMux) closeAllStreamReaders(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.streams {
		_ = s.w.CloseWithError(err) // nil: readers see io.EOF
	}
	if err != nil {
		m.setErr = err
	} else {
		m.setErr = errors.New("closed all streams")
	}
}

// readDemuxLoop is client-go's: binary messages only, the first byte names the channel, a
// message for an unknown channel is dropped, a normal closure (1000) ends every stream with
// EOF and anything else ends them with an error. It runs the heartbeat too.
func (m *wsMux) readDemuxLoop() {
	stopHeartbeat := startHeartbeat(m.conn)
	defer stopHeartbeat()
	if err := m.conn.SetReadDeadline(time.Now().Add(wsPingReadDeadline)); err != nil {
		m.closeAllStreamReaders(err)
		return
	}
	buf := make([]byte, wsDataBufferSize)
	for {
		messageType, r, err := m.conn.NextReader()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code == websocket.CloseNormalClosure {
				vlog("server closed the connection normally (1000)")
				err = nil
			} else {
				vlog("connection ended: %v", err)
				err = fmt.Errorf("next reader: %w", err)
			}
			m.closeAllStreamReaders(err)
			return
		}
		if messageType != websocket.BinaryMessage {
			m.closeAllStreamReaders(fmt.Errorf("unexpected message type: %d", messageType))
			return
		}
		if _, err := io.ReadFull(r, buf[:1]); err != nil {
			m.closeAllStreamReaders(fmt.Errorf("read stream id: %w", err))
			return
		}
		id := buf[0]
		m.mu.Lock()
		s := m.streams[id]
		m.mu.Unlock()
		if s == nil {
			fmt.Fprintf(os.Stderr, "streamclient: message for unknown channel %d discarded\n", id)
			continue
		}
		for {
			n, rerr := r.Read(buf)
			if n > 0 {
				if _, werr := s.w.Write(buf[:n]); werr != nil {
					break // the reader went away; drop the message
				}
			}
			if rerr != nil {
				if rerr == io.EOF {
					break
				}
				m.closeAllStreamReaders(fmt.Errorf("read message: %w", rerr))
				return
			}
		}
	}
}

// startHeartbeat pings every 5 s; each pong pushes the read deadline 61 s ahead (data does
// not). A close frame from the server is answered by gorilla's default handler (it echoes
// the close code). Returns a function that stops the pings.
func startHeartbeat(conn *websocket.Conn) func() {
	closer := make(chan struct{})
	var once sync.Once
	stop := func() { once.Do(func() { close(closer) }) }
	conn.SetPongHandler(func(string) error {
		return conn.SetReadDeadline(time.Now().Add(wsPingReadDeadline))
	})
	defaultClose := conn.CloseHandler()
	conn.SetCloseHandler(func(code int, text string) error {
		vlog("close frame received: code %d %q", code, text)
		stop()
		return defaultClose(code, text)
	})
	go func() {
		t := time.NewTicker(wsPingPeriod)
		defer t.Stop()
		for {
			select {
			case <-closer:
				return
			case <-t.C:
			}
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(wsPingReadDeadline)); err != nil {
				if errors.Is(err, websocket.ErrCloseSent) {
					continue
				}
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					continue
				}
				return
			}
		}
	}()
	return stop
}

// wsStream is one channel (client-go's stream): Write sends one binary message [id, data...];
// Close sends the v5 CLOSE signal [255, id] (client-go sends it whatever protocol was
// negotiated) and forbids further writes.
type wsStream struct {
	mux    *wsMux
	id     byte
	r      *io.PipeReader
	w      *io.PipeWriter
	closed bool // guarded by mux.writeMu
}

func (s *wsStream) Read(p []byte) (int, error) { return s.r.Read(p) }

func (s *wsStream) Write(p []byte) (int, error) {
	s.mux.writeMu.Lock()
	defer s.mux.writeMu.Unlock()
	if s.closed {
		return 0, fmt.Errorf("write on closed stream %d", s.id)
	}
	c := s.mux.conn
	if err := c.SetWriteDeadline(time.Now().Add(wsWriteDeadline)); err != nil {
		return 0, err
	}
	w, err := c.NextWriter(websocket.BinaryMessage)
	if err != nil {
		return 0, err
	}
	if _, err := w.Write([]byte{s.id}); err != nil {
		w.Close()
		return 0, err
	}
	n, err := w.Write(p)
	if err != nil {
		w.Close()
		return n, err
	}
	return n, w.Close()
}

func (s *wsStream) Close() error {
	s.mux.writeMu.Lock()
	defer s.mux.writeMu.Unlock()
	if s.closed {
		return fmt.Errorf("Close() on already closed stream %d", s.id)
	}
	s.closed = true
	vlog("sending CLOSE signal [255, %d]", s.id)
	return s.mux.conn.WriteMessage(websocket.BinaryMessage, []byte{wsStreamClose, s.id})
}

func (s *wsStream) Reset() error {
	_ = s.Close()
	return s.w.Close()
}

// websocketExec is client-go's wsStreamExecutor (GET; kubectl offers only v5.channel.k8s.io,
// the default here also offers v4.channel.k8s.io, which client-go also understands).
func websocketExec(o *execOpts) error {
	protocols := o.protocols
	if protocols == nil {
		protocols = []string{protoV5, protoV4}
	}
	conn, err := dialWebSocket(&o.commonOpts, o.url.String(), protocols)
	if err != nil {
		return err
	}
	defer conn.Close() // as client-go: closes the TCP connection, no close frame
	version, err := protocolVersion(conn.Subprotocol())
	if err != nil {
		return err
	}
	m := newWSMux(conn)
	// Start reading only once every stream exists, as client-go does.
	return streamRemoteCommand(m, version, o, func() { go m.readDemuxLoop() })
}

// websocketPortForward speaks kubelet's WebSocket port-forward protocol for one port: the port
// goes in the ports query parameter; channel 0 carries data and channel 1 errors; the server
// first writes the port (uint16, little endian) on each channel. The protocol has no way to
// half-close, so after --send the client only waits for the server to close the connection.
func websocketPortForward(o *portForwardOpts) error {
	protocols := o.protocols
	if protocols == nil {
		protocols = []string{protoV4} // kubelet: "v4.channel.k8s.io" (or v4.base64..., or none)
	}
	u := *o.url
	q := u.Query()
	q.Set("ports", strconv.Itoa(int(o.port)))
	u.RawQuery = q.Encode()
	conn, err := dialWebSocket(&o.commonOpts, u.String(), protocols)
	if err != nil {
		return err
	}
	defer conn.Close()

	m := newWSMux(conn)
	dataStream, _ := m.addStream(0)
	errorStream, _ := m.addStream(1)
	go m.readDemuxLoop()

	readPrefix := func(name string, s *wsStream) error {
		var b [2]byte
		if _, err := io.ReadFull(s, b[:]); err != nil {
			return fmt.Errorf("reading the port prefix of the %s channel: %v", name, err)
		}
		if got := binary.LittleEndian.Uint16(b[:]); got != o.port {
			return fmt.Errorf("the %s channel starts with port %d, want %d", name, got, o.port)
		}
		vlog("%s channel: port prefix %d", name, o.port)
		return nil
	}

	type result struct {
		msg []byte
		err error
	}
	errCh := make(chan result, 1)
	go func() {
		if err := readPrefix("error", errorStream); err != nil {
			// Keep draining so that the demultiplexer never blocks on this channel.
			_, _ = io.Copy(io.Discard, errorStream)
			errCh <- result{nil, err}
			return
		}
		msg, err := io.ReadAll(errorStream)
		errCh <- result{msg, err}
	}()

	if o.send != "" {
		if _, err := dataStream.Write([]byte(o.send)); err != nil {
			fmt.Fprintf(os.Stderr, "streamclient: writing to the data channel: %v\n", err)
		}
	}

	var dataErr error
	if dataErr = readPrefix("data", dataStream); dataErr == nil {
		if _, err := io.Copy(os.Stdout, dataStream); err != nil {
			dataErr = fmt.Errorf("reading the data channel: %v", err)
		}
	} else {
		_, _ = io.Copy(io.Discard, dataStream)
	}
	res := <-errCh
	if len(res.msg) > 0 {
		fmt.Fprintf(os.Stderr, "streamclient: port-forward error: %s\n", res.msg)
	}
	switch {
	case dataErr != nil:
		return protoErr("%v", dataErr)
	case res.err != nil:
		return protoErr("%v", res.err)
	case len(res.msg) > 0:
		return &exitError{code: exitPFError}
	}
	return nil
}
