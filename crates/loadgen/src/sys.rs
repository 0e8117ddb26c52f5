//! What the instrument costs and may use: its own CPU time and peak memory, and the open-file
//! limit, read from `/proc` (Linux) without `libc`.

use serde::Serialize;

/// Kernel clock ticks per second in `/proc/*/stat` (`USER_HZ`, fixed at 100 in the Linux ABI on
/// every architecture Rust supports here).
const USER_HZ: f64 = 100.0;

/// CPU time consumed by this process so far (all threads, including finished ones).
///
/// Exists so the report can say whether the load generator itself was saturated: on a small
/// machine it shares the cores with the server it measures.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuTimes {
    /// User-mode seconds.
    pub user_s: f64,
    /// Kernel-mode seconds.
    pub system_s: f64,
}

impl CpuTimes {
    /// This process, now; `None` where `/proc/self/stat` is unreadable (not Linux).
    pub fn now() -> Option<CpuTimes> {
        parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
    }

    /// Time spent since `earlier`.
    pub fn since(&self, earlier: &CpuTimes) -> CpuTimes {
        CpuTimes { user_s: self.user_s - earlier.user_s, system_s: self.system_s - earlier.system_s }
    }
}

/// Parse `utime` and `stime` (fields 14 and 15) of a `/proc/PID/stat` line. The command name
/// (field 2) is in parentheses and may contain spaces and parentheses, so fields are counted
/// from the last `)`.
pub fn parse_stat(line: &str) -> Option<CpuTimes> {
    let rest = &line[line.rfind(')')? + 1..];
    // After ")": field 3 (state) is the first; utime is field 14, i.e. the 12th from here.
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(CpuTimes { user_s: utime as f64 / USER_HZ, system_s: stime as f64 / USER_HZ })
}

/// Peak resident set size in bytes (`VmHWM` of `/proc/self/status`).
pub fn peak_rss_bytes() -> Option<u64> {
    status_bytes("self", "VmHWM:")
}

/// Peak resident set size of another process, in bytes (`VmHWM` of `/proc/PID/status`);
/// `None` once it has exited (or off Linux).
pub fn peak_rss_bytes_of(pid: u32) -> Option<u64> {
    status_bytes(&pid.to_string(), "VmHWM:")
}

/// Resident set size of another process now, in bytes (`VmRSS` of `/proc/PID/status`).
pub fn rss_bytes_of(pid: u32) -> Option<u64> {
    status_bytes(&pid.to_string(), "VmRSS:")
}

/// A `kB` field of `/proc/{pid}/status`, in bytes.
fn status_bytes(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_ascii_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The open-file limit of this process.
///
/// Exists because every viewer is a socket: with the common default soft limit of 1024, a
/// 1000-viewer run fails with `EMFILE` unless the shell raised it (`ulimit -n 4096`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct FileLimit {
    /// Soft limit (`None` = unlimited).
    pub soft: Option<u64>,
    /// Hard limit (`None` = unlimited).
    pub hard: Option<u64>,
}

impl FileLimit {
    /// This process's `Max open files`; `None` where `/proc/self/limits` is unreadable.
    pub fn current() -> Option<FileLimit> {
        parse_limits(&std::fs::read_to_string("/proc/self/limits").ok()?)
    }
}

/// Parse the `Max open files` line of `/proc/PID/limits`.
pub fn parse_limits(text: &str) -> Option<FileLimit> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let mut values = line["Max open files".len()..].split_ascii_whitespace();
    let value = |s: &str| if s == "unlimited" { Some(None) } else { s.parse().ok().map(Some) };
    Some(FileLimit { soft: value(values.next()?)?, hard: value(values.next()?)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "4242 (tokio (worker) 1) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 56 0 0 20 0 3 0 99 0 0";
        assert_eq!(parse_stat(line), Some(CpuTimes { user_s: 12.34, system_s: 0.56 }));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_stat_is_readable_on_linux() {
        if cfg!(target_os = "linux") {
            let t = CpuTimes::now().expect("/proc/self/stat");
            assert!(t.user_s >= 0.0 && t.system_s >= 0.0);
            assert!(peak_rss_bytes().unwrap() > 0);
            let me = std::process::id();
            // RSS first: other tests in this process allocate meanwhile, and
            // only a peak read after the RSS is bound to be at least as high.
            let rss = rss_bytes_of(me).unwrap();
            assert!(peak_rss_bytes_of(me).unwrap() >= rss);
            assert!(FileLimit::current().is_some());
        }
    }

    #[test]
    fn limits_line() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max processes             63428                63428                processes \n\
                    Max open files            1024                 524288               files     \n";
        assert_eq!(parse_limits(text), Some(FileLimit { soft: Some(1024), hard: Some(524288) }));
        let text = "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_limits(text), Some(FileLimit { soft: None, hard: None }));
    }
}
