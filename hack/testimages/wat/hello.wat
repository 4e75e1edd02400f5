;; A WASI preview 1 command: writes "hello from wasm" to stdout and returns from _start
;; (exit code 0). The component test image is this module wrapped with the p1 adapter.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; bytes 0..8: one iovec {base = 16, len = 16}; the text at 16.
  (data (i32.const 16) "hello from wasm\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 16))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
