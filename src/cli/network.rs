//! `ipvlan network create|rm|ls|inspect|connect|disconnect`.

use crate::driver::{self, Damaged, ErrorKind, Manager, NetworkCreate, NetworkInfo, Target};

use super::command::ConnectArgs;
use super::{output, warn, Failure, EXIT_FAILED, EXIT_OK};

fn describe(target: &Target) -> String {
    match target {
        Target::Container(name) => name.clone(),
        Target::Path(path) => path.display().to_string(),
    }
}

pub fn create(manager: &Manager, request: NetworkCreate) -> Result<i32, Failure> {
    let network = manager.create_network(&request).map_err(|error| {
        Failure::driver(format_args!("network create {}", request.name), &error)
    })?;
    for warning in &network.warnings {
        warn(warning);
    }
    outln!("{}", network.id);
    Ok(EXIT_OK)
}

/// Removes each network in turn, like docker: the ones that can go, go;
/// the others are reported and make the exit code 1.
pub fn remove(manager: &Manager, names: &[String], force: bool) -> Result<i32, Failure> {
    let mut code = EXIT_OK;
    for name in names {
        match manager.remove_network(name) {
            Ok(notes) => {
                for note in notes {
                    eprintln!("ipvlan: warning: {note}");
                }
                outln!("{name}");
            }
            // `-f`: as Docker's, nothing said of a network that is not
            // there; one that a damaged network record may hold is still
            // said (a damaged endpoint record holds no network).
            Err(error)
                if force
                    && error.kind() == crate::driver::ErrorKind::NotFound
                    && manager
                        .network_list()
                        .is_ok_and(|l| l.networks.damaged.is_empty()) => {}
            Err(error) => {
                eprintln!(
                    "{}",
                    Failure::driver(format_args!("network rm {name}"), &error)
                );
                code = EXIT_FAILED;
            }
        }
    }
    Ok(code)
}

/// One stderr line per state file a listing could not read.
pub fn warn_damaged(damaged: &[Damaged]) {
    for damaged in damaged {
        eprintln!("ipvlan: warning: damaged state file left as it is: {damaged}");
    }
}

/// Lists what can be read; each damaged record is a warning on stderr
/// and the exit code stays 0, so a boot script still sees every good
/// network (`restore` is the command that fails on damage).
pub fn list(
    manager: &Manager,
    quiet: bool,
    no_trunc: bool,
    filters: &[super::command::NetworkFilter],
) -> Result<i32, Failure> {
    // Network records only, read once and without the lock: `ls` never
    // waits for a writer (a half-created record alone makes it try the
    // lock, without waiting, for as long as a few reads; see
    // `network_list`).
    let list = manager
        .network_list()
        .map_err(|error| Failure::driver("network ls", &error))?;
    let mut networks = list.networks;
    networks.items.retain(|network| {
        super::command::NetworkFilter::all_match(
            filters,
            &network.name,
            &network.id,
            &network.driver,
            &|| manager.network_in_use(&network.id),
        )
    });
    // In natural order of their names, as `docker network ls` prints them.
    crate::order::sort_by(&mut networks.items, |a, b| {
        crate::text::natural_cmp(&a.name, &b.name)
    });
    // Not listed, as no other command accepts them; but not hidden either,
    // since their names are taken until restore rolls them back.
    for name in list.half_created {
        warn(format_args!(
            "network {name} was left half-created by an interrupted `network create`; run `ipvlan restore` to roll it back"
        ));
    }
    if quiet {
        for network in &networks {
            outln!("{}", output::network_id(network, no_trunc));
        }
    } else {
        out!("{}", output::network_table(&networks, no_trunc));
    }
    warn_damaged(&networks.damaged);
    Ok(EXIT_OK)
}

/// Prints the networks found, as docker does, then reports the missing ones.
pub fn inspect(manager: &Manager, names: &[String]) -> Result<i32, Failure> {
    let mut found: Vec<NetworkInfo> = Vec::new();
    let mut failures = Vec::new();
    for name in names {
        match manager.network(name) {
            Ok(network) => found.push(network),
            // As docker words it: the name is in the message, not after "inspect".
            Err(error) if error.kind() == ErrorKind::NotFound => {
                failures.push(Failure::driver("network inspect", &error));
            }
            Err(error) => failures.push(Failure::driver(
                format_args!("network inspect {name}"),
                &error,
            )),
        }
    }
    match output::inspect_document(&found) {
        Ok(document) => outln!("{document}"),
        Err(error) => failures.insert(0, Failure::failed("network inspect", error)),
    }
    for warning in found.iter().flat_map(|network| &network.warnings) {
        warn(warning);
    }
    for failure in &failures {
        eprintln!("{failure}");
    }
    Ok(if failures.is_empty() {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

/// Makes the relative namespace paths of `targets` absolute, as they are
/// recorded and read back by later commands (`restore` at boot) from other
/// directories; in place, so a batch of a thousand targets is not copied
/// for it. Each one's form as typed goes to `as_typed` with its position,
/// for messages.
fn make_absolute(
    targets: &mut [Target],
    as_typed: &mut Vec<(usize, Target)>,
) -> Result<(), driver::Error> {
    for (at, target) in targets.iter_mut().enumerate() {
        if let Target::Path(path) = target {
            if !path.is_absolute() {
                let absolute = Target::Path(driver::absolute_path("namespace", path)?);
                as_typed.push((at, std::mem::replace(target, absolute)));
            }
        }
    }
    Ok(())
}

/// The operands as messages name them, as typed: `n1 c1 c2`.
fn describe_all(network: &str, targets: &[Target], as_typed: &[(usize, Target)]) -> String {
    let mut text = network.to_string();
    for (at, target) in targets.iter().enumerate() {
        let typed = as_typed.iter().find(|(typed_at, _)| *typed_at == at);
        text.push(' ');
        text.push_str(&describe(typed.map_or(target, |(_, typed)| typed)));
    }
    text
}

/// Several targets are one batch (all attached, or none).
pub fn connect(manager: &Manager, args: ConnectArgs) -> Result<i32, Failure> {
    let ConnectArgs {
        network,
        mut targets,
        request,
    } = args;
    let mut as_typed = Vec::new();
    let made = make_absolute(&mut targets, &mut as_typed);
    let failure = |error: &driver::Error| {
        Failure::driver(
            format_args!(
                "network connect {}",
                describe_all(&network, &targets, &as_typed)
            ),
            error,
        )
    };
    made.map_err(|e| failure(&e))?;
    match targets.as_slice() {
        [target] => manager.connect(&network, target, &request).map(drop),
        targets => manager.connect_many(&network, targets).map(drop),
    }
    .map_err(|e| failure(&e))?;
    Ok(EXIT_OK)
}

/// Several targets are one batch (every one must be attached).
pub fn disconnect(
    manager: &Manager,
    network: &str,
    mut targets: Vec<Target>,
) -> Result<i32, Failure> {
    let mut as_typed = Vec::new();
    let made = make_absolute(&mut targets, &mut as_typed);
    let failure = |error: &driver::Error| {
        Failure::driver(
            format_args!(
                "network disconnect {}",
                describe_all(network, &targets, &as_typed)
            ),
            error,
        )
    };
    made.map_err(|e| failure(&e))?;
    let notes = match targets.as_slice() {
        [target] => manager.disconnect(network, target),
        targets => manager.disconnect_many(network, targets),
    }
    .map_err(|e| failure(&e))?;
    for note in notes {
        warn(note);
    }
    Ok(EXIT_OK)
}
