;; A WASI p2 command that serves one TCP client through wasi:sockets, written against the
;; canonical ABI directly (its world is hack/testimages/wit/listener.wit; no p1 adapter).
;;
;; It binds an IPv4 socket to 0.0.0.0:8080, listens, accepts one connection (blocking on the
;; listener's pollable while accept says would-block), writes "hello from a wasm socket\n" to
;; it, drops every resource (children first) and returns ok from wasi:cli/run. A failing step
;; writes "listener: <step> failed, error NN" to stderr and returns err (exit code 1).
(module
  (import "wasi:sockets/instance-network@0.2.0" "instance-network"
    (func $instance_network (result i32)))
  (import "wasi:sockets/network@0.2.0" "[resource-drop]network"
    (func $drop_network (param i32)))
  ;; (address-family, return area)
  (import "wasi:sockets/tcp-create-socket@0.2.0" "create-tcp-socket"
    (func $create_tcp_socket (param i32 i32)))
  ;; (socket, network, address case, 11 flattened address fields, return area)
  (import "wasi:sockets/tcp@0.2.0" "[method]tcp-socket.start-bind"
    (func $start_bind
      (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)))
  (import "wasi:sockets/tcp@0.2.0" "[method]tcp-socket.finish-bind"
    (func $finish_bind (param i32 i32)))
  (import "wasi:sockets/tcp@0.2.0" "[method]tcp-socket.start-listen"
    (func $start_listen (param i32 i32)))
  (import "wasi:sockets/tcp@0.2.0" "[method]tcp-socket.finish-listen"
    (func $finish_listen (param i32 i32)))
  (import "wasi:sockets/tcp@0.2.0" "[method]tcp-socket.accept"
    (func $accept (param i32 i32)))
  (import "wasi:sockets/tcp@0.2.0" "[method]tcp-socket.subscribe"
    (func $subscribe (param i32) (result i32)))
  (import "wasi:sockets/tcp@0.2.0" "[resource-drop]tcp-socket"
    (func $drop_socket (param i32)))
  (import "wasi:io/poll@0.2.0" "[method]pollable.block"
    (func $block (param i32)))
  (import "wasi:io/poll@0.2.0" "[resource-drop]pollable"
    (func $drop_pollable (param i32)))
  ;; (stream, bytes, length, return area)
  (import "wasi:io/streams@0.2.0" "[method]output-stream.blocking-write-and-flush"
    (func $write_and_flush (param i32 i32 i32 i32)))
  (import "wasi:io/streams@0.2.0" "[resource-drop]input-stream"
    (func $drop_input (param i32)))
  (import "wasi:io/streams@0.2.0" "[resource-drop]output-stream"
    (func $drop_output (param i32)))
  (import "wasi:cli/stderr@0.2.0" "get-stderr"
    (func $get_stderr (result i32)))

  (memory (export "memory") 1)
  ;; Memory map: 16..32 the return area of socket calls; 32..48 that of stderr writes;
  ;; 64 the greeting; 96 the digits of an error code; 128.. the failure messages.
  (data (i32.const 64) "hello from a wasm socket\n")
  (data (i32.const 128) "listener: create-tcp-socket failed, error ")  ;; 42 bytes
  (data (i32.const 176) "listener: start-bind failed, error ")         ;; 35 bytes
  (data (i32.const 224) "listener: finish-bind failed, error ")        ;; 36 bytes
  (data (i32.const 272) "listener: start-listen failed, error ")       ;; 37 bytes
  (data (i32.const 320) "listener: finish-listen failed, error ")      ;; 38 bytes
  (data (i32.const 368) "listener: accept failed, error ")             ;; 31 bytes
  (data (i32.const 416) "listener: write failed, error ")              ;; 30 bytes

  ;; The return area: a result's case byte, then its payload (at 4, or at 1 for an error-code
  ;; next to an empty ok).
  (global $ret i32 (i32.const 16))
  ;; error-code.would-block
  (global $would_block i32 (i32.const 8))

  ;; Writes `len` bytes at `ptr` to stderr (best effort: the result is not looked at).
  (func $say (param $ptr i32) (param $len i32) (local $stream i32)
    (local.set $stream (call $get_stderr))
    (call $write_and_flush (local.get $stream) (local.get $ptr) (local.get $len) (i32.const 32))
    (call $drop_output (local.get $stream)))

  ;; Reports a failed step and its error code (two decimal digits), then gives err for `run`.
  (func $fail (param $ptr i32) (param $len i32) (param $code i32) (result i32)
    (i32.store8 (i32.const 96)
      (i32.add (i32.const 48) (i32.div_u (local.get $code) (i32.const 10))))
    (i32.store8 (i32.const 97)
      (i32.add (i32.const 48) (i32.rem_u (local.get $code) (i32.const 10))))
    (i32.store8 (i32.const 98) (i32.const 10))
    (call $say (local.get $ptr) (local.get $len))
    (call $say (i32.const 96) (i32.const 3))
    (i32.const 1))

  ;; Blocks until `socket` is ready for its pending operation.
  (func $wait (param $socket i32) (local $pollable i32)
    (local.set $pollable (call $subscribe (local.get $socket)))
    (call $block (local.get $pollable))
    (call $drop_pollable (local.get $pollable)))

  ;; The error code of a failed `result<_, error-code>` in the return area; -1 when it is ok.
  (func $unit_error (result i32)
    (if (result i32) (i32.load8_u (global.get $ret))
      (then (i32.load8_u (i32.add (global.get $ret) (i32.const 1))))
      (else (i32.const -1))))

  (func $run (export "wasi:cli/run@0.2.0#run") (result i32)
    (local $network i32) (local $listener i32) (local $client i32) (local $input i32)
    (local $output i32) (local $code i32)
    (local.set $network (call $instance_network))

    ;; create-tcp-socket(ipv4) -> result<tcp-socket, error-code>
    (call $create_tcp_socket (i32.const 0) (global.get $ret))
    (if (i32.load8_u (global.get $ret))
      (then
        (return (call $fail (i32.const 128) (i32.const 42)
          (i32.load8_u (i32.add (global.get $ret) (i32.const 4)))))))
    (local.set $listener (i32.load (i32.add (global.get $ret) (i32.const 4))))

    ;; start-bind(network, ipv4 { port: 8080, address: (0, 0, 0, 0) })
    (call $start_bind (local.get $listener) (local.get $network)
      (i32.const 0)                                                    ;; case ipv4
      (i32.const 8080) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
      (global.get $ret))
    (local.set $code (call $unit_error))
    (if (i32.ge_s (local.get $code) (i32.const 0))
      (then (return (call $fail (i32.const 176) (i32.const 35) (local.get $code)))))

    (block $bound
      (loop $again
        (call $finish_bind (local.get $listener) (global.get $ret))
        (local.set $code (call $unit_error))
        (br_if $bound (i32.lt_s (local.get $code) (i32.const 0)))
        (if (i32.ne (local.get $code) (global.get $would_block))
          (then (return (call $fail (i32.const 224) (i32.const 36) (local.get $code)))))
        (call $wait (local.get $listener))
        (br $again)))

    (call $start_listen (local.get $listener) (global.get $ret))
    (local.set $code (call $unit_error))
    (if (i32.ge_s (local.get $code) (i32.const 0))
      (then (return (call $fail (i32.const 272) (i32.const 37) (local.get $code)))))

    (block $listening
      (loop $again
        (call $finish_listen (local.get $listener) (global.get $ret))
        (local.set $code (call $unit_error))
        (br_if $listening (i32.lt_s (local.get $code) (i32.const 0)))
        (if (i32.ne (local.get $code) (global.get $would_block))
          (then (return (call $fail (i32.const 320) (i32.const 38) (local.get $code)))))
        (call $wait (local.get $listener))
        (br $again)))

    ;; accept() -> result<tuple<tcp-socket, input-stream, output-stream>, error-code>
    (block $accepted
      (loop $again
        (call $accept (local.get $listener) (global.get $ret))
        (br_if $accepted (i32.eqz (i32.load8_u (global.get $ret))))
        (local.set $code (i32.load8_u (i32.add (global.get $ret) (i32.const 4))))
        (if (i32.ne (local.get $code) (global.get $would_block))
          (then (return (call $fail (i32.const 368) (i32.const 31) (local.get $code)))))
        (call $wait (local.get $listener))
        (br $again)))
    (local.set $client (i32.load (i32.add (global.get $ret) (i32.const 4))))
    (local.set $input (i32.load (i32.add (global.get $ret) (i32.const 8))))
    (local.set $output (i32.load (i32.add (global.get $ret) (i32.const 12))))

    ;; blocking-write-and-flush -> result<_, stream-error>; stream-error's case at 4:
    ;; 0 last-operation-failed, 1 closed (reported as 90 + the case).
    (call $write_and_flush (local.get $output) (i32.const 64) (i32.const 25) (global.get $ret))
    (if (i32.load8_u (global.get $ret))
      (then
        (return (call $fail (i32.const 416) (i32.const 30)
          (i32.add (i32.const 90) (i32.load8_u (i32.add (global.get $ret) (i32.const 4))))))))

    ;; Children before their parents: the streams, then the sockets, then the network.
    (call $drop_output (local.get $output))
    (call $drop_input (local.get $input))
    (call $drop_socket (local.get $client))
    (call $drop_socket (local.get $listener))
    (call $drop_network (local.get $network))
    (i32.const 0)))
