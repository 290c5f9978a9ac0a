//! Delegated IPAM: the plugin named by `ipam.type`, found in `CNI_PATH`,
//! run with our stdin and environment (only `CNI_COMMAND` set to the verb
//! it is given), its stderr relayed, its result or error read back, within
//! a time bound.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::env::{Command, COMMAND};
use super::error::{CniError, ErrorCode};
use super::result::CniResult;
use super::version::Version;
use crate::json::{self, Value};
use crate::sys::{ChildIo, ChildStatus, Spawn};
use crate::text::escape_controls;

/// How long a delegated plugin may take. host-local answers in
/// milliseconds; the reference `dhcp` daemon tries a slow server for up to
/// 208 s before it gives up, and the reference plugin waits for it without
/// a bound. But a runtime bounds the ADD itself (the kubelet's CRI
/// requests, by default, at 2 minutes, when containerd or CRI-O kill the
/// plugin): ours ends a plugin that hangs first, so that the ADD is undone
/// and answered rather than killed halfway, and leaves a slow server most
/// of that time. (An ADD that answers late, then fails at a later step,
/// runs the plugin's DEL with the same bound, which may outlast the
/// runtime's: `restore` finishes what that kill leaves.)
pub const TIMEOUT: Duration = Duration::from_secs(100);

/// How often a plugin that is being replaced ("text file busy") is retried,
/// as the reference runtime library retries.
const BUSY_RETRIES: u32 = 5;

/// The most of a failed plugin's output quoted in our error.
const QUOTE_MAX: usize = 2048;

/// Finds `plugin` in `dirs` as the spec's library does: the first
/// `DIR/PLUGIN` that is a regular file (symlinks followed), in order.
pub fn find_in_path(plugin: &str, dirs: &[PathBuf]) -> Result<PathBuf, CniError> {
    if plugin.is_empty() {
        return Err(CniError::config("no plugin name provided"));
    }
    if plugin.contains('/') {
        return Err(CniError::config(format!(
            "invalid plugin name: {}",
            escape_controls(plugin)
        )));
    }
    for dir in dirs {
        let candidate = dir.join(plugin);
        if std::fs::metadata(&candidate).is_ok_and(|m| m.is_file()) {
            return Ok(candidate);
        }
    }
    let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    Err(CniError::internal(format!(
        "failed to find plugin {:?} in path [{}]",
        escape_controls(plugin),
        escape_controls(&shown.join(" "))
    )))
}

/// What a delegated plugin printed when it succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// Its stdout.
    pub stdout: Vec<u8>,
}

/// Runs the plugin at `path` for `verb`, with `vars` as its environment
/// (`CNI_COMMAND` replaced) and `stdin` as its input, killing it after
/// `timeout`. Its stderr is relayed to ours. A plugin that exits non-zero
/// gives its own error object when it printed one (code kept), else a 999
/// quoting what it printed.
///
/// Its three standard files are unnamed scratch files rather than pipes:
/// nothing can deadlock (a plugin writing much before reading its input, a
/// grandchild keeping a pipe open), no thread is needed to feed or drain
/// it, and the binary stays small.
pub fn run(
    path: &Path,
    verb: Command,
    vars: &[(OsString, OsString)],
    stdin: &[u8],
    timeout: Duration,
) -> Result<Output, CniError> {
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let name = escape_controls(&name).into_owned();
    let io_error =
        |e: std::io::Error| CniError::internal(format!("running IPAM plugin {name}: {e}"));
    let mut input = scratch_file().map_err(io_error)?;
    input
        .write_all(stdin)
        .and_then(|()| input.seek(SeekFrom::Start(0)).map(drop))
        .map_err(io_error)?;
    let mut stdout = scratch_file().map_err(io_error)?;
    let mut stderr = scratch_file().map_err(io_error)?;
    let started = crate::sys::clock_now(libc::CLOCK_MONOTONIC);
    // Under a keeper (see `sys::spawn_kept`): a runtime (an init) that
    // ignores `SIGCHLD` passes it on ignored, and a program embedding the
    // library may reap every child; either would take the plugin's status.
    let child = spawn(path, verb, vars, &name, [&input, &stdout, &stderr])?;
    let status = child.wait_until(started + timeout).map_err(io_error)?;
    let Some(status) = status else {
        // Killed and reaped as it was let go.
        return Err(CniError::internal(format!(
            "IPAM plugin {name} did not finish {} within {}: killed",
            verb.as_str(),
            crate::digits::duration_text(timeout),
        )));
    };
    let printed = read_back(&mut stdout).map_err(io_error)?;
    let complaints = read_back(&mut stderr).map_err(io_error)?;
    if !complaints.is_empty() {
        let _ = std::io::stderr().write_all(&complaints);
    }
    if status == ChildStatus::Exited(0) {
        return Ok(Output { stdout: printed });
    }
    Err(plugin_error(&name, verb, status, &printed, &complaints))
}

/// The most of a plugin's stdout or stderr we read back.
const OUTPUT_MAX: u64 = 4 << 20;

fn read_back(file: &mut File) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    // Through `dyn Read`, as the store's and stdin's capped reads: one
    // copy of the standard library's loop for all three.
    (file as &mut dyn Read)
        .take(OUTPUT_MAX)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// A file with no name in the temp directory: nobody else can open it, and
/// it is gone when closed. On a file system without `O_TMPFILE`, a new
/// file of a name no one else uses, removed at once. A failure names the
/// directory (`$TMPDIR`, else `/tmp`): a minimal root may have none, or a
/// read-only one.
fn scratch_file() -> std::io::Result<File> {
    let dir = std::env::temp_dir();
    scratch_file_in(&dir).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "a scratch file for its input and output in {} (TMPDIR, else /tmp): {e}",
                dir.display()
            ),
        )
    })
}

/// [`scratch_file`] in `dir`.
fn scratch_file_in(dir: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).mode(0o600);
    match options.clone().custom_flags(libc::O_TMPFILE).open(dir) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR)) => {
            static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = dir.join(format!(".ipvlan-cni-{}-{n}", std::process::id()));
            // create_new: never a file (or symlink) someone put there.
            let file = options.create_new(true).open(&path)?;
            std::fs::remove_file(&path)?;
            Ok(file)
        }
        other => other,
    }
}

fn spawn(
    path: &Path,
    verb: Command,
    vars: &[(OsString, OsString)],
    name: &str,
    files: [&File; 3],
) -> Result<crate::sys::Running, CniError> {
    let mut env: Vec<(OsString, OsString)> =
        vars.iter().filter(|(k, _)| k != COMMAND).cloned().collect();
    env.push((COMMAND.into(), verb.as_str().into()));
    let mut attempt = 0;
    loop {
        let spawn = Spawn {
            program: path.as_os_str(),
            args: &[],
            env: Some(&env),
            stdio: files.map(|file| ChildIo::Fd(file.as_fd())),
            own_session: false,
        };
        match crate::sys::spawn_kept(&spawn, None).and_then(crate::sys::HeldChild::release) {
            Ok(running) => return Ok(running),
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < BUSY_RETRIES => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(100 * u64::from(attempt)));
            }
            Err(e) => {
                return Err(CniError::internal(format!(
                    "cannot run IPAM plugin {name} ({}): {e}",
                    escape_controls(&path.display().to_string())
                )))
            }
        }
    }
}

/// The error a failed plugin reported, or one that quotes its output.
fn plugin_error(
    name: &str,
    verb: Command,
    status: ChildStatus,
    stdout: &[u8],
    stderr: &[u8],
) -> CniError {
    if let Ok(value) = std::str::from_utf8(stdout)
        .map_err(drop)
        .and_then(|t| json::parse(t).map_err(drop))
    {
        let code = value.get("code").and_then(Value::as_u64);
        let msg = value.get("msg").and_then(Value::as_str);
        if let (Some(code), Some(msg)) = (code, msg) {
            let code = u32::try_from(code).map_or(ErrorCode::Internal, ErrorCode::from_number);
            let details = value.get("details").and_then(Value::as_str).unwrap_or("");
            return CniError::new(code, msg).with_details(details);
        }
    }
    let printed = if stdout.iter().any(|b| !b.is_ascii_whitespace()) {
        stdout
    } else {
        stderr
    };
    let text = String::from_utf8_lossy(&printed[..printed.len().min(QUOTE_MAX)]);
    CniError::internal(format!(
        "IPAM plugin {name} failed {} ({status})",
        verb.as_str()
    ))
    .with_details(escape_controls(text.trim()).into_owned())
}

/// Reads a delegated plugin's ADD result. A result without `cniVersion`
/// is read as the request's version (as the runtime library does).
pub fn read_result(name: &str, output: &Output, request: Version) -> Result<CniResult, CniError> {
    let bad = |why: String| {
        CniError::internal(format!(
            "IPAM plugin {name} returned a result that cannot be read: {why}"
        ))
    };
    let text = std::str::from_utf8(&output.stdout).map_err(|e| bad(e.to_string()))?;
    let value = json::parse(text).map_err(|e| bad(e.to_string()))?;
    if let Some(version) = value.get("cniVersion") {
        let text = version.as_str().unwrap_or("");
        if Version::parse(text).is_none() {
            return Err(bad(format!(
                "cniVersion {:?} is not one we speak (the request's is {})",
                escape_controls(text),
                request.as_str()
            )));
        }
    }
    let result = CniResult::read(&value, "", ErrorCode::Internal)
        .map_err(|mut e| bad(std::mem::take(&mut e.msg)))?;
    if result.ips.is_empty() {
        return Err(CniError::internal(format!(
            "IPAM plugin {name} returned missing IP config"
        )));
    }
    Ok(result)
}
