;; The wasm containers' test program, a WASI preview 1 command. argv[1] picks what it does:
;;   (none)  print "hello from wasm"            echo   print argv, then environ, a line each
;;   fail    a line on stderr, then exit 3       trap   execute `unreachable`
;;   grow    grow memory by 64 MiB (exit 1 if refused without a trap)
;;   loop    a line, then loop forever           write  create out.txt in the first preopen
;;   partial print text without a newline
;;   sleepy  20 times: a line, then sleep 100 ms (poll_oneoff); then exit 7
;;   idle    sleep 100 ms at a time, forever, silently
;;   cat     copy stdin to stdout until EOF, then a line "stdin closed" (exit 4 on a read error)
;;   (anything else: exit 2)
;; `write` exits 10 + the WASI errno when it cannot create or write the file.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
;; fd_read(fd, iovs, iovs_len, nread)
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; Memory map: 0..8 an iovec; 96..108 sizes and an fd; 128..176 a clock subscription;
  ;; 192..224 its event; 240 "stdin closed"; 1024 argv pointers; 2048 environ pointers; 4096 argv strings; 8192
  ;; environ strings; 16384..20480 the stdin buffer.
  (data (i32.const 16) "hello from wasm\n")
  (data (i32.const 32) "out.txt")
  (data (i32.const 48) "written by wasm\n")
  (data (i32.const 64) "no newline")
  (data (i32.const 80) "\n")
  (data (i32.const 240) "stdin closed\n")

  (func $write (param $fd i32) (param $ptr i32) (param $len i32) (result i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))

  (func $strlen (param $p i32) (result i32) (local $n i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $n))

  ;; Prints `count` NUL-terminated strings whose pointers start at `list`, a line each.
  (func $lines (param $list i32) (param $count i32) (local $i i32) (local $s i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        (local.set $s (i32.load (i32.add (local.get $list) (i32.mul (local.get $i) (i32.const 4)))))
        (drop (call $write (i32.const 1) (local.get $s) (call $strlen (local.get $s))))
        (drop (call $write (i32.const 1) (i32.const 80) (i32.const 1)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next))))

  ;; Sleeps 100 ms: one relative subscription on the monotonic clock.
  (func $nap
    (i64.store (i32.const 128) (i64.const 0))          ;; userdata
    (i32.store8 (i32.const 136) (i32.const 0))         ;; tag: clock
    (i32.store (i32.const 144) (i32.const 1))          ;; clock id: monotonic
    (i64.store (i32.const 152) (i64.const 100000000))  ;; timeout: 100 ms
    (i64.store (i32.const 160) (i64.const 0))          ;; precision
    (i32.store16 (i32.const 168) (i32.const 0))        ;; flags: relative
    (drop (call $poll_oneoff (i32.const 128) (i32.const 192) (i32.const 1) (i32.const 108))))

  (func (export "_start") (local $argc i32) (local $cmd i32) (local $err i32) (local $i i32)
    (drop (call $args_sizes_get (i32.const 96) (i32.const 100)))
    (local.set $argc (i32.load (i32.const 96)))
    (drop (call $args_get (i32.const 1024) (i32.const 4096)))
    (if (i32.lt_u (local.get $argc) (i32.const 2))
      (then
        (drop (call $write (i32.const 1) (i32.const 16) (i32.const 16)))
        (return)))
    (local.set $cmd (i32.load8_u (i32.load (i32.const 1028))))
    (if (i32.eq (local.get $cmd) (i32.const 101)) ;; e
      (then
        (call $lines (i32.const 1024) (local.get $argc))
        (drop (call $environ_sizes_get (i32.const 96) (i32.const 100)))
        (drop (call $environ_get (i32.const 2048) (i32.const 8192)))
        (call $lines (i32.const 2048) (i32.load (i32.const 96)))
        (return)))
    (if (i32.eq (local.get $cmd) (i32.const 102)) ;; f
      (then
        (drop (call $write (i32.const 2) (i32.const 16) (i32.const 16)))
        (call $proc_exit (i32.const 3))))
    (if (i32.eq (local.get $cmd) (i32.const 116)) ;; t
      (then unreachable))
    (if (i32.eq (local.get $cmd) (i32.const 103)) ;; g
      (then
        (if (i32.eq (memory.grow (i32.const 1024)) (i32.const -1))
          (then (call $proc_exit (i32.const 1))))
        (return)))
    (if (i32.eq (local.get $cmd) (i32.const 108)) ;; l
      (then
        (drop (call $write (i32.const 1) (i32.const 16) (i32.const 16)))
        (loop $forever (br $forever))))
    (if (i32.eq (local.get $cmd) (i32.const 119)) ;; w
      (then
        ;; dirflags 0, path "out.txt", oflags CREAT|TRUNC, rights fd_write, fd stored at 104
        (local.set $err
          (call $path_open (i32.const 3) (i32.const 0) (i32.const 32) (i32.const 7)
            (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 104)))
        (if (local.get $err) (then (call $proc_exit (i32.add (i32.const 10) (local.get $err)))))
        (local.set $err (call $write (i32.load (i32.const 104)) (i32.const 48) (i32.const 16)))
        (if (local.get $err) (then (call $proc_exit (i32.add (i32.const 10) (local.get $err)))))
        (return)))
    (if (i32.eq (local.get $cmd) (i32.const 112)) ;; p
      (then
        (drop (call $write (i32.const 1) (i32.const 64) (i32.const 10)))
        (return)))
    (if (i32.eq (local.get $cmd) (i32.const 115)) ;; s
      (then
        (loop $tick
          (drop (call $write (i32.const 1) (i32.const 16) (i32.const 16)))
          (call $nap)
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $tick (i32.lt_u (local.get $i) (i32.const 20))))
        (call $proc_exit (i32.const 7))))
    (if (i32.eq (local.get $cmd) (i32.const 99)) ;; c
      (then
        (loop $copy
          (i32.store (i32.const 0) (i32.const 16384))
          (i32.store (i32.const 4) (i32.const 4096))
          (if (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8))
            (then (call $proc_exit (i32.const 4))))
          (if (i32.load (i32.const 8))
            (then
              (drop (call $write (i32.const 1) (i32.const 16384) (i32.load (i32.const 8))))
              (br $copy))))
        (drop (call $write (i32.const 1) (i32.const 240) (i32.const 13)))
        (return)))
    (if (i32.eq (local.get $cmd) (i32.const 105)) ;; i
      (then
        (loop $forever
          (call $nap)
          (br $forever))))
    (call $proc_exit (i32.const 2))))
