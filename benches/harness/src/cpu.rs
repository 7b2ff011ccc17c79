//! How busy the machine's processors were over a stretch of a run, from
//! Linux's `/proc/stat`: a latency figure means little without knowing
//! whether the cores it was measured on had any time to spare.

/// The processors' time counters at one instant (clock ticks since boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// Ticks spent on anything but idling or waiting for I/O.
    busy: u64,
    total: u64,
}

impl CpuTimes {
    /// The counters now; `None` where there is no `/proc/stat` (not Linux).
    pub fn now() -> Option<Self> {
        Self::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// The first line of `/proc/stat`: `cpu user nice system idle iowait
    /// irq softirq steal ...`, summed over every core.
    fn parse(stat: &str) -> Option<Self> {
        let line = stat.lines().next()?;
        let mut fields = line.split_whitespace();
        if fields.next()? != "cpu" {
            return None;
        }
        // guest and guest_nice are already counted in user and nice.
        let ticks: Vec<u64> = fields.take(8).map(str::parse).collect::<Result<_, _>>().ok()?;
        if ticks.len() < 5 {
            return None;
        }
        let total: u64 = ticks.iter().sum();
        let idle = ticks[3] + ticks[4];
        Some(Self { busy: total - idle, total })
    }

    /// The share of all cores' time that was busy from `self` to `later`,
    /// in percent (100 % means every core busy all the time).
    pub fn busy_percent_until(&self, later: &Self) -> Option<f64> {
        let total = later.total.checked_sub(self.total)?;
        let busy = later.busy.checked_sub(self.busy)?;
        (total > 0).then(|| 100.0 * busy as f64 / total as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_is_everything_but_idle_and_io_wait_over_the_stretch() {
        let before = CpuTimes::parse("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n").unwrap();
        let after = CpuTimes::parse("cpu  250 10 90 900 50 0 0 0 0 0\n").unwrap();
        // 200 of the 300 ticks in between were busy.
        let busy = before.busy_percent_until(&after).unwrap();
        assert!((busy - 200.0 / 3.0).abs() < 1e-9, "{busy}");
        assert_eq!(before.busy_percent_until(&before), None, "no time passed");
        assert_eq!(after.busy_percent_until(&before), None, "counters never run backwards");
    }

    #[test]
    fn anything_but_the_summary_line_is_not_read() {
        assert_eq!(CpuTimes::parse(""), None);
        assert_eq!(CpuTimes::parse("cpu0 1 2 3 4 5\n"), None);
        assert_eq!(CpuTimes::parse("cpu 1 2 x 4 5\n"), None);
        assert_eq!(CpuTimes::parse("cpu 1 2 3\n"), None);
    }
}
