//! The `ipvlan` command line: docker-style parsing, then one call into the
//! [`crate::driver`] per command, then output.
//!
//! Exit codes: 0 success, 1 an operation failed (invalid values included),
//! 2 a usage error. `run` and `exec` exit with the command's status, or 125
//! when ipvlan itself failed (usage errors included, as `docker run` does, so
//! that they cannot be mistaken for the command's own 1 or 2), 126 when the
//! command cannot be run and 127 when it is not found.

/// Writes to stdout like `print!`, ignoring a closed pipe
/// (`ipvlan network ls | head -1`) instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!($($arg)*))
    };
}

/// [`out!`] with a newline.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub mod args;
pub mod command;
mod container;
mod failure;
pub mod help;
mod network;
pub mod output;
mod system;
pub mod values;

use std::fmt;

use crate::driver::{Config, Manager};
use command::{Command, Invocation};
use failure::warn;
pub use failure::{
    Failure, EXIT_CANNOT_RUN, EXIT_FAILED, EXIT_NOT_FOUND, EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE,
};
use help::Topic;

/// Entry point of the binary with the process's arguments from
/// `std::env::args_os`; returns the process exit code. As
/// [`main_args`], for a process that exits next.
pub fn main() -> i32 {
    main_args(std::env::args_os().collect())
}

/// Entry point of the binary: `args` are the process's arguments, the
/// program's name first; returns the process exit code. The state
/// directory's descriptors are left open for the process's exit to close:
/// call it only when the process exits next ([`run`] otherwise).
pub fn main_args(args: Vec<std::ffi::OsString>) -> i32 {
    // Any bytes: a command's arguments and a namespace's path need not be
    // UTF-8 (the parser refuses what must be text, by its command's rules).
    let invocation = match parse_or_report(args.get(1..).unwrap_or_default()) {
        Ok(invocation) => invocation,
        Err(code) => return code,
    };
    // The command holds its own copies of the operands (a batch's thousand
    // namespaces): the command line is not kept beside them.
    drop(args);
    execute_and_report(invocation, true)
}

/// Parses and executes one command line (the arguments after the program
/// name); prints results on stdout, errors on stderr; returns the exit code.
pub fn run<A: AsRef<std::ffi::OsStr>>(argv: &[A]) -> i32 {
    match parse_or_report(argv) {
        Ok(invocation) => execute_and_report(invocation, false),
        Err(code) => code,
    }
}

/// The command line parsed; a refusal is printed and its exit code returned.
fn parse_or_report<A: AsRef<std::ffi::OsStr>>(argv: &[A]) -> Result<command::Invocation, i32> {
    command::parse(argv).map_err(|error| {
        let failure = Failure::from(error);
        eprintln!("{failure}");
        // A global option refused before `run` or `exec`: their 125.
        match command::named_command(argv) {
            Some(topic) if topic.runs_a_command() => failure.exit_code_for(topic),
            _ => failure.exit_code(),
        }
    })
}

/// Runs the command; a failure is printed and its exit code returned.
fn execute_and_report(invocation: command::Invocation, leave_to_exit: bool) -> i32 {
    let topic = topic_of(&invocation.command);
    match execute(invocation, leave_to_exit) {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("{failure}");
            failure.exit_code_for(topic)
        }
    }
}

#[doc(hidden)]
pub fn write_stdout(text: fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    // What was done is done; a reader that went away changes nothing about it.
    let _ = stdout.write_fmt(text).and_then(|()| stdout.flush());
}

/// The command whose help and exit codes apply to `command`.
fn topic_of(command: &Command) -> Topic {
    match command {
        Command::Help(topic) => *topic,
        Command::Version { .. } => Topic::Version,
        Command::NetworkCreate(_) => Topic::NetworkCreate,
        Command::NetworkRemove { .. } => Topic::NetworkRemove,
        Command::NetworkList { .. } => Topic::NetworkList,
        Command::NetworkInspect { .. } => Topic::NetworkInspect,
        Command::NetworkConnect(_) => Topic::NetworkConnect,
        Command::NetworkDisconnect { .. } => Topic::NetworkDisconnect,
        Command::Run(_) => Topic::Run,
        Command::Exec(_) => Topic::Exec,
        Command::Remove { .. } => Topic::Remove,
        Command::Ps { .. } => Topic::Ps,
        Command::Restore => Topic::Restore,
        Command::Doctor => Topic::Doctor,
    }
}

/// Whether `command` changes the kernel or the state, and so needs
/// CAP_NET_ADMIN (`exec` enters a namespace, which needs root as well).
fn needs_root(command: &Command) -> bool {
    matches!(
        command,
        Command::NetworkCreate(_) | Command::NetworkRemove { .. }
    ) || enters_namespaces(command)
}

/// Whether `command` enters network namespaces or mounts (CAP_SYS_ADMIN):
/// refused at once without it, not when the first `setns` or `mount`
/// fails after links were made.
fn enters_namespaces(command: &Command) -> bool {
    matches!(
        command,
        Command::NetworkConnect(_)
            | Command::NetworkDisconnect { .. }
            | Command::Run(_)
            | Command::Exec(_)
            | Command::Remove { .. }
            | Command::Restore
    )
}

/// The directories from `--state-dir` and the environment, absolute; an
/// environment variable that is set but empty is refused.
fn config(invocation: &Invocation) -> Result<Config, Failure> {
    let flag = invocation.state_dir.as_ref();
    // The flag overrides IPVLAN_STATE_DIR, so that one is not looked at.
    let config = Config::from_vars(|name| match name {
        crate::driver::STATE_DIR_ENV if flag.is_some() => None,
        _ => std::env::var_os(name),
    })
    .and_then(|mut config| {
        if let Some(state_dir) = flag {
            config.state_dir = state_dir.clone();
        }
        config.absolute()
    });
    config.map_err(|error| Failure::driver("ipvlan", &error))
}

fn open(config: Config) -> Result<Manager, Failure> {
    let state_dir = config.state_dir.clone();
    Manager::open(config).map_err(|error| {
        Failure::driver(
            format_args!("opening state directory {}", state_dir.display()),
            &error,
        )
    })
}

fn execute(invocation: Invocation, leave_to_exit: bool) -> Result<i32, Failure> {
    let topic = topic_of(&invocation.command);
    let config = match invocation.command {
        // Help and version read nothing, so a bad environment is no reason
        // to refuse them.
        Command::Help(_) | Command::Version { .. } => Config::from_env(),
        _ => config(&invocation)?,
    };
    if needs_root(&invocation.command) {
        // One `capget` for both.
        let (net_admin, sys_admin) = crate::driver::held_capabilities();
        if !net_admin {
            return Err(Failure::failed(
                topic.path(),
                "this command needs root (CAP_NET_ADMIN)",
            ));
        }
        if enters_namespaces(&invocation.command) && !sys_admin {
            return Err(Failure::failed(
                topic.path(),
                "this command needs root (CAP_SYS_ADMIN, beside CAP_NET_ADMIN: it enters network namespaces and mounts)",
            ));
        }
    }
    let mut manager = match invocation.command {
        Command::Help(topic) => {
            out!("{}", help::usage(topic));
            return Ok(EXIT_OK);
        }
        Command::Version { brief } => {
            out!("{}", system::version_text(brief));
            return Ok(EXIT_OK);
        }
        Command::Doctor => return system::doctor(&config),
        _ => open(config)?,
    };
    if leave_to_exit {
        manager.leave_descriptors_to_exit();
    }
    let result = match invocation.command {
        Command::Help(_) | Command::Version { .. } | Command::Doctor => Ok(EXIT_OK),
        Command::Restore => system::restore(&manager),
        Command::NetworkCreate(args) => network::create(&manager, args),
        Command::NetworkRemove { names, force } => network::remove(&manager, &names, force),
        Command::NetworkList {
            quiet,
            no_trunc,
            filters,
        } => network::list(&manager, quiet, no_trunc, &filters),
        Command::NetworkInspect { names } => network::inspect(&manager, &names),
        Command::NetworkConnect(args) => network::connect(&manager, args),
        Command::NetworkDisconnect { network, targets } => {
            network::disconnect(&manager, &network, targets)
        }
        Command::Run(args) => container::run(&manager, args),
        Command::Exec(args) => container::exec(&manager, args),
        Command::Remove { force, names } => container::remove(&manager, force, &names),
        Command::Ps { quiet } => container::ps(&manager, quiet),
    };
    // A change whose commit failed unseen must not exit 0.
    let result = match (result, manager.take_lost_commit()) {
        (Ok(_), Some(error)) => Err(Failure::driver(
            format_args!("{}: making the state durable", topic.path()),
            &error,
        )),
        (result, _) => result,
    };
    if leave_to_exit {
        // The process exits next: what the manager holds is descriptors of
        // directories (and memory), which the kernel closes at exit as
        // close(2) would; nothing in them is buffered or waits to be
        // synced (the lock guard, which commits, is gone by now). One
        // `close` each saved, about 15 a command.
        std::mem::forget(manager);
    }
    result
}

#[cfg(test)]
mod tests;
