//! Every command's name, options and usage text, in docker's layout.

use super::args::{Flag, HELP};

/// A command (or command group) of the `ipvlan` command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// `ipvlan` itself: global options and the list of commands.
    Root,
    /// `ipvlan network`: the list of network commands.
    Network,
    /// `ipvlan network create`.
    NetworkCreate,
    /// `ipvlan network rm`.
    NetworkRemove,
    /// `ipvlan network ls`.
    NetworkList,
    /// `ipvlan network inspect`.
    NetworkInspect,
    /// `ipvlan network connect`.
    NetworkConnect,
    /// `ipvlan network disconnect`.
    NetworkDisconnect,
    /// `ipvlan run`.
    Run,
    /// `ipvlan exec`.
    Exec,
    /// `ipvlan rm`.
    Remove,
    /// `ipvlan ps`.
    Ps,
    /// `ipvlan restore`.
    Restore,
    /// `ipvlan doctor`.
    Doctor,
    /// `ipvlan version`.
    Version,
}

/// Subcommands of `ipvlan`, with their aliases, in help order.
pub const ROOT_COMMANDS: &[(&str, &[&str], Topic)] = &[
    ("network", &[], Topic::Network),
    ("run", &[], Topic::Run),
    ("exec", &[], Topic::Exec),
    ("ps", &[], Topic::Ps),
    ("rm", &[], Topic::Remove),
    ("restore", &[], Topic::Restore),
    ("doctor", &[], Topic::Doctor),
    ("version", &[], Topic::Version),
];

/// Subcommands of `ipvlan network`, with their aliases, in help order.
pub const NETWORK_COMMANDS: &[(&str, &[&str], Topic)] = &[
    ("connect", &[], Topic::NetworkConnect),
    ("create", &[], Topic::NetworkCreate),
    ("disconnect", &[], Topic::NetworkDisconnect),
    ("inspect", &[], Topic::NetworkInspect),
    ("ls", &["list"], Topic::NetworkList),
    ("rm", &["remove"], Topic::NetworkRemove),
];

/// Options accepted before the command.
pub const ROOT_FLAGS: &[Flag] = &[
    Flag::valued(
        "state-dir",
        None,
        "DIR",
        "State directory (default \"/var/lib/ipvlan\", or $IPVLAN_STATE_DIR)",
    ),
    Flag::boolean("version", Some('v'), "Print version information and quit"),
];

/// Options of `network create`.
pub const NETWORK_CREATE_FLAGS: &[Flag] = &[
    Flag::valued(
        "aux-address",
        None,
        "name=IP",
        "Auxiliary IPv4 or IPv6 address kept out of allocation (repeatable)",
    ),
    Flag::valued(
        "driver",
        Some('d'),
        "string",
        "Driver to manage the network (default \"ipvlan\", the only one)",
    ),
    Flag::valued(
        "gateway",
        None,
        "IP",
        "IPv4 or IPv6 gateway of the subnet that contains it (repeatable, or comma-separated)",
    ),
    Flag::boolean(
        "internal",
        None,
        "Restrict external access to the network (own dummy parent)",
    ),
    Flag::valued(
        "ip-range",
        None,
        "CIDR",
        "Allocate container addresses from a sub-range (repeatable, or comma-separated)",
    ),
    Flag::boolean("ipv6", None, "Enable IPv6 networking"),
    Flag::valued(
        "opt",
        Some('o'),
        "KEY=VALUE",
        "Driver option: parent, ipvlan_mode, ipvlan_flag, mtu (repeatable)",
    ),
    Flag::valued(
        "subnet",
        None,
        "CIDR",
        "Subnet in CIDR format that represents a network segment (repeatable, or comma-separated)",
    ),
];

/// Options of `network rm`.
pub const NETWORK_REMOVE_FLAGS: &[Flag] = &[Flag::boolean(
    "force",
    Some('f'),
    "Do not error if the network does not exist",
)];

/// Options of `network ls`.
pub const NETWORK_LIST_FLAGS: &[Flag] = &[
    Flag::valued(
        "filter",
        Some('f'),
        "KEY=VALUE",
        "Filter the networks: name, id, driver, type, scope, label, dangling (repeatable)",
    ),
    Flag::boolean("no-trunc", None, "Do not truncate the output"),
    Flag::boolean("quiet", Some('q'), "Only display network IDs"),
];

/// Options of `network connect`.
pub const NETWORK_CONNECT_FLAGS: &[Flag] = &[
    Flag::valued("ip", None, "IP", "IPv4 address"),
    Flag::valued("ip6", None, "IP", "IPv6 address"),
];

/// Options of `run`.
pub const RUN_FLAGS: &[Flag] = &[
    Flag::boolean(
        "detach",
        Some('d'),
        "Run the command in the background and print the container name",
    ),
    Flag::valued(
        "expose",
        None,
        "list",
        "Warned of and ignored, as Docker does",
    ),
    Flag::valued(
        "hostname",
        Some('h'),
        "string",
        "Refused: a container keeps the host's name",
    ),
    Flag::boolean(
        "interactive",
        Some('i'),
        "Keep STDIN open (not with -d: /dev/null then)",
    ),
    Flag::valued("ip", None, "IP", "IPv4 address (e.g., 172.30.100.104)"),
    Flag::valued("ip6", None, "IP", "IPv6 address (e.g., 2001:db8::33)"),
    Flag::valued(
        "mac-address",
        None,
        "string",
        "Refused, as Docker does for ipvlan",
    ),
    Flag::valued("name", None, "string", "Assign a name to the container"),
    Flag::valued(
        "network",
        None,
        "string",
        "Connect the container to a network (required; repeat for more)",
    )
    .with_aliases(&["net"]),
    Flag::valued(
        "publish",
        Some('p'),
        "list",
        "Warned of and ignored, as Docker does",
    ),
    Flag::boolean(
        "rm",
        None,
        "Automatically remove the container when the command exits",
    ),
    Flag::boolean("tty", Some('t'), "Accepted for docker compatibility"),
];

/// Options of `exec`.
pub const EXEC_FLAGS: &[Flag] = &[
    Flag::boolean("interactive", Some('i'), "Keep STDIN open"),
    Flag::boolean("tty", Some('t'), "Accepted for docker compatibility"),
];

/// Options of `rm`.
pub const REMOVE_FLAGS: &[Flag] = &[
    Flag::boolean(
        "force",
        Some('f'),
        "Kill the processes still running in the container and remove it",
    ),
    // Docker's scripts say `rm -fv`: a container here has no volumes.
    Flag::boolean(
        "volumes",
        Some('v'),
        "Remove the container's anonymous volumes (it has none: accepted for Docker's scripts)",
    ),
];

/// Options of `network disconnect`.
pub const NETWORK_DISCONNECT_FLAGS: &[Flag] = &[Flag::boolean(
    "force",
    Some('f'),
    "Force the container to disconnect (a disconnect never waits: accepted for Docker's scripts)",
)];

/// Options of `ps`.
pub const PS_FLAGS: &[Flag] = &[
    Flag::boolean(
        "all",
        Some('a'),
        "Show all containers (every one is shown: as Docker's `ps -a`, for scripts)",
    ),
    Flag::boolean("quiet", Some('q'), "Only display container names"),
];

impl Topic {
    /// The words that invoke it after `ipvlan` (empty for the root).
    pub fn path(self) -> &'static str {
        match self {
            Topic::Root => "",
            Topic::Network => "network",
            Topic::NetworkCreate => "network create",
            Topic::NetworkRemove => "network rm",
            Topic::NetworkList => "network ls",
            Topic::NetworkInspect => "network inspect",
            Topic::NetworkConnect => "network connect",
            Topic::NetworkDisconnect => "network disconnect",
            Topic::Run => "run",
            Topic::Exec => "exec",
            Topic::Remove => "rm",
            Topic::Ps => "ps",
            Topic::Restore => "restore",
            Topic::Doctor => "doctor",
            Topic::Version => "version",
        }
    }

    /// The options it accepts, besides `-h`/`--help` which every command takes.
    pub fn flags(self) -> &'static [Flag] {
        match self {
            Topic::Root => ROOT_FLAGS,
            Topic::NetworkCreate => NETWORK_CREATE_FLAGS,
            Topic::NetworkRemove => NETWORK_REMOVE_FLAGS,
            Topic::NetworkList => NETWORK_LIST_FLAGS,
            Topic::NetworkConnect => NETWORK_CONNECT_FLAGS,
            Topic::NetworkDisconnect => NETWORK_DISCONNECT_FLAGS,
            Topic::Run => RUN_FLAGS,
            Topic::Exec => EXEC_FLAGS,
            Topic::Remove => REMOVE_FLAGS,
            Topic::Ps => PS_FLAGS,
            _ => &[],
        }
    }

    fn synopsis(self) -> &'static str {
        match self {
            Topic::Root => "[OPTIONS] COMMAND",
            Topic::Network => "COMMAND",
            Topic::NetworkCreate => "[OPTIONS] NETWORK",
            Topic::NetworkRemove => "[OPTIONS] NETWORK [NETWORK...]",
            Topic::NetworkList => "[OPTIONS]",
            Topic::NetworkInspect => "NETWORK [NETWORK...]",
            Topic::NetworkConnect => {
                "[OPTIONS] NETWORK CONTAINER|NETNS-PATH [CONTAINER|NETNS-PATH...]"
            }
            Topic::NetworkDisconnect => {
                "[OPTIONS] NETWORK CONTAINER|NETNS-PATH [CONTAINER|NETNS-PATH...]"
            }
            Topic::Run => "[OPTIONS] [--] [COMMAND [ARG...]]",
            Topic::Exec => "[OPTIONS] CONTAINER COMMAND [ARG...]",
            Topic::Remove => "[OPTIONS] CONTAINER [CONTAINER...]",
            Topic::Ps => "[OPTIONS]",
            Topic::Restore | Topic::Doctor | Topic::Version => "",
        }
    }

    /// One line saying what the command does.
    pub fn summary(self) -> &'static str {
        match self {
            Topic::Root => "Docker's IPvlan networks without Docker",
            Topic::Network => "Manage networks",
            Topic::NetworkCreate => "Create a network",
            Topic::NetworkRemove => "Remove one or more networks",
            Topic::NetworkList => "List networks",
            Topic::NetworkInspect => "Display detailed information on one or more networks",
            Topic::NetworkConnect => "Connect a container or a network namespace to a network",
            Topic::NetworkDisconnect => {
                "Disconnect a container or a network namespace from a network"
            }
            Topic::Run => "Create a container, connect it to a network and run a command in it",
            Topic::Exec => "Run a command in a running container",
            Topic::Remove => "Remove one or more containers",
            Topic::Ps => "List containers",
            Topic::Restore => "Bring the kernel back in line with the stored networks",
            Topic::Doctor => "Check what this kernel and this process support",
            Topic::Version => "Show the ipvlan version information",
        }
    }

    /// Extra paragraph after the summary.
    fn details(self) -> Option<&'static str> {
        match self {
            Topic::Run => Some(
                "A container is a named network namespace (/run/netns/NAME). The first\n\
                 argument that is not an option starts COMMAND (default /bin/sh).\n\
                 With -d the container is created and attached, COMMAND (if given)\n\
                 runs in the background and the container name is printed.",
            ),
            Topic::NetworkConnect | Topic::NetworkDisconnect => Some(
                "An argument containing '/' is the path of a network namespace\n\
                 (e.g. /proc/PID/ns/net); anything else names a container.",
            ),
            Topic::Restore => Some(
                "Re-creates the parents ipvlan owns (dummy, VLAN) and the links of\n\
                 surviving containers; releases endpoints whose namespace is gone.\n\
                 Run it at boot and after a crash.",
            ),
            _ => None,
        }
    }

    pub(crate) fn subcommands(self) -> &'static [(&'static str, &'static [&'static str], Topic)] {
        match self {
            Topic::Root => ROOT_COMMANDS,
            Topic::Network => NETWORK_COMMANDS,
            _ => &[],
        }
    }

    /// Whether errors of this command exit with 125, like `docker run`, so they
    /// cannot be mistaken for the exit status of the command run inside.
    pub fn runs_a_command(self) -> bool {
        matches!(self, Topic::Run | Topic::Exec)
    }
}

/// The full usage text of `topic`, as printed by `--help`.
pub fn usage(topic: Topic) -> String {
    let mut text = String::new();
    let path = if topic == Topic::Root {
        "ipvlan".to_string()
    } else {
        format!("ipvlan {}", topic.path())
    };
    text.push_str(&format!("\nUsage:  {path} {}\n", topic.synopsis()).replace(" \n", "\n"));
    text.push_str(&format!("\n{}\n", topic.summary()));
    if let Some(details) = topic.details() {
        text.push_str(&format!("\n{details}\n"));
    }
    let subcommands = topic.subcommands();
    if !subcommands.is_empty() {
        text.push_str("\nCommands:\n");
        let width = subcommands
            .iter()
            .map(|(name, _, _)| name.len())
            .max()
            .unwrap_or(0);
        for (name, aliases, sub) in subcommands {
            let alias_note = if aliases.is_empty() {
                String::new()
            } else {
                format!(" (alias: {})", crate::text::join(aliases, ", "))
            };
            text.push_str(&format!(
                "  {name:width$}   {}{alias_note}\n",
                sub.summary()
            ));
        }
    }
    text.push_str("\nOptions:\n");
    text.push_str(&options_table(topic.flags()));
    if !subcommands.is_empty() {
        // `ipvlan help COMMAND` too, as `docker help`; said once, at the top.
        let or_help = if topic == Topic::Root {
            " (or 'ipvlan help COMMAND')"
        } else {
            ""
        };
        text.push_str(&format!(
            "\nRun '{path} COMMAND --help'{or_help} for more information on a command.\n"
        ));
    }
    text
}

fn options_table(flags: &[Flag]) -> String {
    // A command's own `-h` (`run --hostname`, as Docker's) takes the
    // letter from `--help`, as the parser gives it (`args::find_short`).
    let own_h = flags.iter().any(|flag| flag.short == HELP.short);
    let mut rows: Vec<(String, &str)> = flags
        .iter()
        .chain(std::iter::once(&HELP))
        .map(|flag| {
            let short = match flag.short {
                Some(_) if own_h && flag.long == HELP.long => "    ".to_string(),
                Some(letter) => format!("-{letter}, "),
                None => "    ".to_string(),
            };
            let aliases: String = flag
                .aliases
                .iter()
                .map(|alias| format!("--{alias}|"))
                .collect();
            let value = flag
                .value
                .map(|value| format!(" {value}"))
                .unwrap_or_default();
            (format!("{short}{aliases}--{}{value}", flag.long), flag.help)
        })
        .collect();
    crate::order::sort_by(&mut rows, |left, right| {
        left.0
            .trim_start_matches([' ', '-'])
            .cmp(right.0.trim_start_matches([' ', '-']))
    });
    let width = rows.iter().map(|(left, _)| left.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(left, help)| format!("  {left:width$}   {help}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[Topic] = &[
        Topic::Root,
        Topic::Network,
        Topic::NetworkCreate,
        Topic::NetworkRemove,
        Topic::NetworkList,
        Topic::NetworkInspect,
        Topic::NetworkConnect,
        Topic::NetworkDisconnect,
        Topic::Run,
        Topic::Exec,
        Topic::Remove,
        Topic::Ps,
        Topic::Restore,
        Topic::Doctor,
        Topic::Version,
    ];

    #[test]
    fn every_usage_names_its_command_and_every_option() {
        for &topic in ALL {
            let text = usage(topic);
            assert!(
                text.contains(format!("Usage:  ipvlan {}", topic.path()).trim_end()),
                "{text}"
            );
            let help_row = match topic {
                Topic::Run => "    --help",
                _ => "-h, --help",
            };
            assert!(text.contains(help_row), "{text}");
            for flag in topic.flags() {
                assert!(text.contains(&format!("--{}", flag.long)), "{text}");
                if let Some(letter) = flag.short {
                    assert!(text.contains(&format!("-{letter}, ")), "{text}");
                }
            }
        }
    }

    #[test]
    fn group_usage_lists_subcommands_and_aliases() {
        let text = usage(Topic::Network);
        for word in ["create", "rm", "ls", "inspect", "connect", "disconnect"] {
            assert!(text.contains(&format!("  {word} ")), "{text}");
        }
        assert!(text.contains("(alias: list)") && text.contains("(alias: remove)"));
    }

    #[test]
    fn option_help_texts_start_in_one_column() {
        let text = usage(Topic::Run);
        let columns: Vec<usize> = RUN_FLAGS
            .iter()
            .chain(std::iter::once(&HELP))
            .map(|flag| {
                let line = text
                    .lines()
                    .find(|line| line.contains(flag.help))
                    .expect("listed");
                line.find(flag.help).expect("help text shown")
            })
            .collect();
        assert!(columns.windows(2).all(|pair| pair[0] == pair[1]), "{text}");
    }
}
