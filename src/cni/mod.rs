//! CNI plugin mode: when `CNI_COMMAND` is set (and not empty), the binary is
//! a CNI plugin that runtimes (containerd, CRI-O, Podman's CNI backend,
//! Nomad, Multus) run where they run the reference `ipvlan` plugin, with the
//! same configs; the command line is not reachable then.
//!
//! # The state model
//!
//! Decided before anything else, because every verb follows from it.
//!
//! * **A CNI network is a marked network record**, named exactly as the
//!   config's `name`, created by the first ADD: not a record named
//!   `cni/<name>`. The CNI spec's name rule (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`)
//!   is the CLI's, so a CNI name is a valid record name as it is: no
//!   encoding in the store's file names, and `network ls`, `inspect`,
//!   `ps`, `restore` and the crash walk show and repair CNI networks under
//!   the name the user wrote in the conflist. The mark (the record's
//!   origin, `cni`, with the config the network was created from) is needed
//!   anyway to hold that config, so a namespace prefix would add a second
//!   way to say the same thing. A CLI network of the same name is not
//!   taken over: ADD fails with code 7 naming it. Names longer than the
//!   store's [`MAX_NAME_LEN`](crate::driver::MAX_NAME_LEN) are refused
//!   (code 7).
//! * **The record outlives its attachments**: it keeps the allocator's
//!   position, so a released address is not handed out again at once. An
//!   idle CNI network can be removed with `network rm`; one with
//!   attachments cannot, nor changed through the CLI.
//! * **Attachments are keyed by (`CNI_CONTAINERID`, `CNI_IFNAME`)**, the
//!   key the runtime uses, not by the namespace's identity as CLI
//!   endpoints are: DEL must find the attachment when the namespace is
//!   gone or `CNI_NETNS` is unset, and one container may have several
//!   interfaces on one network.
//! * **A different config for the same name** (master, mode, flag, mtu,
//!   `linkInContainer`, IPAM type and ranges; not `dns`, `args`,
//!   `runtimeConfig` or `prevResult`, which are per attachment) fails ADD
//!   with code 7 while attachments are live, naming the key that differs;
//!   with none live, ADD rewrites the record. The CLI's overlap and
//!   shared-parent (mode/flag) checks apply across CLI and CNI networks.
//! * **A `NAME.VLANID` master that ADD creates is recorded as ours** on
//!   the network record and deleted with its last attachment, whether that
//!   attachment goes by DEL, by GC or by `restore` after its namespace
//!   vanished, and by an ADD that fails once it is made (or, for an ADD
//!   killed before it recorded its attachment, by the DEL that follows,
//!   which finds no record). An existing link of that name is used and
//!   never deleted.
//! * **`CNI_NETNS` is recorded absolute**: a relative path is opened from
//!   the plugin's working directory, as the reference plugin opens it, and
//!   recorded joined to it, so `restore` and GC read it from anywhere.
//! * **`ipam.type` `ipvlan`**: with `type` `ipvlan` too, addresses come
//!   from our allocator in-process, leases in the network's record; with
//!   another `type` (the binary run as the IPAM plugin of the reference
//!   `macvlan` or `bridge`), the same store serves their allocations on a
//!   lease-only record (no master, no link): an endpoint record keyed by
//!   (`CNI_CONTAINERID`, `CNI_IFNAME`) under its own id prefix
//!   ([`lease_id`](crate::driver::lease_id)), so `restore` and GC never take
//!   it for a link of ours. Its network is the one our own ADD made for the
//!   name when the IPAM keys (type, ranges) are the same, so both hand out
//!   from one allocator; else a network with no master, made by the lease,
//!   which our own first ADD (same IPAM keys, no `linkInContainer`) makes
//!   over with its master and link keys, keeping the leases.
//!   The reference `ipvlan` plugin running us as its IPAM sends the same
//!   `type`; its call is told from a runtime's by the calling program (an
//!   `ipvlan` executable that is not this one).
//! * **`restore` does not re-make a CNI link** that vanished: the runtime
//!   owns the link's life and holds the result (routes, DNS) it was made
//!   with, which the CLI's rules would not reproduce. Record and addresses
//!   stay for the runtime's CHECK (which reports the link missing), DEL or
//!   GC; a lease stays while its namespace does.
//! * **`linkInContainer`**: the master is the container's, so the network
//!   record has no master (like a lease-only one); `restore` and GC take an
//!   ipvlan link named as recorded there as ours.
//!
//! # What this build does
//!
//! Finished: the environment ([`mod@env`]), versions ([`version`]), the error
//! object ([`error`]), the config with its `ipam` section ([`config`]),
//! results in every version ([`result`]), delegated IPAM ([`delegate`]),
//! the front end's part of ADD ([`attach`]: master choice, address source,
//! the result; IPAM ADD and its undo),
//! the VERSION verb, and ADD, DEL, CHECK, GC and STATUS over the driver's
//! CNI room ([`wire`]), `linkInContainer`, host-local's
//! `rangeStart`/`rangeEnd` under our IPAM (the allocator walks the CIDR
//! blocks covering the bounds from its cursor), and serving as another
//! plugin's IPAM. Not yet: `linkInContainer` has no shared-parent
//! (mode/flag) guard on the container's master.

pub mod attach;
pub mod config;
pub mod delegate;
pub mod env;
pub mod error;
mod read;
pub mod result;
pub mod version;
pub mod wire;

#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::io::{Read, Write};

use config::NetConf;
pub use env::is_plugin_mode;
use env::{Command, Env};
use error::{CniError, ErrorCode};
use version::Version;

use crate::json;

/// Exit status of a failed request (the reference plugins exit 1).
pub const EXIT_FAILED: i32 = 1;

/// The most stdin we read: configs are a few KiB; a `prevResult` of many
/// interfaces stays far below.
pub const STDIN_MAX: u64 = 4 << 20;

/// What one invocation prints on stdout, and its exit status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The exit status.
    pub exit: i32,
    /// Everything for stdout (a result, the VERSION answer, or an error
    /// object); empty for a successful DEL, CHECK, STATUS or GC.
    pub stdout: String,
}

/// Entry point of the plugin mode: the process environment and stdin,
/// `arg0` the process's first argument (its file name is the name the
/// binary was run by, see [`run_as`]); returns the
/// exit status.
pub fn main(arg0: Option<&std::ffi::OsStr>) -> i32 {
    wire::EXIT_FOLLOWS.store(true, std::sync::atomic::Ordering::Relaxed);
    let outcome = run_as(&own_name(arg0), std::env::vars_os().collect(), &mut Fd0);
    let mut stdout = std::io::stdout().lock();
    // A runtime that went away cannot be told anything more.
    let _ = stdout
        .write_all(outcome.stdout.as_bytes())
        .and_then(|()| stdout.flush());
    outcome.exit
}

/// fd 0 read in place: std's buffered stdin adds code for no gain when
/// the whole input is read once, and a `File` of it would be a duplicate
/// (two system calls, and a `close`). A closed fd 0 reads as empty.
struct Fd0;

impl Read for Fd0 {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match crate::sys::read_stdin(buf) {
            Err(error) if error.raw_os_error() == Some(libc::EBADF) => Ok(0),
            read => read,
        }
    }

    // What `serve` asks (through `take`) is `read` and `read_buf`; the
    // rest go through that same reader, whose code the binary has, rather
    // than through this type's own copies of the default methods.
    fn read_to_end(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        (self as &mut dyn Read).take(u64::MAX).read_to_end(buf)
    }

    fn read_to_string(&mut self, buf: &mut String) -> std::io::Result<usize> {
        (self as &mut dyn Read).take(u64::MAX).read_to_string(buf)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        (self as &mut dyn Read).take(u64::MAX).read_exact(buf)
    }
}

/// The name this process was run by: the file name of its `argv[0]`
/// (`arg0`), as a runtime passes the path it found in `CNI_PATH`;
/// [`config::OUR_TYPE`] when there is none to read.
fn own_name(arg0: Option<&std::ffi::OsStr>) -> String {
    use std::os::unix::ffi::OsStrExt;
    // The last part of the path, as the runtime found the file.
    let name = arg0
        .and_then(|arg0| arg0.as_bytes().rsplit(|&b| b == b'/').next())
        .unwrap_or_default();
    match std::str::from_utf8(name) {
        Ok(name) if !name.is_empty() => name.to_string(),
        _ => config::OUR_TYPE.to_string(),
    }
}

/// Serves one request: `vars` is the whole environment, `stdin` the
/// network configuration (not read for VERSION); the binary named
/// `ipvlan` (see [`run_as`]).
pub fn run(vars: Vec<(OsString, OsString)>, stdin: &mut dyn Read) -> Outcome {
    run_as(config::OUR_TYPE, vars, stdin)
}

/// [`run`] for a binary run by the name `own_name`: a config's `type` or
/// `ipam.type` of that name names it, as `ipvlan` does.
pub fn run_as(own_name: &str, vars: Vec<(OsString, OsString)>, stdin: &mut dyn Read) -> Outcome {
    let mut version = Version::NEWEST;
    match serve(own_name, vars, stdin, &mut version) {
        Ok(stdout) => Outcome { exit: 0, stdout },
        Err(error) => Outcome {
            exit: EXIT_FAILED,
            stdout: render(&error.to_json(version.as_str())),
        },
    }
}

fn render(value: &json::Value) -> String {
    // Our values have unique keys and shallow nesting; a failure here is a
    // bug, reported as an error object rather than a panic.
    match value.to_pretty() {
        Ok(text) => text + "\n",
        // Fixed text: the reason may hold characters JSON must escape.
        Err(_) => "{\"code\": 999, \"msg\": \"cannot write the answer\"}\n".to_string(),
    }
}

/// The request's work; `version` is set as soon as the request's version
/// is known, for the error object.
fn serve(
    own_name: &str,
    vars: Vec<(OsString, OsString)>,
    stdin: &mut dyn Read,
    version: &mut Version,
) -> Result<String, CniError> {
    let env = Env::parse(vars)?;
    if env.command == Command::Version {
        return Ok(render(&version::version_reply()));
    }
    // Room for a usual config from the start: one read(2) and the one
    // that finds the end, where growing from nothing takes a read for
    // each doubling.
    let mut input = Vec::with_capacity(16 << 10);
    stdin
        .take(STDIN_MAX + 1)
        .read_to_end(&mut input)
        .map_err(|e| CniError::new(ErrorCode::IoFailure, format!("reading stdin: {e}")))?;
    if input.len() as u64 > STDIN_MAX {
        return Err(CniError::decode(format!(
            "the network configuration is larger than {STDIN_MAX} bytes"
        )));
    }
    let doc = config::decode(&input)?;
    if let Some(requested) = config::requested_version(&doc) {
        *version = requested;
    }
    let conf = NetConf::read_as(&doc, env.command, own_name)?;
    match env.command {
        Command::Add => {
            wire::add(&env, &conf, &input).map(|result| render(&result.to_json(conf.cni_version)))
        }
        Command::Del => wire::del(&env, &conf, &input).map(|()| String::new()),
        Command::Check => wire::check(&env, &conf, &input).map(|()| String::new()),
        Command::Gc => wire::gc(&env, &conf, &input).map(|()| String::new()),
        Command::Status => wire::status(&env, &conf, &input).map(|()| String::new()),
        Command::Version => unreachable!("answered above"),
    }
}
