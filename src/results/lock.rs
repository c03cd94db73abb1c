//! One owner per run folder: whoever trains into a folder (a single run, a study, a resume)
//! holds its `.lock`, so two processes never write the same files.
//!
//! The lock names its owner by process id and the process's start time (field 22 of
//! `/proc/<pid>/stat`, clock ticks since boot): a pid reused by an unrelated process after the
//! owner was killed does not pass for the owner. Locks of builds that wrote the pid alone are
//! judged by the pid.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// A lock file that marks a run folder as taken by this process; removed on drop.
pub struct RunLock(PathBuf);

impl RunLock {
    /// Takes `dir/.lock`; `None` when a live process holds it (a lock of a dead process is
    /// taken over).
    pub fn acquire(dir: &Path) -> Result<Option<RunLock>> {
        let path = dir.join(".lock");
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    use std::io::Write;
                    let me = std::process::id();
                    let _ = match process_start(me) {
                        Some(start) => write!(f, "{me} {start}"),
                        None => write!(f, "{me}"),
                    };
                    return Ok(Some(RunLock(path)));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if holder_alive(dir) {
                        return Ok(None);
                    }
                    // stale lock of a crashed process
                    let _ = std::fs::remove_file(&path);
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot create {}", path.display()))
                }
            }
        }
        Ok(None)
    }
}

/// The start time of process `pid` (clock ticks after boot), from `/proc/<pid>/stat`.
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name (field 2) is in parentheses and may hold spaces: count after it
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether `dir/.lock` is held by a live process: its pid exists and, when the lock names it,
/// with the same start time. An empty lock (its owner is still writing its pid) counts as held
/// for 30 s; one whose text is no pid at all (garbage, not written by ablate) is stale.
pub fn holder_alive(dir: &Path) -> bool {
    let path = dir.join(".lock");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return false;
    };
    let mut fields = text.split_whitespace();
    match fields.next().map(str::parse::<u32>) {
        Some(Ok(pid)) => match fields.next().map(str::parse::<u64>) {
            Some(Ok(start)) => process_start(pid) == Some(start),
            _ => Path::new(&format!("/proc/{pid}")).exists(),
        },
        Some(Err(_)) => false,
        None => std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .map(|t| t.elapsed().unwrap_or_default().as_secs() < 30)
            .unwrap_or(false),
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_names_its_owner_by_pid_and_start_time() {
        let dir = std::env::temp_dir().join(format!("ablate-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let lock = RunLock::acquire(&dir).unwrap().expect("free");
        let text = std::fs::read_to_string(dir.join(".lock")).unwrap();
        let me = std::process::id();
        assert_eq!(text, format!("{me} {}", process_start(me).unwrap()));
        assert!(holder_alive(&dir));
        assert!(RunLock::acquire(&dir).unwrap().is_none(), "held");
        drop(lock);
        assert!(!dir.join(".lock").exists());
        // a live pid with another start time is an unrelated process: the lock is stale
        std::fs::write(dir.join(".lock"), format!("{me} 1")).unwrap();
        assert!(!holder_alive(&dir));
        let taken = RunLock::acquire(&dir).unwrap();
        assert!(taken.is_some(), "a stale lock is taken over");
        drop(taken);
        // a lock of an earlier build (pid only) of a live process is held
        std::fs::write(dir.join(".lock"), format!("{me}")).unwrap();
        assert!(holder_alive(&dir));
        // a dead pid is not
        std::fs::write(dir.join(".lock"), "4194999").unwrap();
        assert!(!holder_alive(&dir));
        // an empty lock is being written (held for 30 s); text that is no pid is stale
        std::fs::write(dir.join(".lock"), "").unwrap();
        assert!(holder_alive(&dir));
        std::fs::write(dir.join(".lock"), "garbage\n").unwrap();
        assert!(!holder_alive(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
