//! Reaping orphans. When a pod shares a pid namespace, its monitor is that namespace's pid 1,
//! so every process of the pod whose parent dies becomes the monitor's child, and must be
//! reaped or it stays a zombie. The monitor also waits for some children itself (helpers,
//! container inits): those are tracked here and left alone; any other zombie child is reaped
//! once it has been seen unclaimed on two sweeps in a row, so a child whose pid is learnt a
//! moment after it exits (a container's init, from the helper) is never taken by mistake.

use std::collections::HashSet;
use std::io;
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::Duration;

/// How often the monitor looks for zombies.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Children the monitor waits for itself, and zombies seen unclaimed on the last sweep.
#[derive(Debug, Default)]
pub struct Orphans {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    claimed: HashSet<i32>,
    suspects: HashSet<i32>,
}

impl Orphans {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Spawns `command` and claims its pid before any sweep can see it exit.
    pub fn spawn(&self, command: &mut Command) -> io::Result<Child> {
        let mut state = self.lock();
        let child = command.spawn()?;
        state.claimed.insert(child.id() as i32);
        Ok(child)
    }

    /// Claims `pid` (in the monitor's pid namespace): someone waits for it.
    pub fn claim(&self, pid: i32) {
        self.lock().claimed.insert(pid);
    }

    /// `pid` has been waited for.
    pub fn release(&self, pid: i32) {
        self.lock().claimed.remove(&pid);
    }

    /// Reaps zombie children (given as pids of the monitor's namespace) that were unclaimed on
    /// the last sweep too; returns how many.
    pub fn sweep(&self, zombies: &[i32]) -> usize {
        let mut state = self.lock();
        let unclaimed: HashSet<i32> = zombies
            .iter()
            .copied()
            .filter(|pid| !state.claimed.contains(pid))
            .collect();
        let mut reaped = 0;
        for pid in unclaimed.intersection(&state.suspects) {
            let pid = nix::unistd::Pid::from_raw(*pid);
            if nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)).is_ok() {
                reaped += 1;
            }
        }
        state.suspects = unclaimed;
        reaped
    }
}

/// The monitor's zombie children, as pids of its own pid namespace (the host's /proc shows
/// host pids; each one's `NSpid` line ends with the pid it has in the innermost namespace).
pub fn zombie_children() -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut zombies = Vec::new();
    for task in tasks.flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for host_pid in children.split_whitespace() {
            let Ok(status) = std::fs::read_to_string(format!("/proc/{host_pid}/status")) else {
                continue;
            };
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(str::trim)
            };
            let zombie = field("State:").is_some_and(|s| s.starts_with('Z'));
            let own_pid = field("NSpid:")
                .and_then(|s| s.split_whitespace().last())
                .and_then(|p| p.parse().ok());
            if let (true, Some(pid)) = (zombie, own_pid) {
                zombies.push(pid);
            }
        }
    }
    zombies
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zombie() -> i32 {
        let child = Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        // Not waited for: it stays a zombie child of this process.
        std::mem::forget(child);
        for _ in 0..200 {
            if zombie_children().contains(&pid) {
                return pid;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("child {pid} did not become a zombie");
    }

    #[test]
    fn unclaimed_zombies_are_reaped_on_the_second_sweep_only() {
        let orphans = Orphans::default();
        let stray = zombie();
        let claimed = zombie();
        orphans.claim(claimed);
        assert_eq!(
            orphans.sweep(&[stray, claimed]),
            0,
            "first sight: a suspect"
        );
        assert_eq!(orphans.sweep(&[stray, claimed]), 1);
        assert!(!zombie_children().contains(&stray));
        assert!(
            zombie_children().contains(&claimed),
            "a claimed child is left alone"
        );
        orphans.release(claimed);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(claimed), None);
    }
}
