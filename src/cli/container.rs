//! `ipvlan run|exec|rm|ps`.

use crate::driver::{
    self, AttachRequest, ContainerInfo, ErrorKind, ExecOptions, Manager, RunRequest,
};

use super::command::{ExecArgs, RunArgs};
use super::{output, warn, Failure, EXIT_CANNOT_RUN, EXIT_FAILED, EXIT_NOT_FOUND, EXIT_OK};

/// Creates the container attached to its network (one driver call: all
/// of it or nothing), then runs its command in the foreground (exit code:
/// the command's) or in the background (`-d`). A container this call
/// created is removed again when its command could not be started, or
/// when a signal (a supervisor's `SIGTERM`, a Ctrl-C) came while it was
/// made: the signals are held once the store's lock is, so that none ends
/// this process half-way through making the container, and one that came
/// meanwhile stops the run there (exit 128 + its number), the container
/// taken out again, nothing started.
pub fn run(manager: &Manager, args: RunArgs) -> Result<i32, Failure> {
    for warning in &args.warnings {
        super::failure::warn(warning);
    }
    // `--ip`/`--ip6` come with one network only (see `command::run`).
    let addresses = AttachRequest {
        ipv4: args.ipv4,
        ipv6: args.ipv6,
    };
    let request = RunRequest {
        name: args.name.clone(),
        networks: args
            .networks
            .iter()
            .map(|network| (network.clone(), addresses))
            .collect(),
    };
    let signals = crate::sys::forwarded_signals();
    // Blocked in this thread once the store's lock is held (a signal
    // still ends a run that waits for it), before anything is made and
    // any thread starts (they inherit the mask). A failure to make the
    // container ends the block with a drop: a signal that came meanwhile
    // then takes its default action, with nothing of the container left.
    let mut held = None;
    let container = manager
        .run_container_once_locked(&request, &mut || {
            held = crate::sys::SignalBlock::new(&signals).ok();
        })
        .map_err(|error| Failure::driver("run", &error))?;
    let name = container.name.clone();
    // Ended on the way out (not dropped): the signals still pending of
    // the block are taken, so that none ends this process before the
    // caller prints why `run` stopped.
    if let Ok(Some(signal)) = crate::sys::take_pending(&signals) {
        let removed = discard(manager, &container);
        if let Some(held) = held {
            held.end();
        }
        return Err(stopped_before_start(signal, &name, removed));
    }
    if args.detach {
        if !args.command.is_empty() {
            if let Err(error) = manager.spawn_detached_in_made_container(&container, &args.command)
            {
                let program = args.command[0].to_string_lossy();
                let failure = spawn_failure(&name, &program, &error);
                discard(manager, &container);
                if let Some(held) = held {
                    held.end();
                }
                return Err(failure);
            }
        }
        outln!("{name}");
        // A signal that came meanwhile now takes its default action: the
        // container and its command are whole.
        drop(held);
        return Ok(EXIT_OK);
    }
    let options = ExecOptions {
        interactive: args.interactive,
        tty: args.tty,
        forward_signals: true,
    };
    // The forwarding wait passes on what comes once the command runs
    // (see `sys::Running::wait`, which takes the held signals).
    let status = manager.exec_in_made_container(&container, &args.argv(), &options);
    // A command that never started leaves no container behind, as `-d`;
    // one whose status was lost (its keeper killed) may still run: its
    // container stays, unless `--rm` asked for it to go.
    let lost = status
        .as_ref()
        .is_err_and(|error| error.kind() == ErrorKind::StatusLost);
    let removed = (args.remove || (status.is_err() && !lost)).then(|| discard(manager, &container));
    // What came once the command had ended waits (blocked) until the
    // container is removed, then is dropped: the command it was meant for
    // is gone, and ending here would leave the container behind, or lose
    // the command's status.
    if let Some(held) = held {
        held.end();
    }
    status.map_err(|error| {
        if let ErrorKind::StoppedBeforeStart(signal) = error.kind() {
            return stopped_before_start(signal, &name, removed == Some(true));
        }
        exec_failure(&error).unwrap_or_else(|| match lost && !args.remove {
            true => Failure::driver(
                format_args!("run: {name} stays, its command may still run (`ipvlan rm -f {name}` removes it)"),
                &error,
            ),
            false => Failure::driver(format_args!("run: running the command in {name}"), &error),
        })
    })
}

/// `run` stopped by `signal` before its command started, the container
/// `name` it made for it removed: 128 + the signal's number.
fn stopped_before_start(signal: i32, name: &str, removed: bool) -> Failure {
    let container = match removed {
        true => format!("{name} was removed"),
        // Why is said above, by `discard`.
        false => format!("{name} could not be removed (`ipvlan rm -f {name}` removes it)"),
    };
    Failure::not_started(
        128 + signal,
        format!("run: stopped by signal {signal} before its command started; {container}"),
    )
}

/// A foreground command that could not be started, as `docker exec`
/// reports it: 127 not found, 126 cannot be run; `None` for other errors.
fn exec_failure(error: &driver::Error) -> Option<Failure> {
    let code = match error.kind() {
        ErrorKind::CommandNotFound => EXIT_NOT_FOUND,
        ErrorKind::CommandNotExecutable => EXIT_CANNOT_RUN,
        _ => return None,
    };
    Some(Failure::not_started(
        code,
        format!("exec {}", error.message()),
    ))
}

/// A failed background start: 127 when the command is not found, 126 when
/// it cannot be run (as `exec` reports them), 125 for anything else.
fn spawn_failure(container: &str, program: &str, error: &driver::Error) -> Failure {
    match error.kind() {
        ErrorKind::CommandNotFound => Failure::command(EXIT_NOT_FOUND, "run", error.message()),
        ErrorKind::CommandNotExecutable => {
            Failure::command(EXIT_CANNOT_RUN, "run", error.message())
        }
        _ => Failure::driver(
            format_args!("run: starting {program} in {container}"),
            error,
        ),
    }
}

/// Removes the container this run made after a failure or at the end of
/// `run --rm` (not another one given its name meanwhile), reporting (not
/// returning) a failure to do so; whether it went.
fn discard(manager: &Manager, container: &ContainerInfo) -> bool {
    let name = &container.name;
    match manager.remove_made_container(container, true) {
        Ok(notes) => {
            for note in notes {
                warn(note);
            }
            true
        }
        Err(error) => {
            eprintln!(
                "{}",
                Failure::driver(format_args!("run: removing {name}"), &error)
            );
            false
        }
    }
}

pub fn exec(manager: &Manager, args: ExecArgs) -> Result<i32, Failure> {
    let options = ExecOptions {
        interactive: args.interactive,
        tty: args.tty,
        forward_signals: true,
    };
    let error = match manager.exec(&args.container, &args.command, &options) {
        Ok(code) => return Ok(code),
        Err(error) => error,
    };
    match error.kind() {
        // As a command that ended of it, which it would have just after.
        ErrorKind::StoppedBeforeStart(signal) => Ok(128 + signal),
        _ => Err(exec_failure(&error)
            .unwrap_or_else(|| Failure::driver(format_args!("exec {}", args.container), &error))),
    }
}

/// Removes each container in turn; the failures are reported and make the
/// exit code 1. With `force`, a name that is no container of ours is
/// reported and is no failure, as `docker rm -f` (since 20.10) and `rm -f`
/// have it.
pub fn remove(manager: &Manager, force: bool, names: &[String]) -> Result<i32, Failure> {
    let mut code = EXIT_OK;
    for name in names {
        match manager.remove_container(name, force) {
            Ok(notes) => {
                for note in notes {
                    warn(note);
                }
                outln!("{name}");
            }
            Err(error) => {
                eprintln!("{}", Failure::driver(format_args!("rm {name}"), &error));
                if !(force && driver::is_no_such_container(&error, name)) {
                    code = EXIT_FAILED;
                }
            }
        }
    }
    Ok(code)
}

/// Lists what can be read; damaged records are warnings and the exit
/// code stays 0, as for `network ls`.
pub fn ps(manager: &Manager, quiet: bool) -> Result<i32, Failure> {
    let list = manager
        .container_list()
        .map_err(|error| Failure::driver("ps", &error))?;
    let containers = list.containers;
    // Not listed, as no other command accepts them; but not hidden either,
    // since their names are taken until restore undoes or finishes them.
    // Named only when no command is at them (see `container_list`).
    for (names, what) in [
        (
            &list.half_made,
            "is half made: its `run` was interrupted (`ipvlan restore` rolls it back)",
        ),
        (
            &list.half_removed,
            "is half removed: its `rm` was interrupted (`ipvlan restore` finishes it)",
        ),
    ] {
        for name in names {
            super::warn(format_args!("container {name} {what}"));
        }
    }
    if quiet {
        for container in &containers {
            outln!("{}", container.name);
        }
    } else {
        out!("{}", output::container_table(&containers));
    }
    super::network::warn_damaged(&containers.damaged);
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_start_failures_map_to_docker_codes() {
        let io = std::io::Error::from_raw_os_error;
        let not_found = driver::Error::spawn("nope", &io(libc::ENOENT));
        let failure = spawn_failure("c1", "nope", &not_found);
        assert_eq!(failure.exit_code(), EXIT_NOT_FOUND);
        assert_eq!(
            failure.to_string(),
            "ipvlan: run: nope: executable file not found"
        );

        // EACCES from execve: the file, not our privileges.
        let denied = driver::Error::spawn("/etc/passwd", &io(libc::EACCES));
        assert!(!denied.needs_root());
        let failure = spawn_failure("c1", "/etc/passwd", &denied);
        assert_eq!(failure.exit_code(), EXIT_CANNOT_RUN);
        assert_eq!(
            failure.to_string(),
            "ipvlan: run: /etc/passwd: Permission denied"
        );

        // A log file that cannot be opened, or a fork that fails, is ours.
        let log = driver::Error::os("opening /var/lib/ipvlan/logs/c1.log: gone", libc::ENOENT);
        let failure = spawn_failure("c1", "sleep", &log);
        assert_eq!(failure.exit_code_for(super::super::help::Topic::Run), 125);
        let fork = driver::Error::spawn("sleep", &io(libc::EAGAIN));
        let failure = spawn_failure("c1", "sleep", &fork);
        assert_eq!(failure.exit_code_for(super::super::help::Topic::Run), 125);
    }
}
