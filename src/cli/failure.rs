//! Why a command did not succeed, and the exit codes: one place that
//! decides what the user reads on stderr and what the shell sees.

use std::fmt;

use super::args::ArgError;
use super::command::ParseError;
use super::help::Topic;
use crate::driver;
use crate::text::escape_controls;

/// Exit code of a successful command.
pub const EXIT_OK: i32 = 0;
/// Exit code when an operation failed or a value was invalid.
pub const EXIT_FAILED: i32 = 1;
/// Exit code of a malformed command line.
pub const EXIT_USAGE: i32 = 2;
/// `run`/`exec`: ipvlan itself failed.
pub const EXIT_RUN_FAILED: i32 = 125;
/// `run`/`exec`: the command was found but cannot be run.
pub const EXIT_CANNOT_RUN: i32 = 126;
/// `run`/`exec`: the command was not found.
pub const EXIT_NOT_FOUND: i32 = 127;

/// Why a command did not succeed.
#[derive(Clone, PartialEq, Eq)]
pub struct Failure(Box<Details>);

/// Behind a box so that a `Failure` is one pointer: every `?` of the
/// command handlers moves a word (release binary size).
#[derive(Clone, PartialEq, Eq)]
struct Details {
    kind: FailureKind,
    /// `<what failed>: <why>`.
    message: String,
}

impl fmt::Debug for Failure {
    // As `#[derive(Debug)]` printed the struct before its fields were boxed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failure")
            .field("kind", &self.0.kind)
            .field("message", &self.0.message)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailureKind {
    /// Malformed command line; the usage of this command applies.
    Usage(Topic),
    /// An invalid value on the command line.
    Value(Topic),
    /// An operation failed.
    Failed,
    /// `run`/`exec`: the command itself could not be started (126, 127).
    Command(i32),
}

impl Failure {
    /// `what` failed because of the driver's `error`.
    pub fn driver(what: impl fmt::Display, error: &driver::Error) -> Failure {
        Failure::failed(what, error)
    }

    /// `what` failed because of `why`.
    pub fn failed(what: impl fmt::Display, why: impl fmt::Display) -> Failure {
        Failure::failed_dyn(&what, &why)
    }

    /// [`Failure::failed`]'s body, kept once for every kind of argument.
    #[cold]
    #[inline(never)]
    fn failed_dyn(what: &dyn fmt::Display, why: &dyn fmt::Display) -> Failure {
        Failure(Box::new(Details {
            kind: FailureKind::Failed,
            message: format!("{what}: {why}"),
        }))
    }

    /// The command to run could not be started: `code` is 126 (cannot be
    /// run) or 127 (not found), as `docker run` reports it.
    pub fn command(code: i32, what: impl fmt::Display, why: impl fmt::Display) -> Failure {
        Failure(Box::new(Details {
            kind: FailureKind::Command(code),
            message: format!("{what}: {why}"),
        }))
    }

    /// The command to run could not be started, said as `message` (e.g.
    /// `exec nope: executable file not found`); `code` as for
    /// [`Failure::command`].
    pub fn not_started(code: i32, message: impl Into<String>) -> Failure {
        Failure(Box::new(Details {
            kind: FailureKind::Command(code),
            message: message.into(),
        }))
    }

    /// Exit code when no particular command is known.
    pub fn exit_code(&self) -> i32 {
        match self.0.kind {
            FailureKind::Usage(topic) | FailureKind::Value(topic) => self.exit_code_for(topic),
            FailureKind::Failed => EXIT_FAILED,
            FailureKind::Command(code) => code,
        }
    }

    /// Exit code of this failure in `topic`.
    pub fn exit_code_for(&self, topic: Topic) -> i32 {
        if let FailureKind::Command(code) = self.0.kind {
            return code;
        }
        if topic.runs_a_command() {
            return EXIT_RUN_FAILED;
        }
        match self.0.kind {
            FailureKind::Usage(_) => EXIT_USAGE,
            FailureKind::Value(_) | FailureKind::Failed | FailureKind::Command(_) => EXIT_FAILED,
        }
    }
}

/// Prints `ipvlan: warning: TEXT` on stderr, TEXT on one line.
pub(crate) fn warn(text: impl fmt::Display) {
    warn_dyn(&text);
}

/// [`warn`]'s body, kept once for every kind of text.
#[inline(never)]
fn warn_dyn(text: &dyn fmt::Display) {
    eprintln!("ipvlan: warning: {}", escape_controls(&text.to_string()));
}

impl From<ParseError> for Failure {
    fn from(error: ParseError) -> Failure {
        let context = match error.topic {
            Topic::Root => "ipvlan".to_string(),
            topic => topic.path().to_string(),
        };
        match error.error {
            ArgError::Usage(message) => Failure(Box::new(Details {
                kind: FailureKind::Usage(error.topic),
                message: format!("{context}: {message}"),
            })),
            ArgError::Value(message) => Failure(Box::new(Details {
                kind: FailureKind::Value(error.topic),
                message: format!("{context}: {message}"),
            })),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = self
            .0
            .message
            .strip_prefix("ipvlan: ")
            .unwrap_or(&self.0.message);
        // Arguments are echoed in the message; whatever they hold, the
        // terminal gets one line of text.
        write!(f, "ipvlan: {}", escape_controls(message))?;
        if let FailureKind::Usage(topic) = self.0.kind {
            let path = match topic {
                Topic::Root => "ipvlan".to_string(),
                topic => format!("ipvlan {}", topic.path()),
            };
            write!(f, "\nSee '{path} --help'.")?;
        }
        Ok(())
    }
}
