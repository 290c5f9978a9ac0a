//! Kill points for crash tests: [`point`] marks a moment right before or
//! right after an effect (a netlink request, a durable write, rename, link,
//! unlink or fsync of a state file, a change under `/run/netns` or
//! `/etc/netns`, a command started in a container). Where one effect
//! always follows another at once (a temporary's rename after its write,
//! a directory's fsync after the change it makes durable), the point
//! after the first is the moment before the second, and the second has
//! only a point after: no moment is counted twice.
//!
//! Without the cargo feature `fault-injection` a point is an empty inline
//! function: release builds carry no hook, no environment lookup, no
//! point names. With it, two environment variables, read once, drive it:
//!
//! ```text
//! IPVLAN_FAULT_COUNT=FILE   append each point's name to FILE, one line per hit
//! IPVLAN_FAULT_KILL_AT=N    SIGKILL this process at its N-th hit (1 = the first)
//! IPVLAN_FAULT_KILL_AT=NAME#K  ... at its K-th hit of the point NAME (1 = the first)
//! IPVLAN_FAULT_PAUSE_AT=NAME#K  at that hit, make IPVLAN_FAULT_PAUSE_FILE and
//!                               wait until it is removed (at most a minute)
//! ```
//!
//! A pause lets a test put another command's effect at an exact moment of
//! this one (a race made deterministic): it waits for the file, acts, and
//! removes the file.
//!
//! The second form finds the same moment of a command whatever ran before
//! it under its lock (the commit log's intent of a killed attach or
//! detach, made a record by the next lock, adds points before the
//! command's own).
//!
//! Together, FILE ends with the point the process died at. A test first runs
//! a command with `IPVLAN_FAULT_COUNT` to learn its hits, then once per hit
//! with `IPVLAN_FAULT_KILL_AT` to see what each interruption leaves.
//! The process kills itself with SIGKILL, not an exit: no destructor, no
//! buffered write, no unlock runs, exactly as when someone else kills it.

/// Environment variable naming a file to which [`report_peak_rss`] writes
/// the process's peak RSS in KiB.
pub const PEAK_RSS_ENV: &str = "IPVLAN_PEAK_RSS_FILE";

/// Environment variable naming a file to which [`report_peak_rss`] writes
/// the process's heap peak in bytes (see `sys::heap_peak`): a figure the
/// kernel's page counts do not blur.
pub const PEAK_HEAP_ENV: &str = "IPVLAN_PEAK_HEAP_FILE";

/// Environment variable naming the file hits are appended to.
pub const COUNT_ENV: &str = "IPVLAN_FAULT_COUNT";
/// Environment variable naming a file to which [`report_peak_rss`] writes,
/// at exit, every point hit with its `CLOCK_MONOTONIC` time in
/// nanoseconds (`name<TAB>ns`, one line each, the first line
/// `process: main` when the command began): a profile of one command's
/// steps, the time between two points being the effect of the second and
/// the work before it. Kept in memory until then, so the profile costs
/// the command no system call per point.
pub const TIMES_ENV: &str = "IPVLAN_FAULT_TIMES";
/// Environment variable giving the hit (1-based) to die at.
pub const KILL_AT_ENV: &str = "IPVLAN_FAULT_KILL_AT";
/// Environment variable naming the hit (`NAME#K`) to pause at.
pub const PAUSE_AT_ENV: &str = "IPVLAN_FAULT_PAUSE_AT";
/// Environment variable naming the file a pause makes, and waits to see
/// removed.
pub const PAUSE_FILE_ENV: &str = "IPVLAN_FAULT_PAUSE_FILE";

/// A kill point named `name` (a constant, so a count file of one run can
/// be compared with another's). Nothing without the `fault-injection`
/// feature.
#[inline(always)]
pub fn point(name: &'static str) {
    #[cfg(test)]
    unwind::hit(name);
    #[cfg(feature = "fault-injection")]
    hook::hit(name);
    #[cfg(not(feature = "fault-injection"))]
    let _ = name;
}

/// Environment variable naming, comma-separated, the rare paths
/// [`forced`] makes a command take: `NAME` every time, `NAME#K` at the
/// K-th time only (1 = the first), so that what follows a failure that
/// does not come again (a retry, a clean-up) is run too.
pub const FORCE_ENV: &str = "IPVLAN_FAULT_FORCE";

/// Whether a test asked for the rare path `name` to be taken (with the
/// `fault-injection` feature, `name` listed in [`FORCE_ENV`]): for
/// fallbacks the kernels tests run on never need, so they are still run.
/// Always false without the feature.
#[inline(always)]
pub fn forced(name: &'static str) -> bool {
    #[cfg(feature = "fault-injection")]
    return std::env::var(FORCE_ENV).is_ok_and(|names| forced_by(&names, name, || asked(name)));
    #[cfg(not(feature = "fault-injection"))]
    {
        let _ = name;
        false
    }
}

/// Whether [`FORCE_ENV`]'s `names` force `name`, asked for the `nth()`
/// time.
#[cfg(any(test, feature = "fault-injection"))]
fn forced_by(names: &str, name: &str, nth: impl FnOnce() -> u32) -> bool {
    let mut nth = Some(nth);
    let mut asked = None;
    names.split(',').any(|entry| match entry.split_once('#') {
        None => entry == name,
        Some((forced, k)) if forced == name => {
            let n = *asked.get_or_insert_with(|| nth.take().map_or(0, |nth| nth()));
            k.parse::<u32>().is_ok_and(|k| k == n)
        }
        Some(_) => false,
    })
}

/// How many times this process has asked whether `name` is forced, this
/// time included.
#[cfg(feature = "fault-injection")]
fn asked(name: &'static str) -> u32 {
    static ASKED: std::sync::Mutex<Vec<(&str, u32)>> = std::sync::Mutex::new(Vec::new());
    let mut asked = ASKED.lock().unwrap_or_else(|e| e.into_inner());
    match asked.iter_mut().find(|(n, _)| *n == name) {
        Some((_, count)) => {
            *count += 1;
            *count
        }
        None => {
            asked.push((name, 1));
            1
        }
    }
}

/// `Err(EIO)` when a test asked for the rare path `name` ([`forced`]):
/// the disk refusing a write or a flush, for a caller to put before the
/// call it stands for (`io_refused(..).and_then(|()| write(..))`).
#[inline(always)]
pub fn io_refused(name: &'static str) -> std::io::Result<()> {
    #[cfg(test)]
    if unwind::refused(name) {
        return Err(std::io::Error::from_raw_os_error(libc::EIO));
    }
    match forced(name) {
        true => Err(std::io::Error::from_raw_os_error(libc::EIO)),
        false => Ok(()),
    }
}

/// `value`, after a kill point named `name`: marks the moment right after
/// the effect whose result `value` is, in the expression that makes it.
#[inline(always)]
pub fn after<T>(name: &'static str, value: T) -> T {
    point(name);
    value
}

/// With the `fault-injection` feature, notes when the command began, for
/// [`TIMES_ENV`]; nothing otherwise.
pub fn note_start() {
    #[cfg(feature = "fault-injection")]
    hook::time("process: main");
}

/// With the `fault-injection` feature and [`PEAK_RSS_ENV`] set, writes this
/// process's own peak RSS (KiB: `VmHWM`, or the pages it holds at exit if
/// more, see below) to that file, with
/// [`PEAK_HEAP_ENV`] set its heap peak (bytes), and with
/// [`TIMES_ENV`] set, the points hit and their times; nothing otherwise.
/// Soak tests need it: `wait4`'s `ru_maxrss` also counts the address space
/// the child had before `exec` (a copy of whoever forked it), while `VmHWM`
/// belongs to the address space `exec` made, ipvlan's alone.
pub fn report_peak_rss() {
    #[cfg(feature = "fault-injection")]
    hook::write_times();
    #[cfg(feature = "fault-injection")]
    if let Some(path) = std::env::var_os(PEAK_RSS_ENV) {
        let kib_of = |file: &str, key: &str| {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            text.lines()
                .find_map(|line| line.strip_prefix(key))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
        };
        // Before Linux 6.2 a task's RSS counts reach the figures `status`
        // shows only every 64 page faults (and at exit): a command that
        // took fewer since reads `VmHWM: 4 kB`. The pages it holds now,
        // counted from its page tables, are a floor its peak cannot be
        // under (and, as a command frees little before it exits, near it).
        let peak = kib_of("/proc/self/status", "VmHWM:");
        let now = kib_of("/proc/self/smaps_rollup", "Rss:");
        if let Some(kib) = peak.max(now) {
            let _ = std::fs::write(path, format!("{kib}\n"));
        }
    }
    #[cfg(feature = "fault-injection")]
    if let Some(path) = std::env::var_os(PEAK_HEAP_ENV) {
        let _ = std::fs::write(path, format!("{}\n", crate::sys::heap_peak::bytes()));
    }
}

#[cfg(feature = "fault-injection")]
mod hook {
    use std::fs::OpenOptions;
    use std::io::Write;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    struct Settings {
        count: Option<PathBuf>,
        kill_at: Option<KillAt>,
        times: Option<PathBuf>,
        /// The point and hit to pause at, and the file that says so.
        pause: Option<(String, u64, PathBuf)>,
    }

    fn pause_at(value: &str) -> (String, u64, PathBuf) {
        let point = match kill_at(value) {
            KillAt::Point(name, k) => (name, k),
            KillAt::Hit(_) => panic!("{}={value:?} is not NAME#K", crate::fault::PAUSE_AT_ENV),
        };
        let file = std::env::var_os(crate::fault::PAUSE_FILE_ENV)
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| {
                panic!(
                    "{} needs {}",
                    crate::fault::PAUSE_AT_ENV,
                    crate::fault::PAUSE_FILE_ENV
                )
            });
        (point.0, point.1, PathBuf::from(file))
    }

    /// Makes `file`, then waits until someone removes it.
    fn pause(file: &std::path::Path) {
        if let Err(error) = std::fs::write(file, format!("{}\n", std::process::id())) {
            panic!("fault injection: writing {}: {error}", file.display());
        }
        for _ in 0..30_000 {
            if !file.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        panic!(
            "fault injection: {} was not removed within a minute",
            file.display()
        );
    }

    /// Where to die: the N-th hit, or the K-th hit of one point.
    #[derive(PartialEq)]
    enum KillAt {
        Hit(u64),
        Point(String, u64),
    }

    fn kill_at(value: &str) -> KillAt {
        let parsed = match value.trim().rsplit_once('#') {
            Some((name, k)) => k.parse().ok().map(|k| KillAt::Point(name.to_string(), k)),
            None => value.trim().parse().ok().map(KillAt::Hit),
        };
        parsed.unwrap_or_else(|| {
            panic!(
                "{}={value:?} is neither a hit number nor NAME#K",
                crate::fault::KILL_AT_ENV
            )
        })
    }

    /// The points hit so far and their times, for [`crate::fault::TIMES_ENV`].
    static TIMES: std::sync::Mutex<Vec<(&'static str, u64)>> = std::sync::Mutex::new(Vec::new());

    fn monotonic_ns() -> u64 {
        let now = std::time::Instant::now();
        // `Instant` is CLOCK_MONOTONIC on Linux; its offset from an epoch
        // taken at the first call is what the profile needs.
        static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();
        let epoch = *EPOCH.get_or_init(|| now);
        u64::try_from(now.duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    pub(super) fn time(name: &'static str) {
        if settings().times.is_some() {
            let at = monotonic_ns();
            TIMES
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((name, at));
        }
    }

    pub(super) fn write_times() {
        let Some(path) = &settings().times else {
            return;
        };
        time("process: exit");
        let times = TIMES.lock().unwrap_or_else(|e| e.into_inner());
        let text: String = times
            .iter()
            .map(|(name, ns)| format!("{name}\t{ns}\n"))
            .collect();
        if let Err(error) = std::fs::write(path, text) {
            panic!("fault injection: writing {}: {error}", path.display());
        }
    }

    fn settings() -> &'static Settings {
        static SETTINGS: OnceLock<Settings> = OnceLock::new();
        SETTINGS.get_or_init(|| Settings {
            count: std::env::var_os(crate::fault::COUNT_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            // An unparsable value must not silently disable the kill a
            // test relies on.
            kill_at: std::env::var(crate::fault::KILL_AT_ENV)
                .ok()
                .filter(|v| !v.is_empty())
                .map(|v| kill_at(&v)),
            times: std::env::var_os(crate::fault::TIMES_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            pause: std::env::var(crate::fault::PAUSE_AT_ENV)
                .ok()
                .filter(|v| !v.is_empty())
                .map(|v| pause_at(&v)),
        })
    }

    pub(super) fn hit(name: &'static str) {
        static HITS: AtomicU64 = AtomicU64::new(0);
        time(name);
        let settings = settings();
        if let Some((point, k, file)) = &settings.pause {
            static OF_PAUSED_POINT: AtomicU64 = AtomicU64::new(0);
            if point == name && OF_PAUSED_POINT.fetch_add(1, Ordering::SeqCst) + 1 == *k {
                pause(file);
            }
        }
        if settings.count.is_none() && settings.kill_at.is_none() {
            return;
        }
        // One hit at a time: with two threads (a batch's link thread), a
        // kill at hit N must find the lines of hits 1 to N-1 written. Which
        // thread's point is hit N may differ from one run to the next, and
        // the other thread may still finish the system call it is in: a
        // walk of kills then reaches the same points in another order,
        // each a moment the batch could be killed at.
        static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _alone = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = HITS.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(path) = &settings.count {
            // One `write` on an O_APPEND file: a line is whole even when
            // the kill follows at once.
            let line = format!("{name}\n");
            let written = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut file| file.write_all(line.as_bytes()));
            if let Err(error) = written {
                panic!("fault injection: writing {}: {error}", path.display());
            }
        }
        static OF_POINT: AtomicU64 = AtomicU64::new(0);
        let die = match &settings.kill_at {
            Some(KillAt::Hit(at)) => *at == n,
            Some(KillAt::Point(point, k)) if point == name => {
                OF_POINT.fetch_add(1, Ordering::SeqCst) + 1 == *k
            }
            _ => false,
        };
        if die {
            let _ = crate::sys::kill(std::process::id(), libc::SIGKILL);
            // SIGKILL to oneself ends the process on the way back to user
            // space; nothing after this point may run meanwhile on this
            // thread (another may finish the system call it is in).
            loop {
                std::thread::park();
            }
        }
    }
}

/// In the crate's unit tests: the thread's next hit of a point named so
/// panics, for a test that catches the unwind to see what a command killed
/// there leaves on the disk (its drops run, unlike a kill's: a test of
/// the lock file's pages, which no drop writes, is what it serves); and
/// the thread's next [`io_refused`] of a name fails, as the disk would.
#[cfg(test)]
pub(crate) mod unwind {
    use std::cell::Cell;

    /// What [`then`] arms: a point's name and what runs there.
    type Then = Option<(&'static str, Box<dyn FnOnce()>)>;

    thread_local! {
        static AT: Cell<Option<&'static str>> = const { Cell::new(None) };
        static REFUSE: Cell<Option<&'static str>> = const { Cell::new(None) };
        static THEN: std::cell::RefCell<Then> = const { std::cell::RefCell::new(None) };
    }

    /// Runs `act` at the thread's next hit of `name`, which then goes on:
    /// another process's change put at that exact moment.
    pub(crate) fn then(name: &'static str, act: impl FnOnce() + 'static) {
        THEN.with(|then| *then.borrow_mut() = Some((name, Box::new(act))));
    }

    /// Arms the thread's next [`super::io_refused`] of `name`.
    pub(crate) fn refuse(name: &'static str) {
        REFUSE.with(|refuse| refuse.set(Some(name)));
    }

    /// Whether the thread's [`refuse`] of `name` is armed (no
    /// [`super::io_refused`] of it came since); disarms it.
    pub(crate) fn refused(name: &'static str) -> bool {
        REFUSE.with(|refuse| refuse.get() == Some(name) && refuse.replace(None).is_some())
    }

    /// Panics unless `caught` (what `catch_unwind` gave back) is the
    /// unwinding [`at`] armed for `name`: another panic (an `unwrap`
    /// failing before the point, an assertion) is not the kill a test
    /// meant, and is resumed as it was.
    pub(crate) fn assert_unwound_at<T: std::fmt::Debug>(
        caught: std::thread::Result<T>,
        name: &str,
    ) {
        let payload = match caught {
            Ok(value) => panic!("not unwound at {name}: returned {value:?}"),
            Err(payload) => payload,
        };
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied());
        if message != Some(format!("unwound at {name}").as_str()) {
            std::panic::resume_unwind(payload);
        }
    }

    /// Arms the thread's next hit of `name`.
    pub(crate) fn at(name: &'static str) {
        AT.with(|at| at.set(Some(name)));
    }

    pub(super) fn hit(name: &'static str) {
        let armed = THEN.with(|then| {
            let mut then = then.borrow_mut();
            match then.as_ref() {
                Some((at, _)) if *at == name => then.take(),
                _ => None,
            }
        });
        if let Some((_, act)) = armed {
            act();
        }
        if AT.with(|at| at.get() == Some(name)) {
            AT.with(|at| at.set(None));
            panic!("unwound at {name}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::forced_by;

    /// `NAME` forces every time; `NAME#K` the K-th time alone; other
    /// names nothing, and their entries count no time of `NAME`.
    #[test]
    fn a_forced_path_is_taken_every_time_or_at_its_count() {
        // Three asks of `name`: the answers, and how many of them were
        // counted (the counter is read only where a `NAME#K` entry of the
        // name is reached).
        let times = |names: &str, name: &str| -> (Vec<bool>, u32) {
            let counted = std::cell::Cell::new(0);
            let answers = (1..=3)
                .map(|_| {
                    forced_by(names, name, || {
                        counted.set(counted.get() + 1);
                        counted.get()
                    })
                })
                .collect();
            (answers, counted.get())
        };
        assert_eq!(times("a,b", "a"), (vec![true; 3], 0));
        assert_eq!(times("a#2", "a"), (vec![false, true, false], 3));
        assert_eq!(times("b#1,a#3", "a"), (vec![false, false, true], 3));
        assert_eq!(times("ab#1,a", "a"), (vec![true; 3], 0));
        assert_eq!(times("b#1", "a"), (vec![false; 3], 0));
        assert_eq!(times("a#x", "a"), (vec![false; 3], 3));
    }
}
