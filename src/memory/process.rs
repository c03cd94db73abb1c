//! What the machine and this process hold in memory, read from /proc.

/// A field of `/proc/self/status` in bytes: `VmHWM` (peak resident memory) or `VmRSS`
/// (current).
fn proc_status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Memory this machine can still give (MemAvailable in /proc/meminfo), bytes.
pub fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Peak resident memory of this process so far, bytes.
pub fn peak_rss() -> Option<u64> {
    proc_status_bytes("VmHWM:")
}

/// Current resident memory, bytes.
pub fn current_rss() -> Option<u64> {
    proc_status_bytes("VmRSS:")
}
