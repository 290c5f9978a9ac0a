//! The command-line grammar: `argv` to a [`Command`], with no side effects.

use std::ffi::{OsStr, OsString};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use crate::driver::{AttachRequest, NetworkCreate, Target};

use super::args::{self, ArgError, Matches, Operands};
use super::help::{Topic, NETWORK_COMMANDS, ROOT_COMMANDS};
use super::values;

/// The shell a container runs when `run` is given no command.
pub const DEFAULT_COMMAND: &str = "/bin/sh";

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// `--state-dir`, if given (the environment is consulted later).
    pub state_dir: Option<PathBuf>,
    /// What to do.
    pub command: Command,
}

/// One `ipvlan` command with its operands and options, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Print the usage of a command and exit 0.
    Help(Topic),
    /// `version` (`brief`: `--version`, one line).
    Version {
        /// `--version`: the one-line form instead of the full report.
        brief: bool,
    },
    /// `network create`.
    NetworkCreate(NetworkCreate),
    /// `network rm`.
    NetworkRemove {
        /// Networks to remove, by name or ID, in command-line order.
        names: Vec<String>,
        /// `-f`: a network that does not exist is no error (Docker's).
        force: bool,
    },
    /// `network ls`.
    NetworkList {
        /// `-q`: print only the network IDs.
        quiet: bool,
        /// `--no-trunc`: print full IDs instead of the short ones.
        no_trunc: bool,
        /// `-f KEY=VALUE`, in command-line order (see [`NetworkFilter`]).
        filters: Vec<NetworkFilter>,
    },
    /// `network inspect`.
    NetworkInspect {
        /// Networks to show, by name or ID, in command-line order.
        names: Vec<String>,
    },
    /// `network connect`.
    NetworkConnect(ConnectArgs),
    /// `network disconnect`.
    NetworkDisconnect {
        /// The network, by name or ID.
        network: String,
        /// The containers or namespace paths to detach (several: one
        /// batch, see [`crate::driver::Manager::disconnect_many`]).
        targets: Vec<Target>,
    },
    /// `run`.
    Run(RunArgs),
    /// `exec`.
    Exec(ExecArgs),
    /// `rm`: remove containers.
    Remove {
        /// `-f`: kill processes still running in the container first.
        force: bool,
        /// Containers to remove, in command-line order.
        names: Vec<String>,
    },
    /// `ps`: list containers.
    Ps {
        /// `-q`: print only the container names.
        quiet: bool,
    },
    /// `restore`: re-create what the kernel lost (parents, container links)
    /// from the stored networks.
    Restore,
    /// `doctor`: report what this kernel and process support.
    Doctor,
}

/// Operands and options of `network connect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectArgs {
    /// The network, by name or ID.
    pub network: String,
    /// The containers or namespace paths to attach (several: one batch,
    /// see [`crate::driver::Manager::connect_many`]).
    pub targets: Vec<Target>,
    /// Addresses asked for with `--ip` / `--ip6`; unset ones are allocated.
    pub request: AttachRequest,
}

/// Options and command of `run`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunArgs {
    /// `--network`, once or more: the networks to attach the container
    /// to, in order (at least one).
    pub networks: Vec<String>,
    /// `--name`: the container name; `None`: a generated one.
    pub name: Option<String>,
    /// `--ip`: the IPv4 address to use instead of an allocated one.
    pub ipv4: Option<Ipv4Addr>,
    /// `--ip6`: the IPv6 address to use instead of an allocated one.
    pub ipv6: Option<Ipv6Addr>,
    /// `-d`: run the command (if any) in the background and print the
    /// container name instead of waiting.
    pub detach: bool,
    /// `-i`: keep stdin attached (otherwise the command reads `/dev/null`).
    pub interactive: bool,
    /// `-t`: accepted for Docker compatibility; the terminal is inherited.
    pub tty: bool,
    /// `--rm`: remove the container when the command exits (never with `detach`).
    pub remove: bool,
    /// The command as given (any bytes, as `execve` takes them); empty
    /// when none was (see [`RunArgs::argv`]).
    pub command: Vec<OsString>,
    /// What Docker's ipvlan driver answers with a warning and nothing
    /// done (`-p`, `--expose`), printed before the container is made.
    pub warnings: Vec<&'static str>,
}

impl RunArgs {
    /// The command to run in the foreground: the given one or the default shell.
    pub fn argv(&self) -> Vec<OsString> {
        if self.command.is_empty() {
            vec![DEFAULT_COMMAND.into()]
        } else {
            self.command.clone()
        }
    }
}

/// Operands and options of `exec`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecArgs {
    /// The container to run the command in.
    pub container: String,
    /// `-i`: keep stdin attached (otherwise the command reads `/dev/null`).
    pub interactive: bool,
    /// `-t`: accepted for Docker compatibility; the terminal is inherited.
    pub tty: bool,
    /// The program and its arguments (any bytes); never empty.
    pub command: Vec<OsString>,
}

/// Why a command line was refused, and which command's usage applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The command whose usage to point the user to.
    pub topic: Topic,
    /// What was wrong.
    pub error: ArgError,
}

impl ParseError {
    fn usage(topic: Topic, message: impl Into<String>) -> ParseError {
        ParseError {
            topic,
            error: ArgError::Usage(message.into()),
        }
    }
}

fn at(topic: Topic) -> impl Fn(ArgError) -> ParseError {
    move |error| ParseError { topic, error }
}

/// Parses the arguments after the program name. Options, names and
/// addresses are text; a command's arguments and a namespace's path may be
/// any bytes.
pub fn parse<A: AsRef<OsStr>>(argv: &[A]) -> Result<Invocation, ParseError> {
    // Global options come before the command word, as in docker; the first
    // operand is the command and everything after it is the command's.
    let global =
        args::parse(Topic::Root.flags(), argv, Operands::StopAtFirst).map_err(at(Topic::Root))?;
    let state_dir = match global.last("state-dir") {
        // Not the current directory, which is what an empty path would open.
        Some("") => return Err(ParseError {
            topic: Topic::Root,
            error: ArgError::Value(
                "invalid value \"\" for --state-dir: empty; give a directory or leave the flag out"
                    .to_string(),
            ),
        }),
        other => other.map(PathBuf::from),
    };
    let command = if global.help {
        Command::Help(Topic::Root)
    } else if global.is_set("version") {
        Command::Version { brief: true }
    } else {
        parse_command(&global.operands)?
    };
    Ok(Invocation { state_dir, command })
}

/// The command a command line names, found without parsing its global
/// options (the first word that is neither one of them nor a value of
/// one): so that a refused global option of `run` or `exec` exits as
/// theirs do (125), never with a status their command could have.
pub fn named_command<A: AsRef<OsStr>>(argv: &[A]) -> Option<Topic> {
    let mut words = argv.iter().map(|a| a.as_ref().to_string_lossy());
    while let Some(word) = words.next() {
        if let Some(long) = word.strip_prefix("--") {
            let takes_value = Topic::Root
                .flags()
                .iter()
                .any(|flag| flag.long == long && flag.value.is_some());
            if takes_value {
                words.next();
            }
        } else if !word.starts_with('-') || word == "-" {
            return lookup(ROOT_COMMANDS, &word);
        }
    }
    None
}

fn lookup(table: &[(&str, &[&str], Topic)], word: &str) -> Option<Topic> {
    table
        .iter()
        .find(|(name, aliases, _)| *name == word || aliases.contains(&word))
        .map(|(_, _, topic)| *topic)
}

fn parse_command(argv: &[OsString]) -> Result<Command, ParseError> {
    let Some((word, rest)) = argv.split_first() else {
        return Ok(Command::Help(Topic::Root));
    };
    // Not UTF-8: no command's name, and said so as text.
    let word = word.to_string_lossy();
    let word = word.as_ref();
    if word == "help" {
        return help_on(rest);
    }
    let topic = lookup(ROOT_COMMANDS, word).ok_or_else(|| {
        ParseError::usage(Topic::Root, format!("'{word}' is not an ipvlan command"))
    })?;
    if topic == Topic::Network {
        return parse_network(rest);
    }
    parse_leaf(topic, rest)
}

/// `ipvlan help [COMMAND [SUBCOMMAND]]`, as `docker help network create`:
/// the help of that command.
fn help_on(argv: &[OsString]) -> Result<Command, ParseError> {
    let mut topic = Topic::Root;
    for word in argv {
        let word = word.to_string_lossy();
        topic = lookup(topic.subcommands(), &word)
            .ok_or_else(|| ParseError::usage(topic, format!("unknown help topic: {word}")))?;
    }
    Ok(Command::Help(topic))
}

fn parse_network(argv: &[OsString]) -> Result<Command, ParseError> {
    let Some((word, rest)) = argv.split_first() else {
        return Ok(Command::Help(Topic::Network));
    };
    let word = word.to_string_lossy();
    let word = word.as_ref();
    if word == "-h" || word == "--help" {
        return Ok(Command::Help(Topic::Network));
    }
    if word.starts_with('-') {
        return Err(ParseError::usage(
            Topic::Network,
            format!("unknown flag: {word}"),
        ));
    }
    let topic = lookup(NETWORK_COMMANDS, word).ok_or_else(|| {
        ParseError::usage(
            Topic::Network,
            format!("'{word}' is not an ipvlan network command"),
        )
    })?;
    parse_leaf(topic, rest)
}

fn parse_leaf(topic: Topic, argv: &[OsString]) -> Result<Command, ParseError> {
    let mode = if topic.runs_a_command() {
        Operands::StopAtFirst
    } else {
        Operands::Interspersed
    };
    let matches = args::parse(topic.flags(), argv, mode).map_err(at(topic))?;
    if matches.help {
        return Ok(Command::Help(topic));
    }
    build(topic, matches).map_err(at(topic))
}

/// Checks the operand count the way docker words it.
fn operands(
    matches: &Matches,
    topic: Topic,
    min: usize,
    max: Option<usize>,
) -> Result<(), ArgError> {
    let count = matches.operands.len();
    let name = format!("\"ipvlan {}\"", topic.path());
    let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
    let message = match max {
        Some(0) if count > 0 => format!("{name} accepts no arguments"),
        Some(max) if max == min && count != min => {
            format!("{name} requires exactly {min} {}", plural(min))
        }
        Some(max) if count > max => format!("{name} accepts at most {max} {}", plural(max)),
        _ if count < min => format!("{name} requires at least {min} {}", plural(min)),
        _ => return Ok(()),
    };
    Err(ArgError::Usage(message))
}

/// One `network ls --filter KEY=VALUE`, as Docker's: filters of one key
/// match when any of them does, filters of several keys when each key's
/// does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkFilter {
    /// `name=TEXT`: the name holds TEXT (`^` and `$` anchor it at its
    /// start and end; Docker reads a regular expression).
    Name(String),
    /// `id=TEXT`: the ID holds TEXT, anchored the same way.
    Id(String),
    /// `driver=NAME`: the driver is NAME.
    Driver(String),
    /// `type=custom|builtin`: every network of ours is a custom one.
    Custom(bool),
    /// `scope=local|swarm|global`: every network of ours is local.
    Local(bool),
    /// `label=...`: our networks carry no labels; matches none.
    Label,
    /// `dangling=true|1|false|0`: the network has no endpoint (`true`), or
    /// has one (`false`); an attach or detach under way counts as one.
    Dangling(bool),
}

impl NetworkFilter {
    /// One `-f KEY=VALUE`, read as Docker's `filters.ParseFlag` reads it:
    /// an empty one is none (`None`), the key lower-cased, key and value
    /// trimmed of white space.
    fn parse(text: &str) -> Result<Option<NetworkFilter>, ArgError> {
        if text.is_empty() {
            return Ok(None);
        }
        let Some((key, value)) = text.split_once('=') else {
            return Err(ArgError::Value(format!(
                "bad format of filter {text:?} (expected name=value)"
            )));
        };
        let key = key.trim().to_ascii_lowercase();
        let key = key.as_str();
        let value = value.trim().to_string();
        Ok(Some(match key {
            "name" => NetworkFilter::Name(value),
            "id" => NetworkFilter::Id(value),
            "driver" => NetworkFilter::Driver(value),
            "label" => NetworkFilter::Label,
            "type" if value == "custom" || value == "builtin" => {
                NetworkFilter::Custom(value == "custom")
            }
            "scope" if ["local", "swarm", "global"].contains(&value.as_str()) => {
                NetworkFilter::Local(value == "local")
            }
            "dangling" if ["true", "1", "false", "0"].contains(&value.as_str()) => {
                NetworkFilter::Dangling(value == "true" || value == "1")
            }
            "type" | "scope" | "dangling" => {
                return Err(ArgError::Value(format!("invalid filter '{key}={value}'")))
            }
            _ => return Err(ArgError::Value(format!("invalid filter '{key}'"))),
        }))
    }

    /// Every `-f`, as [`NetworkFilter::parse`] reads each; `dangling`
    /// given more than one value is refused, as Docker refuses it (its
    /// values cannot be alternatives: both would list every network).
    fn parse_all(texts: &[&str]) -> Result<Vec<NetworkFilter>, ArgError> {
        let mut filters = Vec::with_capacity(texts.len());
        let mut dangling: Vec<String> = Vec::new();
        for text in texts {
            let Some(filter) = NetworkFilter::parse(text)? else {
                continue;
            };
            if let NetworkFilter::Dangling(_) = filter {
                let value = text
                    .split_once('=')
                    .map(|(_, v)| v.trim())
                    .unwrap_or_default();
                if !dangling.iter().any(|v| v == value) {
                    dangling.push(value.to_string());
                }
            }
            filters.push(filter);
        }
        if dangling.len() > 1 {
            dangling.sort();
            return Err(ArgError::Value(format!(
                "invalid filter 'dangling=[{}]'",
                dangling.join(" ")
            )));
        }
        Ok(filters)
    }

    fn matches_one(&self, name: &str, id: &str, driver: &str, in_use: &dyn Fn() -> bool) -> bool {
        match self {
            NetworkFilter::Name(text) => holds(name, text),
            NetworkFilter::Id(text) => holds(id, text),
            NetworkFilter::Driver(wanted) => driver == wanted,
            NetworkFilter::Custom(custom) | NetworkFilter::Local(custom) => *custom,
            NetworkFilter::Label => false,
            NetworkFilter::Dangling(dangling) => *dangling != in_use(),
        }
    }

    /// Whether a network (`name`, `id`, `driver`; `in_use`: whether it has
    /// an endpoint, asked only by a `dangling` filter) passes every key of
    /// `filters` (a variant is a key: filters of one are alternatives).
    pub fn all_match(
        filters: &[NetworkFilter],
        name: &str,
        id: &str,
        driver: &str,
        in_use: &dyn Fn() -> bool,
    ) -> bool {
        let key = std::mem::discriminant::<NetworkFilter>;
        filters.iter().all(|filter| {
            filters
                .iter()
                .filter(|other| key(other) == key(filter))
                .any(|other| other.matches_one(name, id, driver, in_use))
        })
    }
}

/// Whether `text` holds `wanted`, a `^` before it anchoring it at the
/// start and a `$` after it at the end.
fn holds(text: &str, wanted: &str) -> bool {
    let (start, wanted) = match wanted.strip_prefix('^') {
        Some(rest) => (true, rest),
        None => (false, wanted),
    };
    let (end, wanted) = match wanted.strip_suffix('$') {
        Some(rest) => (true, rest),
        None => (false, wanted),
    };
    match (start, end) {
        (true, true) => text == wanted,
        (true, false) => text.starts_with(wanted),
        (false, true) => text.ends_with(wanted),
        (false, false) => text.contains(wanted),
    }
}

fn build(topic: Topic, matches: Matches) -> Result<Command, ArgError> {
    let command = match topic {
        Topic::NetworkCreate => {
            operands(&matches, topic, 1, Some(1))?;
            Command::NetworkCreate(network_create(&matches)?)
        }
        Topic::NetworkRemove => {
            operands(&matches, topic, 1, None)?;
            Command::NetworkRemove {
                names: matches.text_operands(0)?,
                force: matches.is_set("force"),
            }
        }
        Topic::NetworkList => {
            operands(&matches, topic, 0, Some(0))?;
            Command::NetworkList {
                quiet: matches.is_set("quiet"),
                no_trunc: matches.is_set("no-trunc"),
                filters: NetworkFilter::parse_all(&matches.all("filter"))?,
            }
        }
        Topic::NetworkInspect => {
            operands(&matches, topic, 1, None)?;
            Command::NetworkInspect {
                names: matches.text_operands(0)?,
            }
        }
        Topic::NetworkConnect => {
            operands(&matches, topic, 2, None)?;
            let request = AttachRequest {
                ipv4: optional(&matches, "ip", values::ipv4)?,
                ipv6: optional(&matches, "ip6", values::ipv6)?,
            };
            let targets = targets(&matches)?;
            if targets.len() > 1 && request != AttachRequest::default() {
                return Err(ArgError::Usage(
                    "--ip and --ip6 give one container its address: connect several containers without them".into(),
                ));
            }
            Command::NetworkConnect(ConnectArgs {
                network: args::text(&matches.operands[0])?,
                targets,
                request,
            })
        }
        Topic::NetworkDisconnect => {
            operands(&matches, topic, 2, None)?;
            Command::NetworkDisconnect {
                network: args::text(&matches.operands[0])?,
                targets: targets(&matches)?,
            }
        }
        Topic::Run => Command::Run(run(&matches)?),
        Topic::Exec => {
            operands(&matches, topic, 2, None)?;
            Command::Exec(ExecArgs {
                container: args::text(&matches.operands[0])?,
                interactive: matches.is_set("interactive"),
                tty: matches.is_set("tty"),
                command: matches.operands[1..].to_vec(),
            })
        }
        Topic::Remove => {
            operands(&matches, topic, 1, None)?;
            Command::Remove {
                force: matches.is_set("force"),
                names: matches.text_operands(0)?,
            }
        }
        Topic::Ps => {
            operands(&matches, topic, 0, Some(0))?;
            Command::Ps {
                quiet: matches.is_set("quiet"),
            }
        }
        Topic::Restore => {
            operands(&matches, topic, 0, Some(0))?;
            Command::Restore
        }
        Topic::Doctor => {
            operands(&matches, topic, 0, Some(0))?;
            Command::Doctor
        }
        Topic::Version => {
            operands(&matches, topic, 0, Some(0))?;
            Command::Version { brief: false }
        }
        Topic::Root | Topic::Network => Command::Help(topic),
    };
    Ok(command)
}

/// The targets of `network connect|disconnect`, after the network: a path
/// as text too (the state records it so). Made one by one from the
/// operands: a batch's thousand are not copied once more on the way.
fn targets(matches: &Matches) -> Result<Vec<Target>, ArgError> {
    matches.operands[1..]
        .iter()
        .map(|operand| Ok(Target::from_arg(&args::text(operand)?)))
        .collect()
}

/// The last value of `long`, parsed; none when it is not given or empty
/// (Docker reads `--ip ""` as no address: a script's `--ip "$IP"` with
/// `IP` unset).
fn optional<T>(
    matches: &Matches,
    long: &str,
    parse: fn(&str, &str) -> Result<T, ArgError>,
) -> Result<Option<T>, ArgError> {
    matches
        .last(long)
        .filter(|value| !value.is_empty())
        .map(|value| parse(&spelled(long), value))
        .transpose()
}

/// `--long`, as an option's values are reported with.
#[inline(never)]
fn spelled(long: &str) -> String {
    format!("--{long}")
}

fn every<T>(
    matches: &Matches,
    long: &str,
    parse: fn(&str, &str) -> Result<T, ArgError>,
) -> Result<Vec<T>, ArgError> {
    gather(matches, long, false, parse)
}

/// [`every`] for an option Docker's CLI takes as a list (`--subnet
/// 192.168.1.0/24,2001:db8::/64`, as `--subnet` twice): each value split
/// at its commas, each part parsed in turn.
fn every_listed<T>(
    matches: &Matches,
    long: &str,
    parse: fn(&str, &str) -> Result<T, ArgError>,
) -> Result<Vec<T>, ArgError> {
    gather(matches, long, true, parse)
}

/// Each value of `--long` (each part of it, `listed`) parsed, in order.
fn gather<T>(
    matches: &Matches,
    long: &str,
    listed: bool,
    parse: fn(&str, &str) -> Result<T, ArgError>,
) -> Result<Vec<T>, ArgError> {
    let mut out = Vec::new();
    each_value(matches, long, listed, &mut |spelled, value| {
        out.push(parse(spelled, value)?);
        Ok(())
    })?;
    Ok(out)
}

/// Hands each value of `--long` (each comma-separated part of it, when
/// `listed`), in order, to `each` with the option's spelling; stops at its
/// first error. [`gather`]'s walk, kept once for every value type.
#[inline(never)]
fn each_value(
    matches: &Matches,
    long: &str,
    listed: bool,
    each: &mut dyn FnMut(&str, &str) -> Result<(), ArgError>,
) -> Result<(), ArgError> {
    let spelled = spelled(long);
    for value in matches.all(long) {
        // A list flag given empty is an empty list, as Docker's (a
        // script's `--subnet "$SUBNET"` with it unset).
        if listed && value.is_empty() {
            continue;
        }
        if listed {
            for part in value.split(',') {
                each(&spelled, part)?;
            }
        } else {
            each(&spelled, value)?;
        }
    }
    Ok(())
}

fn network_create(matches: &Matches) -> Result<NetworkCreate, ArgError> {
    let driver = matches.last("driver").unwrap_or("ipvlan").to_string();
    if driver != "ipvlan" {
        return Err(ArgError::Value(format!(
            "invalid value \"{driver}\" for --driver: only the ipvlan driver is supported"
        )));
    }
    let subnets = every_listed(matches, "subnet", values::cidr)?;
    // An IPv6 subnet turns IPv6 on (see the README); said off in so many
    // words beside one, the two contradict each other.
    if matches.last("ipv6") == Some("false") {
        if let Some(v6) = subnets.iter().find(|s| s.addr().is_ipv6()) {
            return Err(ArgError::Value(format!(
                "--ipv6=false contradicts the IPv6 subnet {v6}: leave --ipv6 out, or give no IPv6 subnet"
            )));
        }
    }
    Ok(NetworkCreate {
        name: args::text(&matches.operands[0])?,
        driver,
        subnets,
        gateways: every_listed(matches, "gateway", values::ip)?,
        ip_ranges: every_listed(matches, "ip-range", values::cidr)?,
        aux_addresses: every(matches, "aux-address", values::named_ip)?,
        ipv6: matches.is_set("ipv6"),
        internal: matches.is_set("internal"),
        options: every(matches, "opt", values::key_value)?,
    })
}

fn run(matches: &Matches) -> Result<RunArgs, ArgError> {
    let detach = matches.is_set("detach");
    let remove = matches.is_set("rm");
    if detach && remove {
        return Err(ArgError::Usage(
            "conflicting options: --rm and -d (--detach) cannot be combined".to_string(),
        ));
    }
    // An empty value is none, as Docker reads these (a script's
    // `--hostname "$H"` with `H` unset).
    let given = |long| matches.last(long).is_some_and(|value| !value.is_empty());
    // Docker's `-h` is `--hostname`, never help here: taken for help, a
    // script's `run -d -h web ...` made nothing and exited 0.
    if given("hostname") {
        return Err(ArgError::Value(
            "--hostname (-h) is not supported: a container here is a network namespace and keeps the host's hostname".to_string(),
        ));
    }
    // Docker's ipvlan driver: the link inherits its parent's MAC.
    if given("mac-address") {
        return Err(ArgError::Value(
            "ipvlan interfaces do not support custom mac address assignment".to_string(),
        ));
    }
    let mut warnings = Vec::new();
    if given("publish") {
        warnings.push("ipvlan driver does not support port mappings");
    }
    if given("expose") {
        warnings.push("ipvlan driver does not support port exposures");
    }
    // Every `--network` given, as Docker 25 takes them (before, the last
    // one alone, the others dropped without a word).
    let mut networks: Vec<String> = Vec::new();
    for network in matches.all("network") {
        if network.is_empty() {
            continue;
        }
        if networks.iter().any(|n| n == network) {
            return Err(ArgError::Usage(format!(
                "--network {network} is given twice"
            )));
        }
        networks.push(network.to_string());
    }
    if networks.is_empty() {
        return Err(ArgError::Usage("--network is required".to_string()));
    }
    if networks.len() > 1 && (given("ip") || given("ip6")) {
        return Err(ArgError::Usage(
            "--ip and --ip6 go with one --network: connect the other networks with `ipvlan network connect --ip`".to_string(),
        ));
    }
    Ok(RunArgs {
        networks,
        // Empty is none, as Docker reads it: a name is made up.
        name: matches
            .last("name")
            .filter(|name| !name.is_empty())
            .map(str::to_string),
        ipv4: optional(matches, "ip", values::ipv4)?,
        ipv6: optional(matches, "ip6", values::ipv6)?,
        detach,
        interactive: matches.is_set("interactive"),
        tty: matches.is_set("tty"),
        remove,
        command: matches.operands.clone(),
        warnings,
    })
}
