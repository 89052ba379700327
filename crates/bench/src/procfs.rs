//! Reading another process's CPU time and resident memory from `/proc` (Linux).

use std::fs;

use anyhow::Context as _;

/// Clock ticks per second of `utime`/`stime` in `/proc/<pid>/stat` (`USER_HZ`, 100 on
/// every Linux architecture Herald runs on).
const TICKS_PER_SEC: u64 = 100;

/// CPU time (user + system) of process `pid`, in microseconds.
///
/// Sums the on-CPU nanoseconds of every thread (`/proc/<pid>/task/*/schedstat`), which is
/// far finer than the 10 ms ticks of `/proc/<pid>/stat`; falls back to the ticks when
/// schedstat is not available.
pub fn cpu_micros(pid: u32) -> anyhow::Result<u64> {
    if let Some(nanos) = schedstat_nanos(pid) {
        return Ok(nanos / 1000);
    }
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed /proc/<pid>/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat; the first field after ')' is field 3.
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    Ok((utime + stime) * 1_000_000 / TICKS_PER_SEC)
}

fn schedstat_nanos(pid: u32) -> Option<u64> {
    let mut total = 0u64;
    let mut any = false;
    for task in fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = task.ok()?.path().join("schedstat");
        // A thread may end between the listing and the read; it is skipped.
        let Ok(text) = fs::read_to_string(path) else {
            continue;
        };
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
        any = true;
    }
    any.then_some(total)
}

/// Resident set size of process `pid` (`VmRSS`), in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next())
        .context("no VmRSS line")?
        .parse()
        .context("VmRSS is not a number")
}

/// The 1-minute load average of the machine (noted next to every result).
pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}
