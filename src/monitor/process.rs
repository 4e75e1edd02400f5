//! The monitor process (`crishim monitor`, started by the daemon, one per pod).
//!
//! It starts single-threaded and without an async runtime, to stay small (threads come only
//! with containers: one per wasm or Linux container, one per container request, one reaping
//! orphans when the pod shares a pid namespace): it leaves the daemon's
//! session, unshares the pod's namespaces, brings up loopback, sets the hostname, forks once
//! into a new pid namespace when the pod shares one, then prints its ready line and serves its
//! control socket until told to shut down. The daemon pins the namespaces and sets the cgroup.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nix::sched::CloneFlags;

use crate::monitor::containers::{ContainerError, PodContainers};
use crate::monitor::orphans::{Orphans, SWEEP_INTERVAL, zombie_children};
use crate::monitor::protocol::{ReadyLine, RefusalCode, Request, Response, with_short_path};
use crate::monitor::session;

/// What a monitor is told on its command line.
#[derive(Debug, Clone, clap::Args)]
pub struct MonitorArgs {
    /// The pod sandbox id.
    #[arg(long)]
    pub pod_id: String,
    /// The control socket to serve.
    #[arg(long)]
    pub socket: PathBuf,
    /// Hostname to set in the new UTS namespace.
    #[arg(long)]
    pub hostname: Option<String>,
    /// Create a network namespace.
    #[arg(long)]
    pub net: bool,
    /// Create an IPC namespace.
    #[arg(long)]
    pub ipc: bool,
    /// Create a UTS namespace.
    #[arg(long)]
    pub uts: bool,
    /// Create a PID namespace (the monitor becomes its pid 1).
    #[arg(long)]
    pub pid: bool,
    /// A namespaced sysctl to set in the new namespaces, `key=value` (repeatable).
    #[arg(long = "sysctl")]
    pub sysctls: Vec<String>,
}

/// Runs the monitor; returns the process exit code.
pub fn run(args: MonitorArgs) -> i32 {
    let listener = match set_up(&args) {
        Ok(listener) => listener,
        Err(message) => {
            report_ready(&ReadyLine::Failed { message });
            return 1;
        }
    };
    let pid = host_pid();
    report_ready(&ReadyLine::Ready { pid });
    // From now on stdout goes where stderr goes: the monitor log the daemon opened.
    let _ = nix::unistd::dup2_stdout(std::io::stderr());
    eprintln!("monitor for pod {} ready, pid {pid}", args.pod_id);
    let containers = Arc::new(PodContainers::default());
    if args.pid {
        sweep_orphans(containers.orphans());
    }
    serve(&listener, &args.pod_id, pid, &containers);
    0
}

fn set_up(args: &MonitorArgs) -> Result<UnixListener, String> {
    nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    let mut flags = CloneFlags::empty();
    for (wanted, flag) in [
        (args.net, CloneFlags::CLONE_NEWNET),
        (args.ipc, CloneFlags::CLONE_NEWIPC),
        (args.uts, CloneFlags::CLONE_NEWUTS),
        (args.pid, CloneFlags::CLONE_NEWPID),
    ] {
        if wanted {
            flags |= flag;
        }
    }
    nix::sched::unshare(flags).map_err(|e| format!("unshare namespaces {flags:?}: {e}"))?;
    if args.net {
        loopback_up().map_err(|e| format!("bring up lo: {e}"))?;
    }
    if let (true, Some(hostname)) = (args.uts, &args.hostname) {
        nix::unistd::sethostname(hostname).map_err(|e| format!("sethostname {hostname:?}: {e}"))?;
    }
    for sysctl in &args.sysctls {
        set_sysctl(sysctl)?;
    }
    if args.pid {
        enter_new_pid_namespace()?;
    }
    // Orphans in the pod (a container's children) come to the monitor, not to the host's init.
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| format!("set child subreaper: {e}"))?;
    let _ = std::fs::remove_file(&args.socket);
    let listener = with_short_path(&args.socket, |p| UnixListener::bind(p))
        .map_err(|e| format!("bind control socket {}: {e}", args.socket.display()))?;
    std::fs::set_permissions(&args.socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("chmod {}: {e}", args.socket.display()))?;
    Ok(listener)
}

/// Writes a `key=value` sysctl (checked by the daemon) under /proc/sys: network ones apply to
/// the writer's network namespace, IPC ones to its IPC namespace, so to the pod's.
fn set_sysctl(sysctl: &str) -> Result<(), String> {
    let (key, value) = sysctl
        .split_once('=')
        .ok_or_else(|| format!("sysctl {sysctl:?} is not key=value"))?;
    let path = std::path::Path::new("/proc/sys").join(key.replace('.', "/"));
    std::fs::write(&path, value).map_err(|e| format!("set sysctl {key} to {value:?}: {e}"))
}

/// unshare(CLONE_NEWPID) puts only our future children in the new namespace: fork once, the
/// child (pid 1 there) goes on as the monitor and the parent exits at once.
fn enter_new_pid_namespace() -> Result<(), String> {
    // SAFETY: the monitor is single-threaded here (no thread has been spawned yet), so the
    // child may run arbitrary code after fork.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => Ok(()),
        Ok(nix::unistd::ForkResult::Parent { .. }) => {
            // SAFETY: _exit skips atexit handlers and destructors, which belong to the child now.
            unsafe { libc::_exit(0) }
        }
        Err(e) => Err(format!("fork into the new pid namespace: {e}")),
    }
}

/// Our pid as the host sees it: /proc is the host's, so /proc/self names it even when we are
/// pid 1 of a new pid namespace.
fn host_pid() -> i32 {
    std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str()?.parse().ok())
        .unwrap_or_else(|| std::process::id() as i32)
}

fn report_ready(line: &ReadyLine) {
    let mut out = std::io::stdout().lock();
    if let Ok(mut text) = serde_json::to_vec(line) {
        text.push(b'\n');
        let _ = out.write_all(&text);
        let _ = out.flush();
    }
}

/// Sets IFF_UP on `lo` in the new network namespace, as the CNI loopback plugin would.
fn loopback_up() -> std::io::Result<()> {
    // SAFETY: a plain datagram socket used only for interface ioctls.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: sock was just returned by socket(2) and is owned here.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(sock) };
    let raw = std::os::fd::AsRawFd::as_raw_fd(&sock);
    // SAFETY: ifreq is plain data; zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the flags member of a valid ifreq.
    unsafe {
        if libc::ioctl(raw, libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(raw, libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// As pid 1 of the pod's pid namespace, the monitor inherits every orphan of the pod: a thread
/// reaps them.
fn sweep_orphans(orphans: Arc<Orphans>) {
    let spawned = std::thread::Builder::new()
        .name("orphans".into())
        .spawn(move || {
            loop {
                std::thread::sleep(SWEEP_INTERVAL);
                orphans.sweep(&zombie_children());
            }
        });
    if let Err(e) = spawned {
        eprintln!("cannot start the orphan reaper: {e}");
    }
}

/// Serves the control socket until a Shutdown: new connections, and the connections kept
/// after a request answered in place, which the daemon reuses for its next one.
fn serve(listener: &UnixListener, pod_id: &str, pid: i32, containers: &Arc<PodContainers>) {
    let mut kept: Vec<UnixStream> = Vec::new();
    loop {
        let mut fds: Vec<libc::pollfd> = std::iter::once(listener.as_raw_fd())
            .chain(kept.iter().map(|s| s.as_raw_fd()))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a valid array of pollfds over descriptors we own.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if ready < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                eprintln!("monitor for pod {pod_id}: poll: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
            continue;
        }
        let mut waiting = Vec::with_capacity(kept.len() + 1);
        let mut readable = Vec::new();
        for (stream, fd) in kept.drain(..).zip(&fds[1..]) {
            match fd.revents {
                0 => waiting.push(stream),
                _ => readable.push(stream),
            }
        }
        if fds[0].revents != 0
            && let Ok((stream, _)) = listener.accept()
        {
            readable.push(stream);
        }
        for stream in readable {
            match serve_request(stream, pod_id, pid, containers) {
                Connection::Kept(stream) => waiting.push(stream),
                Connection::Passed => {}
                Connection::Shutdown => return,
            }
        }
        kept = waiting;
    }
}

/// What became of a connection after its request.
enum Connection {
    /// Answered in place: kept for the client's next request.
    Kept(UnixStream),
    /// Closed, or handed to whatever serves it now (a thread, the exit watchers).
    Passed,
    /// The monitor was told to shut down.
    Shutdown,
}

/// Reads one request from `stream` and answers it, in place or on a thread of its own.
fn serve_request(
    stream: UnixStream,
    pod_id: &str,
    pid: i32,
    containers: &Arc<PodContainers>,
) -> Connection {
    let request = match read_request(&stream) {
        Ok(Some(request)) => request,
        Ok(None) => return Connection::Passed,
        Err(e) => {
            eprintln!("monitor for pod {pod_id}: control connection: {e}");
            return Connection::Passed;
        }
    };
    match request {
        Request::Shutdown => {
            eprintln!("monitor for pod {pod_id}: shutdown requested");
            containers.stop_all();
            let _ = respond(&stream, &Response::Done);
            Connection::Shutdown
        }
        Request::Ping => {
            let pong = Response::Pong {
                pod_id: pod_id.to_string(),
                pid,
            };
            kept_if_answered(stream, &pong)
        }
        Request::WatchExits => {
            if respond(&stream, &Response::Done).is_ok()
                && let Err(e) = containers.watch_exits(stream)
            {
                eprintln!("monitor for pod {pod_id}: exit watcher: {e}");
            }
            Connection::Passed
        }
        Request::ListContainers => {
            let listed = Response::Containers {
                ids: containers.ids(),
                started: containers.started(),
            };
            kept_if_answered(stream, &listed)
        }
        // Creating a wasm container, starting one, removing one that has nothing to wait
        // for and reopening a log take a moment: they are answered here, which spares a
        // thread per request on a short container's path.
        request @ (Request::CreateWasm { .. }
        | Request::StartContainer { .. }
        | Request::ReopenLog { .. }) => kept_if_answered(stream, &answer(containers, request)),
        Request::RemoveContainer { container_id } if containers.removes_at_once(&container_id) => {
            let removed = answer(containers, Request::RemoveContainer { container_id });
            let _ = respond(&stream, &removed);
            Connection::Passed
        }
        // Attach and exec sessions last as long as the client stays: a thread each.
        Request::Attach {
            container_id,
            stdin,
        } => {
            let containers = containers.clone();
            on_thread("attach", pod_id, move || {
                match containers.attach(&container_id, stdin) {
                    Ok((output, stdin)) => {
                        if respond(&stream, &Response::Done).is_ok() {
                            session::serve_attach(stream, output, stdin);
                        }
                    }
                    Err(e) => {
                        let _ = respond(&stream, &refusal(e));
                    }
                }
            });
            Connection::Passed
        }
        Request::Exec {
            container_id,
            argv,
            stdin,
        } => {
            let containers = containers.clone();
            on_thread("exec", pod_id, move || {
                match containers.exec_streaming(&container_id, argv, stdin) {
                    Ok((exec, stdin)) => {
                        let _ = respond(&stream, &Response::Done);
                        session::serve_exec(stream, exec, stdin);
                    }
                    Err(e) => {
                        let _ = respond(&stream, &refusal(e));
                    }
                }
            });
            Connection::Passed
        }
        // The others may wait (a stop's grace period, the helper, an exec): each gets a
        // thread.
        request => {
            let containers = containers.clone();
            on_thread("control", pod_id, move || {
                let response = answer(&containers, request);
                let _ = respond(&stream, &response);
            });
            Connection::Passed
        }
    }
}

/// Answers a request served in place; the connection is kept for the client's next one
/// ([`Request::answered_in_place`]) unless the answer could not be written.
fn kept_if_answered(stream: UnixStream, response: &Response) -> Connection {
    match respond(&stream, response) {
        Ok(()) => Connection::Kept(stream),
        Err(_) => Connection::Passed,
    }
}

/// Runs `work` on a new thread named `name`; a thread that cannot start is logged (the
/// request's connection closes unanswered, which the daemon reports).
fn on_thread(name: &str, pod_id: &str, work: impl FnOnce() + Send + 'static) {
    let spawned = std::thread::Builder::new().name(name.into()).spawn(work);
    if let Err(e) = spawned {
        eprintln!("monitor for pod {pod_id}: cannot start a thread: {e}");
    }
}

/// Reads one request line; a malformed one is answered here and yields None.
fn read_request(stream: &UnixStream) -> std::io::Result<Option<Request>> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    if line.is_empty() {
        return Ok(None);
    }
    match serde_json::from_str::<Request>(&line) {
        Ok(request) => Ok(Some(request)),
        Err(e) => {
            respond(
                stream,
                &Response::Failed {
                    message: format!("bad request: {e}"),
                },
            )?;
            Ok(None)
        }
    }
}

fn respond(mut stream: &UnixStream, response: &Response) -> std::io::Result<()> {
    let mut text = serde_json::to_vec(response)?;
    text.push(b'\n');
    stream.write_all(&text)
}

fn answer(containers: &PodContainers, request: Request) -> Response {
    let outcome = match request {
        Request::ExecSync {
            container_id,
            argv,
            timeout_ms,
        } => match containers.exec(&container_id, argv, Duration::from_millis(timeout_ms)) {
            Ok(outcome) => return Response::Exec { outcome },
            Err(e) => Err(e),
        },
        Request::CreateWasm { launch } => containers.create_wasm(launch),
        Request::CreateLinux { launch } => containers.create_linux(launch),
        Request::StartContainer { container_id } => match containers.start(&container_id) {
            Ok(started_at) => return Response::Started { started_at },
            Err(e) => Err(e),
        },
        Request::StopContainer {
            container_id,
            timeout_ms,
        } => containers.stop(&container_id, Duration::from_millis(timeout_ms)),
        Request::RemoveContainer { container_id } => containers.remove(&container_id),
        Request::ReopenLog { container_id } => containers.reopen_log(&container_id),
        Request::Ping
        | Request::Shutdown
        | Request::ListContainers
        | Request::WatchExits
        | Request::Attach { .. }
        | Request::Exec { .. } => Ok(()),
    };
    match outcome {
        Ok(()) => Response::Done,
        Err(e) => refusal(e),
    }
}

/// The answer to a request that failed.
fn refusal(error: ContainerError) -> Response {
    match error {
        ContainerError::Invalid(message) => Response::Refused {
            code: RefusalCode::Invalid,
            message,
        },
        ContainerError::State(message) => Response::Refused {
            code: RefusalCode::State,
            message,
        },
        ContainerError::Unknown(message) => Response::Refused {
            code: RefusalCode::Unknown,
            message,
        },
        ContainerError::Host(message) => Response::Failed { message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::protocol::call;

    #[test]
    fn serves_ping_and_stops_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("m.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let containers = Arc::new(PodContainers::default());
        let server = std::thread::spawn(move || serve(&listener, "pod1", 42, &containers));
        let timeout = Duration::from_secs(5);
        assert_eq!(
            call(&socket, &Request::Ping, timeout).unwrap(),
            Response::Pong {
                pod_id: "pod1".into(),
                pid: 42
            }
        );
        let mut raw = UnixStream::connect(&socket).unwrap();
        raw.write_all(b"{\"op\":\"dance\"}\n").unwrap();
        let mut answer = String::new();
        BufReader::new(&raw).read_line(&mut answer).unwrap();
        assert!(answer.contains("bad request"), "{answer}");

        // A connection whose request was answered in place takes the next one; while it
        // waits, other connections are served.
        let kept = UnixStream::connect(&socket).unwrap();
        for _ in 0..2 {
            (&kept).write_all(b"{\"op\":\"ping\"}\n").unwrap();
            let mut pong = String::new();
            BufReader::new(&kept).read_line(&mut pong).unwrap();
            assert!(pong.contains("pong"), "{pong}");
        }
        assert!(Request::Ping.answered_in_place());
        assert!(matches!(
            call(&socket, &Request::ListContainers, timeout).unwrap(),
            Response::Containers { .. }
        ));
        drop(kept);
        assert_eq!(
            call(&socket, &Request::Shutdown, timeout).unwrap(),
            Response::Done
        );
        server.join().unwrap();
    }
}
