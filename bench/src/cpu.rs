//! CPU time used by processes, from `/proc`: to say where a benchmark's cores went
//! (the server, the database, the load generator), not only how fast it answered.

/// CPU seconds (user + system) process `pid` has used; 0 when it is gone.
pub fn process_secs(pid: u32) -> f64 {
    stat_secs(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default())
}

/// CPU seconds (user + system) this process has used.
pub fn own_secs() -> f64 {
    stat_secs(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default())
}

/// CPU seconds (user + system) used by every live process whose command name is
/// `comm` (such as `postgres`: the postmaster and each backend are processes), and by
/// their children that have exited and been waited for.
pub fn named_secs(comm: &str) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| stat_comm(stat) == Some(comm))
        .map(|stat| stat_secs(&stat) + stat_children_secs(&stat))
        .sum()
}

/// The command name of a `/proc/PID/stat` line (between the parentheses).
fn stat_comm(stat: &str) -> Option<&str> {
    let start = stat.find('(')?;
    let end = stat.rfind(')')?;
    stat.get(start + 1..end)
}

/// The fields after the command name (which may hold spaces and parentheses),
/// starting with the state.
fn stat_fields(stat: &str) -> Vec<&str> {
    stat.rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect())
}

/// Ticks at `indexes` of the fields after the command name, in seconds (USER_HZ is
/// 100 on every Linux this runs on).
fn ticks(stat: &str, indexes: [usize; 2]) -> f64 {
    let fields = stat_fields(stat);
    let ticks: f64 = indexes
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}

/// `utime + stime`.
fn stat_secs(stat: &str) -> f64 {
    ticks(stat, [11, 12])
}

/// `cutime + cstime`.
fn stat_children_secs(stat: &str) -> f64 {
    ticks(stat, [13, 14])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_its_name_and_times() {
        let stat = "42 (post (gres)) S 1 2 3 4 5 6 7 8 9 10 250 50 30 20 20 0";
        assert_eq!(stat_comm(stat), Some("post (gres)"));
        assert_eq!(stat_secs(stat), 3.0);
        assert_eq!(stat_children_secs(stat), 0.5);
        assert_eq!(stat_secs(""), 0.0);
    }

    #[test]
    fn this_process_uses_some_cpu() {
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(50) {
            std::hint::black_box(spin.elapsed());
        }
        assert!(own_secs() > 0.0);
        assert!(process_secs(std::process::id()) > 0.0);
    }
}
