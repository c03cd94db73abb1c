//! One owner per run folder: whoever trains into a folder (a single run, a study, a resume)
//! holds its `.lock`, so two processes never write the same files.

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
                    let _ = write!(f, "{}", std::process::id());
                    return Ok(Some(RunLock(path)));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let pid = std::fs::read_to_string(&path).unwrap_or_default();
                    let alive = match pid.trim().parse::<u32>() {
                        Ok(p) => Path::new(&format!("/proc/{p}")).exists(),
                        // no pid yet: its owner created the file and is writing its pid
                        // (a crash in that instant leaves an empty file, stale after a while)
                        Err(_) => std::fs::metadata(&path)
                            .and_then(|m| m.modified())
                            .map(|t| t.elapsed().unwrap_or_default().as_secs() < 30)
                            .unwrap_or(false),
                    };
                    if alive {
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

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
