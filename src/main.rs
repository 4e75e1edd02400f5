//! The `crishim` command: `serve` runs the CRI daemon; `monitor` is the per-pod process the
//! daemon starts (internal); `helper` calls libcontainer for them (internal); `version` prints
//! the version.

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use crishim::config::{Config, Overrides};
use crishim::daemon::Daemon;
use crishim::monitor::process::MonitorArgs;
use crishim::server;

#[derive(Parser)]
#[command(
    name = "crishim",
    version,
    about = "A Kubernetes CRI runtime for Linux containers and WebAssembly"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the CRI daemon.
    Serve(ServeArgs),
    /// The per-pod monitor (started by the daemon; not for direct use).
    #[command(hide = true)]
    Monitor(MonitorArgs),
    /// Calls libcontainer for the monitor and the daemon (internal).
    #[command(hide = true, subcommand)]
    Helper(crishim::runtime::linux::helper::HelperCommand),
    /// Print the version.
    Version,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The CRI socket (default: <state>/crishim.sock, that is /run/crishim/crishim.sock).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Persistent state directory (default /var/lib/crishim).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Runtime state directory (default /run/crishim).
    #[arg(long)]
    state: Option<PathBuf>,
    /// CNI network config dir (default /etc/cni/net.d).
    #[arg(long)]
    cni_conf_dir: Option<PathBuf>,
    /// CNI plugin dir; repeat for several (default /opt/cni/bin and /usr/lib/cni).
    #[arg(long = "cni-bin-dir")]
    cni_bin_dirs: Vec<PathBuf>,
    /// Config file (default /etc/crishim/config.toml, optional).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Log line format on stderr; the level comes from RUST_LOG (default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Monitor(args) => ExitCode::from(crishim::monitor::process::run(args) as u8),
        Command::Helper(command) => {
            init_helper_logging();
            ExitCode::from(crishim::runtime::linux::helper::run(command) as u8)
        }
        Command::Version => {
            println!("crishim {} (CRI v1)", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Serve(args) => {
            init_logging(args.log_format);
            match serve(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "crishim serve failed");
                    eprintln!("crishim: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// libcontainer's diagnostics go to the helper's stderr (the monitor's log) at the level in
/// CRISHIM_HELPER_LOG (default warn), through a close-on-exec copy of it: the container's
/// processes get the container's own stderr on fd 2, and must never get these lines.
fn init_helper_logging() {
    let Ok(stderr) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return;
    };
    let stderr = std::sync::Mutex::new(std::fs::File::from(stderr));
    let filter = tracing_subscriber::EnvFilter::try_from_env("CRISHIM_HELPER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(stderr)
        .with_ansi(false)
        .init();
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn serve(args: ServeArgs) -> crishim::error::Result<()> {
    let config = Config::load(
        args.config.as_deref(),
        Overrides {
            socket: args.socket,
            root: args.root,
            state: args.state,
            cni_conf_dir: args.cni_conf_dir,
            cni_bin_dirs: args.cni_bin_dirs,
        },
    )?;
    // Monitors that fork into a new pid namespace are re-parented to us, so we can reap them.
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| crishim::error::Error::io("become a child subreaper", e.into()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| crishim::error::Error::io("start the async runtime", e))?;
    runtime.block_on(async move {
        for dir in [&config.root, &config.state] {
            std::fs::create_dir_all(dir)
                .map_err(|e| crishim::error::Error::io_path("create", dir, e))?;
        }
        let socket = config.socket_path();
        let listener = server::bind(&socket).await?;
        let daemon = Daemon::start(config).await?;
        tracing::info!(socket = %socket.display(), "crishim serving CRI v1");
        server::serve(daemon, listener, shutdown_signal()).await?;
        let _ = std::fs::remove_file(&socket);
        tracing::info!("crishim stopped; pods keep running");
        Ok(())
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop crishim with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: finishing in-flight calls"),
        _ = int.recv() => tracing::info!("SIGINT: finishing in-flight calls"),
    }
}
