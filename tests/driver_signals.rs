//! Signal dispositions around the library's `exec` and `spawn_detached`,
//! on any Linux host (a container with no network). A binary of its own:
//! dispositions are the process's, so no other test may run beside these
//! (the driver's host tests would change them under this one's checks).

mod common;

use std::ffi::OsString;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ipvlan::driver::{Config, Manager};
use ipvlan::netns;

static HITS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count(_: libc::c_int) {
    HITS.fetch_add(1, Ordering::Relaxed);
}

fn handler_of_count() -> libc::sighandler_t {
    count as extern "C" fn(libc::c_int) as libc::sighandler_t
}

extern "C" fn reap_all(_: libc::c_int) {
    let mut status = 0;
    // SAFETY: waitpid with WNOHANG into a live int, async-signal-safe.
    while unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } > 0 {}
}

fn handler_of_reap_all() -> libc::sighandler_t {
    reap_all as extern "C" fn(libc::c_int) as libc::sighandler_t
}

/// Runs the delegated IPAM plugin at `plugin` for an ADD, which must
/// succeed (`what` says how it was run).
fn run_plugin(plugin: &Path, what: &str) {
    let delegated = ipvlan::cni::delegate::run(
        plugin,
        ipvlan::cni::env::Command::Add,
        &[],
        b"{}",
        Duration::from_secs(10),
    );
    assert!(
        delegated.is_ok(),
        "{what}: {:?}",
        delegated.err().map(|e| e.to_string())
    );
}

/// Sets its flag when dropped.
struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A reaper thread of the caller's: every child of the process that ends
/// is waited for here, until `stop`. It blocks every signal, as such a
/// thread does, so that a signal meant for the process is not its.
fn reap_every_child_until(stop: &std::sync::atomic::AtomicBool) {
    // SAFETY: sigset_t is plain old data, made full by sigfillset; both
    // are live for the calls.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
    }
    while !stop.load(Ordering::Relaxed) {
        let mut status = 0;
        // SAFETY: waitpid into a live int.
        if unsafe { libc::waitpid(-1, &mut status, 0) } == -1 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Sets `signal`'s handler (a function, `SIG_IGN`, `SIG_DFL`).
fn set_handler(signal: libc::c_int, handler: libc::sighandler_t) {
    // SAFETY: sigaction is plain old data; all-zero is a valid value.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler;
    // SAFETY: `action` is a live sigaction for the call.
    assert_eq!(
        unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) },
        0
    );
}

/// `signal`'s handler now.
fn handler(signal: libc::c_int) -> libc::sighandler_t {
    // SAFETY: sigaction is plain old data, filled in by the kernel.
    let mut now: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only reads; `now` is live for the call.
    assert_eq!(
        unsafe { libc::sigaction(signal, std::ptr::null(), &mut now) },
        0
    );
    now.sa_sigaction
}

fn argv(words: &[&str]) -> Vec<OsString> {
    words.iter().map(OsString::from).collect()
}

/// The `SigIgn:` mask a command wrote to `path` (`grep SigIgn
/// /proc/self/status > path`), once it is there (at most 10 s).
fn ignored_mask(path: &Path) -> u64 {
    for _ in 0..1000 {
        if let Ok(text) = fs::read_to_string(path) {
            if let Some(hex) = text.trim().strip_prefix("SigIgn:") {
                return u64::from_str_radix(hex.trim(), 16).unwrap();
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{} never written", path.display());
}

fn bit(signal: libc::c_int) -> u64 {
    1 << (signal - 1)
}

/// Two `exec`s at once (as the threads of a runtime make them) share one
/// change of the process's dispositions: `SIGINT` and `SIGQUIT` at their
/// default do nothing to it while either waits (as `system(3)` has it),
/// a handler of the caller's (here `SIGINT`'s, and `SIGCHLD`'s) left as it is, and everything as before once the last one is
/// done; each command gets the dispositions from before the first, and
/// so does a program another thread of the caller's starts meanwhile
/// (before, `SIGINT` and `SIGQUIT` were `SIG_IGN`, which such a program
/// kept for good: an init's services could not be interrupted). Before, the second
/// saved the first's change and put it back last: `SIGINT` stayed
/// ignored and `SIGCHLD` at its default for good, and the second command
/// started with `SIGINT` and `SIGQUIT` ignored. And with `SIGCHLD`
/// ignored by the caller (the kernel then reaps its children), `exec`
/// still reports its command's status, and neither its command nor one
/// `spawn_detached` starts inherits the ignored `SIGCHLD` (before, the
/// detached one did). A command `spawn_detached` starts while a wait
/// ignores `SIGINT` and `SIGQUIT` gets them at their default. The
/// caller's other children that end while `exec` waits are reaped (once
/// `exec` set an ignored `SIGCHLD` to its default while it waited: they
/// were zombies for good, until it reaped them itself; now `exec` leaves
/// `SIGCHLD` alone), a delegated CNI plugin's status is read with
/// `SIGCHLD` ignored (before, `ECHILD`), and a caller that reaps every
/// child of its process gets each command's status and each plugin's
/// output (before, `ECHILD`).
#[test]
fn waits_share_one_change_of_the_dispositions_and_commands_start_with_theirs() {
    common::privilege::require_root();
    let dir = common::TempDir::new("driver-signals");
    let config = Config {
        state_dir: dir.path().join("state"),
        netns_dir: dir.path().join("netns"),
        etc_netns_dir: dir.path().join("etc-netns"),
    };
    let probe = dir.path().join("second");
    let detached_probe = dir.path().join("detached");
    let exec_probe = dir.path().join("exec");
    let during = dir.path().join("during");
    netns::run_in_new(|| {
        let manager = Manager::open(config.clone()).unwrap();
        manager.create_container(Some("web")).unwrap();
        set_handler(libc::SIGINT, handler_of_count());
        set_handler(libc::SIGCHLD, handler_of_count());

        std::thread::scope(|scope| {
            let first = scope.spawn(|| {
                let manager = Manager::open(config.clone()).unwrap();
                manager.exec("web", &argv(&["sleep", "1.5"]), &Default::default())
            });
            std::thread::sleep(Duration::from_millis(300));
            let script = format!(
                "grep SigIgn /proc/self/status > {}; sleep 1.5",
                probe.display()
            );
            let config = &config;
            let second = scope.spawn(move || {
                let manager = Manager::open(config.clone()).unwrap();
                manager.exec("web", &argv(&["sh", "-c", &script]), &Default::default())
            });
            std::thread::sleep(Duration::from_millis(600));
            // A command started detached while they wait gets the
            // caller's dispositions too (before: SIGINT and SIGQUIT
            // ignored for its whole life).
            let script = format!("grep SigIgn /proc/self/status > {}", during.display());
            manager
                .spawn_detached("web", &argv(&["sh", "-c", &script]))
                .unwrap();
            let mask = ignored_mask(&during);
            assert_eq!(
                mask & (bit(libc::SIGINT) | bit(libc::SIGQUIT)),
                0,
                "a detached command's SIGINT and SIGQUIT at their default: {mask:#x}"
            );
            assert_eq!(
                handler(libc::SIGCHLD),
                handler_of_count(),
                "a SIGCHLD handler is left as it is while the commands run"
            );
            // The caller's own SIGINT handler stays in place and gets
            // what comes (an init's Ctrl-Alt-Del); SIGQUIT, at its
            // default, which would end the process, is caught by the
            // library's.
            assert_eq!(
                handler(libc::SIGINT),
                handler_of_count(),
                "the caller's SIGINT handler left in place meanwhile"
            );
            let swallowing = handler(libc::SIGQUIT);
            assert!(
                swallowing != libc::SIG_IGN
                    && swallowing != libc::SIG_DFL
                    && swallowing != handler_of_count(),
                "SIGQUIT caught by a handler of the library's meanwhile"
            );
            // Sent to the process meanwhile: nothing happens to it (at its
            // default, SIGQUIT would end it).
            // SAFETY: kill(2) to this process.
            assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGQUIT) }, 0);
            // A program the caller starts itself meanwhile, from a thread
            // of its own: its SIGINT and SIGQUIT at their default.
            let own = std::process::Command::new("grep")
                .args(["SigIgn", "/proc/self/status"])
                .output()
                .unwrap();
            let text = String::from_utf8(own.stdout).unwrap();
            let mask = u64::from_str_radix(text.trim().trim_start_matches("SigIgn:").trim(), 16)
                .unwrap();
            assert_eq!(
                mask & (bit(libc::SIGINT) | bit(libc::SIGQUIT)),
                0,
                "a program the caller starts meanwhile: SIGINT and SIGQUIT at their default: {mask:#x}"
            );
            assert_eq!(first.join().unwrap().unwrap(), 0);
            assert_eq!(second.join().unwrap().unwrap(), 0);
        });
        assert_eq!(
            handler(libc::SIGINT),
            handler_of_count(),
            "SIGINT as before"
        );
        assert_eq!(handler(libc::SIGQUIT), libc::SIG_DFL, "SIGQUIT as before");
        assert_eq!(
            handler(libc::SIGCHLD),
            handler_of_count(),
            "SIGCHLD as before"
        );
        let second = ignored_mask(&probe);
        assert_eq!(
            second & (bit(libc::SIGINT) | bit(libc::SIGQUIT)),
            0,
            "the second command's SIGINT and SIGQUIT at their default: {second:#x}"
        );

        set_handler(libc::SIGCHLD, libc::SIG_IGN);
        // Another child of the caller's, which ends while the command
        // runs: reaped, as the kernel does for a process that ignores
        // SIGCHLD. Before `exec` set it to its default meanwhile, a zombie
        // for good.
        let other = std::process::Command::new("sleep")
            .arg("0.2")
            .spawn()
            .unwrap()
            .id();
        let script = format!(
            "grep SigIgn /proc/self/status > {}; sleep 1; exit 3",
            exec_probe.display()
        );
        assert_eq!(
            manager
                .exec("web", &argv(&["sh", "-c", &script]), &Default::default())
                .unwrap(),
            3,
            "the status of a command whose SIGCHLD the caller ignores"
        );
        assert_eq!(
            handler(libc::SIGCHLD),
            libc::SIG_IGN,
            "SIGCHLD ignored again"
        );
        let state = fs::read_to_string(format!("/proc/{other}/stat"))
            .map(|stat| stat.rsplit(')').next().unwrap_or("").trim().to_string());
        assert!(
            state.is_err(),
            "the caller's other child, ended meanwhile, is reaped: {state:?}"
        );
        let script = format!(
            "grep SigIgn /proc/self/status > {}",
            detached_probe.display()
        );
        manager
            .spawn_detached("web", &argv(&["sh", "-c", &script]))
            .unwrap();
        for (what, path) in [("exec", &exec_probe), ("spawn_detached", &detached_probe)] {
            let mask = ignored_mask(path);
            assert_eq!(
                mask & bit(libc::SIGCHLD),
                0,
                "{what}: SIGCHLD at its default in the command: {mask:#x}"
            );
        }
        // A delegated CNI IPAM plugin run by a process that ignores
        // SIGCHLD (a runtime's, an init's, passed on across `execve`):
        // its output is read. Before: "No child processes".
        let plugin = dir.path().join("fake-ipam");
        fs::write(
            &plugin,
            "#!/bin/sh\necho '{\"cniVersion\":\"1.0.0\",\"ips\":[]}'\n",
        )
        .unwrap();
        fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        run_plugin(&plugin, "a plugin run while SIGCHLD is ignored");
        assert_eq!(
            handler(libc::SIGCHLD),
            libc::SIG_IGN,
            "SIGCHLD ignored again after the plugin"
        );
        set_handler(libc::SIGCHLD, libc::SIG_DFL);
        set_handler(libc::SIGINT, libc::SIG_DFL);

        // A caller that reaps every child of its process that ends, as an
        // init or a runtime's shim does: a `SIGCHLD` handler that calls
        // `waitpid(-1, WNOHANG)` until none is left, and a thread blocked
        // in `waitpid(-1)`. Each command's status still comes back, with
        // and without its signals passed on. Before, the reapers took the
        // command first: `exec` failed with "No child processes".
        set_handler(libc::SIGCHLD, handler_of_reap_all());
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| reap_every_child_until(&stop));
            // Stopped however this ends (a failed assertion included),
            // or the scope would wait for it for ever.
            let _stop = StopOnDrop(&stop);
            for forward_signals in [false, true] {
                let options = ipvlan::driver::ExecOptions {
                    forward_signals,
                    ..Default::default()
                };
                for code in 1..=5 {
                    let script = format!("sleep 0.{code}; exit {code}");
                    let status = manager.exec("web", &argv(&["sh", "-c", &script]), &options);
                    assert_eq!(
                        status.as_ref().map_err(ToString::to_string),
                        Ok(&code),
                        "exec (signals passed on: {forward_signals}) under a caller that reaps every child"
                    );
                }
            }
            // And a delegated CNI plugin's output is read. Before:
            // "running IPAM plugin fake-ipam: No child processes".
            for _ in 0..5 {
                run_plugin(&plugin, "a plugin run under a caller that reaps every child");
            }
        });
        set_handler(libc::SIGCHLD, libc::SIG_DFL);

        manager.remove_container("web", true).unwrap();
        let released = netns::release_run_dir(&config.netns_dir);
        released.expect("releasing the run dir mount");
    })
    .expect("creating a network namespace");
}
