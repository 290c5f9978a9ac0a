//! The records kept in the state directory and their JSON form.
//!
//! Every record carries `"version": 1`; reading refuses another version, a
//! missing field or a field of the wrong type (records are ours: anything
//! unexpected is corruption to report, not to guess around). Members this
//! version does not know are ignored.

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU64;
use std::str::FromStr;

use ipnet::IpNet;

use crate::ipam::SubnetSpec;
use crate::json::Value;
use crate::rtnl::{IpvlanFlag, IpvlanMode};

/// The record format version written and accepted.
pub const RECORD_VERSION: u64 = 1;

/// Why a record could not be read. A `Box<str>`, two words: a
/// `Result<(), RecordError>` is returned in registers (release binary
/// size over the readers' many `?`s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError(pub Box<str>);

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RecordError {}

fn bad(what: impl fmt::Display) -> RecordError {
    RecordError(what.to_string().into())
}

/// The error of field `key` whose `text` does not parse. Out of line: the
/// typed readers have a copy per type.
#[inline(never)]
fn invalid_value(key: &str, text: &str) -> RecordError {
    bad(format_args!("field \"{key}\": invalid value {text:?}"))
}

/// Typed access to an object's members with errors naming the field.
struct Fields<'a>(&'a Value);

impl<'a> Fields<'a> {
    fn of(value: &'a Value, kind: &str) -> Result<Self, RecordError> {
        if value.as_object().is_none() {
            return Err(bad(format_args!("{kind} record is not a JSON object")));
        }
        match value.get("version").and_then(Value::as_u64) {
            Some(RECORD_VERSION) => Ok(Fields(value)),
            Some(v) => Err(bad(format_args!(
                "{kind} record has version {v}, this program reads version {RECORD_VERSION}"
            ))),
            None => Err(bad(format_args!(
                "{kind} record has no numeric \"version\""
            ))),
        }
    }

    fn value(&self, key: &str) -> Result<&'a Value, RecordError> {
        self.0
            .get(key)
            .ok_or_else(|| bad(format_args!("missing field \"{key}\"")))
    }

    fn str(&self, key: &str) -> Result<&'a str, RecordError> {
        self.value(key)?
            .as_str()
            .ok_or_else(|| bad(format_args!("field \"{key}\" is not a string")))
    }

    /// A string a path is built from (a container's name, an id): one
    /// file name of the store's rule ([`is_valid_name`]), so that a record
    /// someone edited can never point a command outside its directories.
    fn name(&self, key: &str) -> Result<&'a str, RecordError> {
        let name = self.str(key)?;
        if !is_valid_name(name) {
            return Err(bad(format_args!(
                "field \"{key}\" is not a name ([A-Za-z0-9_.-], not starting with '.'): {name:?}"
            )));
        }
        Ok(name)
    }

    /// [`Fields::name`] that may be null.
    fn opt_name(&self, key: &str) -> Result<Option<&'a str>, RecordError> {
        if self.value(key)?.is_null() {
            return Ok(None);
        }
        self.name(key).map(Some)
    }

    fn opt_str(&self, key: &str) -> Result<Option<&'a str>, RecordError> {
        let v = self.value(key)?;
        if v.is_null() {
            return Ok(None);
        }
        v.as_str()
            .map(Some)
            .ok_or_else(|| bad(format_args!("field \"{key}\" is neither a string nor null")))
    }

    /// A number that may be null or absent (fields added after version 1
    /// was first written).
    fn opt_u64(&self, key: &str) -> Result<Option<u64>, RecordError> {
        match self.0.get(key) {
            None => Ok(None),
            Some(v) if v.is_null() => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| bad(format_args!("field \"{key}\" is neither a number nor null"))),
        }
    }

    fn bool(&self, key: &str) -> Result<bool, RecordError> {
        self.value(key)?
            .as_bool()
            .ok_or_else(|| bad(format_args!("field \"{key}\" is not a boolean")))
    }

    /// A boolean field records older than it lack: false then.
    fn bool_or_false(&self, key: &str) -> Result<bool, RecordError> {
        match self.0.get(key) {
            None => Ok(false),
            Some(_) => self.bool(key),
        }
    }

    /// The namespace identity of a record (`netns_dev`, `netns_ino` and,
    /// since kernels have it, `netns_cookie`; `netns_boot` since records
    /// carry it); `None` in records older than the identity fields.
    fn netns_id(&self) -> Result<Option<NetnsId>, RecordError> {
        Ok(
            match (
                self.opt_u64("netns_dev")?,
                self.opt_u64("netns_ino")?,
                self.opt_u64("netns_cookie")?,
            ) {
                (Some(dev), Some(ino), cookie) => Some(NetnsId {
                    dev,
                    ino,
                    cookie: cookie.and_then(NonZeroU64::new),
                    boot: self
                        .opt_u64("netns_boot")?
                        .map(|boot| {
                            u32::try_from(boot)
                                .map_err(|_| bad("field \"netns_boot\" is not a 32-bit number"))
                        })
                        .transpose()?,
                }),
                _ => None,
            },
        )
    }

    /// A subnet's `host` addresses, each inside it; none in records older
    /// than the field.
    fn host_addresses(&self, subnet: &IpNet) -> Result<Vec<IpAddr>, RecordError> {
        let Some(list) = self.0.get("host").filter(|v| !v.is_null()) else {
            return Ok(Vec::new());
        };
        let list = list
            .as_array()
            .ok_or_else(|| bad("field \"host\" is not an array"))?;
        list.iter()
            .map(|v| {
                v.as_str()
                    .and_then(|text| text.parse::<IpAddr>().ok())
                    .filter(|address| subnet.contains(address))
                    .ok_or_else(|| {
                        bad(format_args!(
                            "host address {v:?} is not an address of subnet {subnet}"
                        ))
                    })
            })
            .collect()
    }

    fn parsed<T: FromStr>(&self, key: &str) -> Result<T, RecordError> {
        let text = self.str(key)?;
        text.parse().map_err(|_| invalid_value(key, text))
    }

    /// An address with its prefix length, read as every user input is
    /// ([`crate::digits::parse_cidr`]; the writer writes none it refuses).
    fn cidr(&self, key: &str) -> Result<IpNet, RecordError> {
        let text = self.str(key)?;
        crate::digits::parse_cidr(text).ok_or_else(|| invalid_value(key, text))
    }

    /// An interface index, when the field is there: the kernel's are
    /// 1 ..= `i32::MAX` (`ifi_index` is an `int`); 0 asks it to look a
    /// link up by name, so a record's 0 would make every lookup of its
    /// link fail with `EINVAL` instead of naming the damage.
    fn opt_ifindex(&self, key: &str) -> Result<Option<u32>, RecordError> {
        self.opt_u64(key)?
            .map(|i| {
                u32::try_from(i)
                    .ok()
                    .filter(|i| (1..=i32::MAX as u32).contains(i))
                    .ok_or_else(|| bad(format_args!("field {key:?} is not an ifindex")))
            })
            .transpose()
    }

    /// [`Fields::cidr`], when the field is there.
    fn opt_cidr(&self, key: &str) -> Result<Option<IpNet>, RecordError> {
        self.opt_str(key)?
            .map(|text| crate::digits::parse_cidr(text).ok_or_else(|| invalid_value(key, text)))
            .transpose()
    }

    fn opt_parsed<T: FromStr>(&self, key: &str) -> Result<Option<T>, RecordError> {
        match self.opt_str(key)? {
            None => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|_| invalid_value(key, text)),
        }
    }

    fn string_map(&self, key: &str) -> Result<Vec<(String, String)>, RecordError> {
        let members = self
            .value(key)?
            .as_object()
            .ok_or_else(|| bad(format_args!("field \"{key}\" is not an object")))?;
        members
            .iter()
            .map(|(k, v)| {
                v.as_str()
                    .map(|s| (k.clone(), s.to_string()))
                    .ok_or_else(|| bad(format_args!("field \"{key}.{k}\" is not a string")))
            })
            .collect()
    }
}

fn string_map(members: &[(String, String)]) -> Value {
    Value::object(
        members
            .iter()
            .map(|(k, v)| (k.as_str(), Value::from(v.as_str()))),
    )
}

fn text_of<T: ToString>(v: &Option<T>) -> Value {
    Value::from(v.as_ref().map(ToString::to_string))
}

/// An address with its prefix as text, or `null` (see
/// [`crate::digits::ipnet_text`]).
fn net_text(net: &Option<IpNet>) -> Value {
    Value::from(net.as_ref().map(crate::digits::ipnet_text))
}

macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vdoc])* $variant),+ }

        impl $name {
            /// The text form used on the command line and in records.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = RecordError;
            fn from_str(s: &str) -> Result<Self, RecordError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(bad(format_args!("invalid {} {s:?}", stringify!($name)))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// Where a network is in its life: written `Creating` before the first
    /// kernel change, `Created` after the last, `Removing` before teardown.
    NetworkState { /** Being created. */ Creating = "creating", /** Usable. */ Created = "created", /** Being removed. */ Removing = "removing" }
);
text_enum!(
    /// Where an endpoint is in its life: written `Attaching` before the
    /// link is made, `Attached` after, `Detaching` before teardown;
    /// `Relinking` while `restore` makes the missing link of an attached
    /// endpoint again.
    EndpointState {
        /** Being attached. */ Attaching = "attaching",
        /** Attached. */ Attached = "attached",
        /** Being detached. */ Detaching = "detaching",
        /// Attached, its link being made again by `restore`: whatever link
        /// the record names may be half made (not configured, not renamed
        /// yet), so it is never kept as it is, nor looked for by name.
        /// Versions before it read such a record as damaged and leave it,
        /// and everything filed under it, alone.
        Relinking = "relinking",
    }
);

impl EndpointState {
    /// Whether the endpoint holds its attachment (listed, named in hosts
    /// files, kept by `restore`): `Attached`, or `Relinking`, which only
    /// its link's re-make sets apart.
    pub fn is_attached(self) -> bool {
        matches!(self, EndpointState::Attached | EndpointState::Relinking)
    }
}

/// Who made a network's parent link, which decides whether `network rm`
/// and `restore` may delete or re-create it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParentOrigin {
    /// An interface that existed before; never modified or deleted.
    Existing,
    /// An 802.1Q sub-interface we created on `link` with `vlan_id`.
    VlanCreated {
        /// The link the VLAN sits on (`eth0` of `eth0.20`).
        link: String,
        /// The VLAN id, 1..4094.
        vlan_id: u16,
    },
    /// A dummy link we created (no parent given, or `--internal`).
    DummyCreated,
}

impl ParentOrigin {
    fn to_json(&self) -> Value {
        match self {
            ParentOrigin::Existing => Value::object([("kind", Value::from("existing"))]),
            ParentOrigin::VlanCreated { link, vlan_id } => Value::object([
                ("kind", Value::from("vlan")),
                ("link", Value::from(link.as_str())),
                ("vlan_id", Value::from(*vlan_id)),
            ]),
            ParentOrigin::DummyCreated => Value::object([("kind", Value::from("dummy"))]),
        }
    }

    fn from_json(value: &Value) -> Result<Self, RecordError> {
        let fields = Fields(value);
        match fields.str("kind")? {
            "existing" => Ok(ParentOrigin::Existing),
            "dummy" => Ok(ParentOrigin::DummyCreated),
            "vlan" => {
                let vlan_id = fields
                    .value("vlan_id")?
                    .as_u64()
                    .and_then(|v| u16::try_from(v).ok())
                    .filter(|v| (1..=4094).contains(v))
                    .ok_or_else(|| bad("field \"vlan_id\" is not a VLAN id (1..4094)"))?;
                Ok(ParentOrigin::VlanCreated {
                    link: fields.str("link")?.to_string(),
                    vlan_id,
                })
            }
            other => Err(bad(format_args!("unknown parent origin {other:?}"))),
        }
    }
}

/// A point in time, UTC, written as RFC 3339 with nanoseconds
/// (`2024-05-01T12:00:00.123456789Z`, as `docker network inspect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    pub secs: u64,
    /// Nanoseconds within the second.
    pub nanos: u32,
}

impl Timestamp {
    /// The current time.
    pub fn now() -> Timestamp {
        let d = crate::sys::clock_now(libc::CLOCK_REALTIME);
        Timestamp {
            secs: d.as_secs(),
            nanos: d.subsec_nanos(),
        }
    }
}

impl Timestamp {
    /// Appends the timestamp as [`Display`](fmt::Display) writes it, digit
    /// by digit: `core::fmt`'s padded fields cost a thousand instructions
    /// a timestamp, and every record holds one.
    pub fn push_to(&self, out: &mut String) {
        /// `n`'s last `digits.len()` digits, zero-padded.
        fn padded(digits: &mut [u8], mut n: u64) {
            for digit in digits.iter_mut().rev() {
                *digit = b'0' + (n % 10) as u8;
                n /= 10;
            }
        }
        let days = self.secs / 86_400;
        let rem = self.secs % 86_400;
        let (y, m, d) = civil_from_days(days as i64);
        let mut text = *b"0000-00-00T00:00:00.000000000Z";
        // Years past 9999 (refused when read) in full, as `Display`
        // writes them, never cut to four digits.
        let from = if y > 9999 {
            crate::json::push_u64(out, y as u64);
            4
        } else {
            padded(&mut text[..4], y as u64);
            0
        };
        for (at, n, width) in [
            (5, u64::from(m), 2),
            (8, u64::from(d), 2),
            (11, rem / 3600, 2),
            (14, rem / 60 % 60, 2),
            (17, rem % 60, 2),
            (20, u64::from(self.nanos), 9),
        ] {
            padded(&mut text[at..at + width], n);
        }
        crate::json::push_ascii(out, &text[from..]);
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::with_capacity(30);
        self.push_to(&mut text);
        f.write_str(&text)
    }
}

impl FromStr for Timestamp {
    type Err = RecordError;

    /// Reads exactly the form [`Display`](fmt::Display) writes.
    fn from_str(s: &str) -> Result<Self, RecordError> {
        let err = || bad(format_args!("invalid timestamp {s:?}"));
        // Bytes, not `str` slices: a corrupt record may hold multi-byte
        // characters, and slicing inside one would panic.
        let b = s.as_bytes();
        let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
        if b.len() != 30
            || separators.iter().any(|&(i, c)| b[i] != c)
            || b[19] != b'.'
            || b[29] != b'Z'
        {
            return Err(err());
        }
        let num = |range: std::ops::Range<usize>| -> Result<u64, RecordError> {
            b[range].iter().try_fold(0u64, |n, &c| {
                if c.is_ascii_digit() {
                    Ok(n * 10 + u64::from(c - b'0'))
                } else {
                    Err(err())
                }
            })
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, sec, nanos) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..29)?);
        if !(1970..=9999).contains(&y)
            || !(1..=12).contains(&mo)
            || !(1..=31).contains(&d)
            || h > 23
            || mi > 59
            || sec > 59
        {
            return Err(err());
        }
        let days = days_from_civil(y as i64, mo as u32, d as u32);
        let stamp = Timestamp {
            secs: days as u64 * 86_400 + h * 3600 + mi * 60 + sec,
            nanos: nanos as u32,
        };
        // Days past the end of their month (02-30) would land in the next.
        if stamp.to_string() != s {
            return Err(err());
        }
        Ok(stamp)
    }
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (y, m, d).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The inverse of [`civil_from_days`].
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A network (`networks/<id>.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRecord {
    /// 64 lowercase hex digits.
    pub id: String,
    /// The user's name, unique.
    pub name: String,
    /// Always `ipvlan`.
    pub driver: String,
    /// `ipvlan_mode`.
    pub mode: IpvlanMode,
    /// `ipvlan_flag`.
    pub flag: IpvlanFlag,
    /// The parent link's name (`eth0`, `eth0.20`, `di-<short id>`).
    pub parent: String,
    /// Who made the parent.
    pub parent_origin: ParentOrigin,
    /// The ifindex of the parent we create, chosen at random and recorded
    /// before the create: the proof a link of the parent's name is the one
    /// we made (nobody else picks it), without which it is never deleted.
    /// `None` for a parent that existed, and in records of earlier
    /// releases.
    pub parent_index: Option<u32>,
    /// `--internal` or no parent.
    pub internal: bool,
    /// IPv6 enabled.
    pub ipv6: bool,
    /// `-o mtu=`, when given.
    pub mtu: Option<u32>,
    /// Subnets in the order given (IPv4 and IPv6).
    pub subnets: Vec<SubnetSpec>,
    /// Creation time.
    pub created: Timestamp,
    /// The `-o` options as the user gave them, in order.
    pub options: Vec<(String, String)>,
    /// Life-cycle state, the intent journal of create and rm.
    pub state: NetworkState,
}

impl NetworkRecord {
    /// The gateway of the subnet that holds `address`, if it has one.
    pub fn gateway_for(&self, address: IpAddr) -> Option<IpAddr> {
        self.subnets
            .iter()
            .find(|s| s.subnet.contains(&address))
            .and_then(|s| s.gateway)
    }

    /// The first 12 characters of the ID.
    pub fn short_id(&self) -> &str {
        self.id.get(..12).unwrap_or(&self.id)
    }

    /// The record's JSON form.
    pub fn to_json(&self) -> Value {
        let subnets = self
            .subnets
            .iter()
            .map(|s| {
                Value::object([
                    ("subnet", Value::from(s.subnet.to_string())),
                    ("gateway", text_of(&s.gateway)),
                    ("ip_range", text_of(&s.ip_range)),
                    (
                        "aux",
                        Value::object(
                            s.aux
                                .iter()
                                .map(|(k, v)| (k.as_str(), Value::from(v.to_string()))),
                        ),
                    ),
                    (
                        "host",
                        Value::from(
                            s.host
                                .iter()
                                .map(|a| Value::from(a.to_string()))
                                .collect::<Vec<_>>(),
                        ),
                    ),
                ])
            })
            .collect::<Vec<_>>();
        Value::object([
            ("version", Value::from(RECORD_VERSION)),
            ("id", Value::from(self.id.as_str())),
            ("name", Value::from(self.name.as_str())),
            ("driver", Value::from(self.driver.as_str())),
            ("mode", Value::from(self.mode.as_str())),
            ("flag", Value::from(self.flag.as_str())),
            ("parent", Value::from(self.parent.as_str())),
            ("parent_origin", self.parent_origin.to_json()),
            ("parent_index", Value::from(self.parent_index)),
            ("internal", Value::from(self.internal)),
            ("ipv6", Value::from(self.ipv6)),
            ("mtu", Value::from(self.mtu)),
            ("subnets", Value::from(subnets)),
            ("created", Value::from(self.created.to_string())),
            ("options", string_map(&self.options)),
            ("state", Value::from(self.state.as_str())),
        ])
    }

    /// Reads a record; refuses another version or a missing or mistyped field.
    #[inline(never)]
    pub fn from_json(value: &Value) -> Result<Self, RecordError> {
        let f = Fields::of(value, "network")?;
        let mtu = match f.value("mtu")? {
            Value::Null => None,
            v => Some(
                v.as_u64()
                    .and_then(|m| u32::try_from(m).ok())
                    .ok_or_else(|| bad("field \"mtu\" is not a number"))?,
            ),
        };
        let subnets = f
            .value("subnets")?
            .as_array()
            .ok_or_else(|| bad("field \"subnets\" is not an array"))?
            .iter()
            .map(|s| {
                let sf = Fields(s);
                let aux = sf
                    .string_map("aux")?
                    .into_iter()
                    .map(|(k, v)| {
                        v.parse::<IpAddr>().map(|a| (k, a)).map_err(|_| {
                            bad(format_args!("aux address {v:?} is not an IP address"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let subnet = sf.cidr("subnet")?;
                // Its address names its address files' directory: one with
                // host bits (an edit; never written so) would name another
                // than the one holding the addresses taken.
                if subnet.trunc() != subnet {
                    return Err(bad(format_args!(
                        "subnet {subnet} has host bits set (the network's address is {})",
                        subnet.network()
                    )));
                }
                let ip_range = sf.opt_cidr("ip_range")?;
                // Allocation walks the range as integers of the subnet's
                // family; a range outside the subnet would hand out
                // addresses that are not in it.
                if let Some(range) = ip_range.filter(|r| !subnet.contains(r)) {
                    return Err(bad(format_args!(
                        "ip_range {range} is not inside subnet {subnet}"
                    )));
                }
                Ok(SubnetSpec {
                    subnet,
                    gateway: sf.opt_parsed("gateway")?,
                    ip_range,
                    aux,
                    host: sf.host_addresses(&subnet)?,
                })
            })
            .collect::<Result<Vec<_>, RecordError>>()?;
        Ok(NetworkRecord {
            // Named in paths (its endpoints', addresses', hosts file's).
            id: f.name("id")?.to_string(),
            name: f.str("name")?.to_string(),
            driver: f.str("driver")?.to_string(),
            mode: f.parsed("mode")?,
            flag: f.parsed("flag")?,
            parent: f.str("parent")?.to_string(),
            parent_origin: ParentOrigin::from_json(f.value("parent_origin")?)?,
            parent_index: f.opt_ifindex("parent_index")?,
            internal: f.bool("internal")?,
            ipv6: f.bool("ipv6")?,
            mtu,
            subnets,
            created: f.parsed("created")?,
            options: f.string_map("options")?,
            state: f.parsed("state")?,
        })
    }
}

/// A network attachment of one namespace
/// (`endpoints/<network id>/<endpoint id>.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRecord {
    /// The endpoint's ID (a file name: `[A-Za-z0-9_.-]`, not starting with
    /// `.`): [`NetnsId::endpoint_id`] of the namespace attached; in records
    /// of older versions the container's name or `path_` and the path.
    pub id: String,
    /// The network's ID.
    pub network_id: String,
    /// The container's name, when it is one of ours.
    pub container: Option<String>,
    /// The network namespace (`/run/netns/NAME`, `/proc/PID/ns/net`),
    /// absolute and lexically normal; records of older versions may hold
    /// a relative path as it was typed.
    pub netns: String,
    /// The interface name inside the namespace (`eth0`).
    pub ifname: String,
    /// The link's MAC address, once known.
    pub mac: Option<String>,
    /// IPv4 address with the subnet's prefix length.
    pub ipv4: Option<IpNet>,
    /// IPv6 address with the subnet's prefix length.
    pub ipv6: Option<IpNet>,
    /// Life-cycle state, the intent journal of attach and detach.
    pub state: EndpointState,
    /// Creation time.
    pub created: Timestamp,
    /// Identity of the namespace attached, so a namespace re-created at the
    /// same path (a reused PID, a deleted and re-added name) is never taken
    /// for it. Absent in older records. Stored as `netns_dev`, `netns_ino`
    /// and `netns_cookie`.
    pub netns_id: Option<NetnsId>,
    /// The link's ifindex inside the namespace. In an intent record
    /// (`attaching`) it is written before the kernel is asked to make the
    /// link, and names the index the create asks for: the link, if made,
    /// has it, and restore undoes that link and no other. Absent in
    /// records of older versions, whose intents name only `ifname`.
    pub ifindex: Option<u32>,
}

/// A boot's id as the kernel prints it (`/proc/sys/kernel/random/boot_id`,
/// 36 characters without the newline).
pub type BootId = [u8; 36];

/// A boot as identities name it: the first 32 bits of its id (a random
/// UUID), which tell two boots apart but once in four billion and keep
/// records and identities small (a batch holds several a target).
pub fn boot_mark(id: &BootId) -> u32 {
    id.iter()
        .filter_map(|c| (*c as char).to_digit(16))
        .take(8)
        .fold(0, |mark, digit| mark << 4 | digit)
}

/// What tells one network namespace from every other one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetnsId {
    /// `st_dev` of its nsfs file.
    pub dev: u64,
    /// `st_ino` of its nsfs file: unique among living namespaces, but
    /// handed out again (lowest free first) once a namespace is freed.
    pub ino: u64,
    /// Its cookie (`SO_NETNS_COOKIE`), never reused within a boot; `None`
    /// before Linux 5.14 or in records older than the field.
    pub cookie: Option<NonZeroU64>,
    /// The boot it was seen in ([`boot_mark`]). No namespace outlives a
    /// boot, and both the cookie (a counter from 1 at every boot) and the
    /// inode come again in the next one: a namespace another tool makes
    /// early in a boot may carry the very identity ours had in the last.
    /// `None` in records older than the field.
    pub boot: Option<u32>,
}

impl NetnsId {
    /// The id of this namespace's endpoint records (one per network): from
    /// its cookie when the kernel gives one, which no other namespace ever
    /// gets, else from `st_dev` and `st_ino`. It starts with `_`, which no
    /// container name does, so it never meets an id of older versions (a
    /// container name, or `path_...`).
    ///
    /// ```
    /// use ipvlan::store::records::NetnsId;
    /// let id = NetnsId { dev: 4, ino: 4026532281, cookie: std::num::NonZeroU64::new(4097), boot: None };
    /// assert_eq!(id.endpoint_id(), "_netns_cookie_4097");
    /// let old_kernel = NetnsId { cookie: None, ..id };
    /// assert_eq!(old_kernel.endpoint_id(), "_netns_dev_4_ino_4026532281");
    /// ```
    pub fn endpoint_id(&self) -> String {
        match self.cookie {
            Some(cookie) => format!("_netns_cookie_{cookie}"),
            None => format!("_netns_dev_{}_ino_{}", self.dev, self.ino),
        }
    }

    /// Whether both name the same namespace: never when they were seen in
    /// different boots; then by cookie when both have one (it alone
    /// decides), else by `st_dev` and `st_ino`.
    pub fn same_namespace(&self, other: &NetnsId) -> bool {
        if let (Some(mine), Some(theirs)) = (self.boot, other.boot) {
            if mine != theirs {
                return false;
            }
        }
        match (self.cookie, other.cookie) {
            (Some(mine), Some(theirs)) => mine == theirs,
            _ => (self.dev, self.ino) == (other.dev, other.ino),
        }
    }

    /// [`NetnsId::same_namespace`] of two namespaces found at a path where
    /// a mount keeps the nsfs inode (a container's place), with the times
    /// each inode was made, where known
    /// ([`ContainerRecord::netns_inode_time`]): without a cookie on either
    /// side the inode number may be one handed out again, to a namespace
    /// made since, whose inode was made later.
    pub fn same_mounted_namespace(
        &self,
        inode_time: Option<NonZeroU64>,
        other: &NetnsId,
        other_inode_time: Option<NonZeroU64>,
    ) -> bool {
        self.same_namespace(other)
            && match (
                self.cookie.zip(other.cookie),
                inode_time.zip(other_inode_time),
            ) {
                (None, Some((mine, theirs))) => mine == theirs,
                _ => true,
            }
    }
}

impl EndpointRecord {
    /// The record's text, as [`EndpointRecord::to_json`]'s value writes it
    /// (`pretty`: as `to_pretty`, else as `to_compact`), written straight
    /// from the fields: an attach writes its record two or three times
    /// (intent, record, a batch's intents), and a tree of values first
    /// cost a quarter of a batch target's instructions.
    pub fn to_text(&self, pretty: bool) -> String {
        let mut object = crate::json::ObjectWriter::new(pretty);
        object
            .u64("version", RECORD_VERSION)
            .str("id", &self.id)
            .str("network_id", &self.network_id)
            .opt_str("container", self.container.as_deref())
            .str("netns", &self.netns)
            .str("ifname", &self.ifname)
            .opt_str("mac", self.mac.as_deref());
        for (key, net) in [("ipv4", &self.ipv4), ("ipv6", &self.ipv6)] {
            match net {
                Some(net) => object.plain_str(key, |out| crate::digits::push_ipnet(out, net)),
                None => object.null(key),
            };
        }
        object
            .str("state", self.state.as_str())
            .plain_str("created", |out| self.created.push_to(out))
            .opt_u64("netns_dev", self.netns_id.map(|id| id.dev))
            .opt_u64("netns_ino", self.netns_id.map(|id| id.ino))
            .opt_u64(
                "netns_cookie",
                self.netns_id.and_then(|id| id.cookie).map(NonZeroU64::get),
            )
            .opt_u64(
                "netns_boot",
                self.netns_id.and_then(|id| id.boot).map(u64::from),
            )
            .opt_u64("ifindex", self.ifindex.map(u64::from));
        object.finish()
    }

    /// The record's JSON form.
    pub fn to_json(&self) -> Value {
        Value::object([
            ("version", Value::from(RECORD_VERSION)),
            ("id", Value::from(self.id.as_str())),
            ("network_id", Value::from(self.network_id.as_str())),
            ("container", Value::from(self.container.clone())),
            ("netns", Value::from(self.netns.as_str())),
            ("ifname", Value::from(self.ifname.as_str())),
            ("mac", Value::from(self.mac.clone())),
            ("ipv4", net_text(&self.ipv4)),
            ("ipv6", net_text(&self.ipv6)),
            ("state", Value::from(self.state.as_str())),
            ("created", Value::from(self.created.to_string())),
            ("netns_dev", Value::from(self.netns_id.map(|id| id.dev))),
            ("netns_ino", Value::from(self.netns_id.map(|id| id.ino))),
            (
                "netns_cookie",
                Value::from(self.netns_id.and_then(|id| id.cookie).map(NonZeroU64::get)),
            ),
            (
                "netns_boot",
                Value::from(self.netns_id.and_then(|id| id.boot).map(u64::from)),
            ),
            ("ifindex", Value::from(self.ifindex)),
        ])
    }

    /// Reads a record; refuses another version or a missing or mistyped field.
    #[inline(never)]
    pub fn from_json(value: &Value) -> Result<Self, RecordError> {
        let f = Fields::of(value, "endpoint")?;
        Ok(EndpointRecord {
            id: f.name("id")?.to_string(),
            network_id: f.name("network_id")?.to_string(),
            container: f.opt_name("container")?.map(str::to_string),
            netns: f.str("netns")?.to_string(),
            ifname: f.str("ifname")?.to_string(),
            mac: f.opt_str("mac")?.map(str::to_string),
            ipv4: f.opt_cidr("ipv4")?,
            ipv6: f.opt_cidr("ipv6")?,
            state: f.parsed("state")?,
            created: f.parsed("created")?,
            netns_id: f.netns_id()?,
            ifindex: f.opt_ifindex("ifindex")?,
        })
    }
}

text_enum!(
    /// Where a container made by `run` is in its life: written `Creating`
    /// before its namespace exists, `Created` once every network it was
    /// run with is attached, `Removing` before `rm` takes anything away.
    /// `restore` rolls a `Creating` one back whole and finishes removing a
    /// `Removing` one.
    ContainerState { /** Being created and attached. */ Creating = "creating", /** Complete. */ Created = "created", /** Being removed. */ Removing = "removing" }
);

/// Hex digits of a network id that name its network where the whole id
/// would make a link's target too long to be held in its inode (ext4
/// keeps one under 60 bytes there; a longer one costs a block of its own,
/// nearly a new file's cost): a container's index, the short name of a
/// network's hosts file. `network create` keeps them unique among a
/// store's networks.
pub const NETWORK_KEY_LEN: usize = 16;

/// The key of network `id` (see [`NETWORK_KEY_LEN`]), or of a key,
/// itself: its first [`NETWORK_KEY_LEN`] characters, or all of a shorter
/// one.
pub fn network_key(id: &str) -> &str {
    id.get(..NETWORK_KEY_LEN).unwrap_or(id)
}

/// Whether `name` can serve as a file name in the store (and so as a
/// name read from a record that a path is built from): 1 to 128 of
/// `[A-Za-z0-9_.-]`, not starting with `.`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name.bytes().all(|b| NAME_BYTES[b as usize])
}

/// The bytes [`is_valid_name`] allows, by value: one lookup a byte (a
/// connect checks some fourteen ids of 64 bytes, and four ranges a byte
/// cost 3% of its instructions).
const NAME_BYTES: [bool; 256] = {
    let mut allowed = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        allowed[b] = c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-';
        b += 1;
    }
    allowed
};

/// A container the driver made (`records/containers/<name>.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRecord {
    /// The container's name: its namespace is `<netns dir>/<name>`.
    pub name: String,
    /// Creation time; `None` when a record written before container
    /// records were typed holds none in the form this version writes.
    pub created: Option<Timestamp>,
    /// Life-cycle state, the intent journal of `run`. Records older than
    /// the field read as [`ContainerState::Created`].
    pub state: ContainerState,
    /// IDs of the networks it was run with, in order (empty in older
    /// records and for containers made without networks).
    pub networks: Vec<String>,
    /// Identity of the namespace made for it, written before the
    /// namespace is given its name, so a namespace someone else put at the
    /// same path is never taken for ours. Absent in older records.
    pub netns_id: Option<NetnsId>,
    /// When that namespace's nsfs inode was made
    /// ([`crate::netns::Netns::inode_time`]), which the mount at its name
    /// keeps for as long as it is mounted: on a kernel without cookies
    /// (before 5.14), which hands a freed inode number out again at once,
    /// the one thing that tells ours from a namespace another tool put at
    /// the name since (see [`NetnsId::same_mounted_namespace`]). Absent in
    /// older records.
    pub netns_inode_time: Option<NonZeroU64>,
    /// Set on a record [`ContainerState::Removing`] by an `rm` without
    /// force, which kills nothing: `restore` finishes it without a kill,
    /// or undoes it (see `processes_looked_at`). Absent (false) in older
    /// records: what is inside is killed, as `rm -f` does.
    pub keep_processes: bool,
    /// With `keep_processes`: that `rm` looked for processes inside again
    /// once its mark was written, found none, and went on (or the record
    /// it marked was not a whole container's, nor one such an `rm` left
    /// before its look: something may have changed already). Before that
    /// look, it would still have refused a process that came in: `restore`
    /// finding one then undoes the removal, as that `rm` would have; after
    /// it, leaves the process running in the namespace, now unnamed, as
    /// that `rm` leaves what starts after its last look.
    pub processes_looked_at: bool,
}

impl ContainerRecord {
    /// A complete container on no network, made now.
    pub fn created(name: &str) -> ContainerRecord {
        ContainerRecord {
            name: name.to_string(),
            created: Some(Timestamp::now()),
            state: ContainerState::Created,
            networks: Vec::new(),
            netns_id: None,
            netns_inode_time: None,
            keep_processes: false,
            processes_looked_at: false,
        }
    }

    /// The record's JSON form.
    pub fn to_json(&self) -> Value {
        Value::object([
            ("version", Value::from(RECORD_VERSION)),
            ("name", Value::from(self.name.as_str())),
            ("created", text_of(&self.created)),
            ("state", Value::from(self.state.as_str())),
            (
                "networks",
                Value::from(
                    self.networks
                        .iter()
                        .map(|id| Value::from(id.as_str()))
                        .collect::<Vec<_>>(),
                ),
            ),
            ("netns_dev", Value::from(self.netns_id.map(|id| id.dev))),
            ("netns_ino", Value::from(self.netns_id.map(|id| id.ino))),
            (
                "netns_cookie",
                Value::from(self.netns_id.and_then(|id| id.cookie).map(NonZeroU64::get)),
            ),
            (
                "netns_boot",
                Value::from(self.netns_id.and_then(|id| id.boot).map(u64::from)),
            ),
            (
                "netns_inode_time",
                Value::from(self.netns_inode_time.map(NonZeroU64::get)),
            ),
            ("keep_processes", Value::from(self.keep_processes)),
            ("processes_looked_at", Value::from(self.processes_looked_at)),
        ])
    }

    /// Reads a record; refuses another version or a missing or mistyped
    /// field. `state`, `networks`, the removal's fields and the namespace
    /// identity may be absent
    /// (records written before them): `created`, none, unknown; so may a
    /// creation time in the form this version writes, which nothing
    /// decides on.
    pub fn from_json(value: &Value) -> Result<Self, RecordError> {
        let f = Fields::of(value, "container")?;
        let state = match value.get("state") {
            None => ContainerState::Created,
            Some(_) => f.parsed("state")?,
        };
        let networks = match value.get("networks") {
            None => Vec::new(),
            Some(list) => list
                .as_array()
                .ok_or_else(|| bad("field \"networks\" is not an array"))?
                .iter()
                .map(|id| {
                    id.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad("field \"networks\" holds a non-string"))
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(ContainerRecord {
            name: f.name("name")?.to_string(),
            created: value
                .get("created")
                .and_then(Value::as_str)
                .and_then(|text| text.parse().ok()),
            state,
            networks,
            netns_id: f.netns_id()?,
            netns_inode_time: f.opt_u64("netns_inode_time")?.and_then(NonZeroU64::new),
            keep_processes: f.bool_or_false("keep_processes")?,
            processes_looked_at: f.bool_or_false("processes_looked_at")?,
        })
    }
}

/// Records for the crate's unit tests: a network on `lo` in mode l2 and
/// an endpoint attached to it, the rest plain.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// Network `name`, its id `id` 64 times, with `subnets`.
    pub(crate) fn network(name: &str, id: char, subnets: Vec<SubnetSpec>) -> NetworkRecord {
        NetworkRecord {
            id: id.to_string().repeat(64),
            name: name.into(),
            driver: "ipvlan".into(),
            mode: IpvlanMode::L2,
            flag: IpvlanFlag::Bridge,
            parent: "lo".into(),
            parent_origin: ParentOrigin::Existing,
            parent_index: None,
            internal: false,
            ipv6: false,
            mtu: None,
            subnets,
            created: Timestamp::now(),
            options: Vec::new(),
            state: NetworkState::Created,
        }
    }

    /// Endpoint `id` of `network`, container `container`, address `addr`
    /// (CIDR), attached.
    pub(crate) fn endpoint(
        network: &NetworkRecord,
        id: &str,
        container: &str,
        addr: &str,
    ) -> EndpointRecord {
        EndpointRecord {
            id: id.into(),
            network_id: network.id.clone(),
            container: Some(container.into()),
            netns: format!("/run/netns/{container}"),
            ifname: "eth0".into(),
            mac: None,
            ipv4: Some(addr.parse().expect("a CIDR")),
            ipv6: None,
            state: EndpointState::Attached,
            created: Timestamp::now(),
            netns_id: None,
            ifindex: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_name_is_letters_digits_and_three_marks_not_led_by_a_dot() {
        for b in 0..=255u8 {
            let allowed = b.is_ascii_alphanumeric() || b"_.-".contains(&b);
            let name = [b'a', b];
            assert_eq!(
                std::str::from_utf8(&name).is_ok_and(is_valid_name),
                allowed && b < 0x80,
                "byte {b:#04x}"
            );
        }
        assert!(is_valid_name("_netns_cookie_4099"));
        assert!(is_valid_name(&"f".repeat(128)));
        assert!(!is_valid_name(&"f".repeat(129)));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name(".hidden"));
        assert!(!is_valid_name("a/b"));
        assert!(!is_valid_name("é"));
    }

    #[test]
    fn a_relinking_endpoint_reads_back_and_counts_as_attached() {
        let states = [
            (EndpointState::Attaching, false),
            (EndpointState::Attached, true),
            (EndpointState::Detaching, false),
            (EndpointState::Relinking, true),
        ];
        for (state, attached) in states {
            assert_eq!(state.as_str().parse::<EndpointState>().unwrap(), state);
            assert_eq!(state.is_attached(), attached, "{state}");
        }
        assert_eq!(EndpointState::Relinking.as_str(), "relinking");
        // As a version without the value reads it: damage, never a guess.
        assert!("relinked".parse::<EndpointState>().is_err());
    }

    #[test]
    fn endpoint_identity_fields_are_optional() {
        let record = EndpointRecord {
            id: "c1".into(),
            network_id: "n".into(),
            container: Some("c1".into()),
            netns: "/run/netns/c1".into(),
            ifname: "eth0".into(),
            mac: None,
            ipv4: Some("10.0.0.2/24".parse().unwrap()),
            ipv6: None,
            state: EndpointState::Attached,
            created: Timestamp::now(),
            netns_id: Some(NetnsId {
                dev: 4,
                ino: 4026532281,
                cookie: NonZeroU64::new(u64::MAX - 1),
                boot: Some(boot_mark(b"2f3c8a4e-6b1d-4c59-9e7a-0d5b8c1f4a62")),
            }),
            ifindex: Some(1048577),
        };
        let json = record.to_json();
        assert_eq!(EndpointRecord::from_json(&json).unwrap(), record);
        // A record written before these fields existed still reads.
        let older = match json {
            Value::Object(members) => Value::Object(
                members
                    .into_iter()
                    .filter(|(k, _)| {
                        !matches!(
                            k.as_str(),
                            "netns_dev" | "netns_ino" | "netns_cookie" | "netns_boot" | "ifindex"
                        )
                    })
                    .collect(),
            ),
            _ => unreachable!(),
        };
        let read = EndpointRecord::from_json(&older).unwrap();
        assert_eq!((read.netns_id, read.ifindex), (None, None));
    }

    #[test]
    fn an_endpoint_records_text_is_its_values_text() {
        let full = EndpointRecord {
            id: "_netns_cookie_4097".into(),
            network_id: "b".repeat(64),
            container: Some("web".into()),
            netns: "/run/netns/web \"quoted\"".into(),
            ifname: "eth0".into(),
            mac: Some("02:42:0a:09:00:07".into()),
            ipv4: Some("10.9.0.7/16".parse().unwrap()),
            ipv6: Some("2001:db8::7/64".parse().unwrap()),
            state: EndpointState::Attached,
            created: Timestamp {
                secs: 1_796_132_084,
                nanos: 7,
            },
            netns_id: Some(NetnsId {
                dev: 4,
                ino: 4026532281,
                cookie: NonZeroU64::new(u64::MAX),
                boot: Some(boot_mark(b"2f3c8a4e-6b1d-4c59-9e7a-0d5b8c1f4a62")),
            }),
            ifindex: Some(2),
        };
        let bare = EndpointRecord {
            container: None,
            mac: None,
            ipv4: None,
            ipv6: None,
            state: EndpointState::Attaching,
            netns_id: Some(NetnsId {
                cookie: None,
                ..full.netns_id.unwrap()
            }),
            ifindex: None,
            ..full.clone()
        };
        let oldest = EndpointRecord {
            netns_id: None,
            ..bare.clone()
        };
        for record in [full, bare, oldest] {
            let value = record.to_json();
            assert_eq!(record.to_text(true), value.to_pretty().unwrap());
            assert_eq!(record.to_text(false), value.to_compact().unwrap());
            let read =
                EndpointRecord::from_json(&crate::json::parse(&record.to_text(true)).unwrap())
                    .unwrap();
            assert_eq!(read, record);
        }
    }

    #[test]
    fn timestamps_are_written_as_the_format_writes_them() {
        let far = days_from_civil(9999, 12, 31) as u64 * 86_400 + 86_399;
        for (secs, nanos) in [
            (0, 0),
            (1_796_132_084, 7),
            (1_796_132_084, 999_999_999),
            (951_782_400, 123_000_000),
            (far, 1),
            (far + 86_400, 5),
        ] {
            let stamp = Timestamp { secs, nanos };
            let (days, rem) = (secs / 86_400, secs % 86_400);
            let (y, m, d) = civil_from_days(days as i64);
            let expected = format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
                rem / 3600,
                rem / 60 % 60,
                rem % 60
            );
            assert_eq!(stamp.to_string(), expected);
        }
        assert_eq!(
            Timestamp { secs: 0, nanos: 0 }.to_string(),
            "1970-01-01T00:00:00.000000000Z"
        );
    }

    #[test]
    fn network_parent_index_round_trips_and_older_records_have_none() {
        let record = NetworkRecord {
            id: "a".repeat(64),
            name: "n".into(),
            driver: "ipvlan".into(),
            mode: IpvlanMode::L2,
            flag: IpvlanFlag::Bridge,
            parent: "eth0.20".into(),
            parent_origin: ParentOrigin::VlanCreated {
                link: "eth0".into(),
                vlan_id: 20,
            },
            parent_index: Some(1 << 21),
            internal: false,
            ipv6: false,
            mtu: None,
            subnets: Vec::new(),
            created: Timestamp::now(),
            options: Vec::new(),
            state: NetworkState::Creating,
        };
        let json = record.to_json();
        assert_eq!(NetworkRecord::from_json(&json).unwrap(), record);
        let with = |index: Option<Value>| match json.clone() {
            Value::Object(members) => Value::Object(
                members
                    .into_iter()
                    .filter_map(|(k, v)| match k.as_str() {
                        "parent_index" => index.clone().map(|i| (k, i)),
                        _ => Some((k, v)),
                    })
                    .collect(),
            ),
            _ => unreachable!(),
        };
        // Written before the field existed.
        let read = NetworkRecord::from_json(&with(None)).unwrap();
        assert_eq!(read.parent_index, None);
        for bad in [Value::from(0u32), Value::from(u64::from(u32::MAX) + 1)] {
            assert_eq!(
                NetworkRecord::from_json(&with(Some(bad)))
                    .unwrap_err()
                    .to_string(),
                "field \"parent_index\" is not an ifindex"
            );
        }
    }

    /// An attached endpoint of a namespace given by path, without an
    /// address, identity or index.
    fn path_endpoint() -> EndpointRecord {
        EndpointRecord {
            id: "c1".into(),
            network_id: "n".into(),
            container: None,
            netns: "/proc/4242/ns/net".into(),
            ifname: "eth0".into(),
            mac: None,
            ipv4: None,
            ipv6: None,
            state: EndpointState::Attached,
            created: Timestamp::now(),
            netns_id: None,
            ifindex: None,
        }
    }

    /// An endpoint's link index outside the kernel's (0, or past an
    /// `int`) is damage named as such; before, 0 was read, and every
    /// lookup of the link failed with the kernel's `EINVAL`.
    #[test]
    fn an_endpoint_ifindex_outside_the_kernels_is_damage() {
        let record = EndpointRecord {
            ifindex: Some(i32::MAX as u32),
            ..path_endpoint()
        };
        let text = record.to_json().to_compact().unwrap();
        let read = |text: &str| EndpointRecord::from_json(&crate::json::parse(text).unwrap());
        assert_eq!(read(&text).unwrap(), record);
        let max = i32::MAX.to_string();
        for bad in ["0", "2147483648", "4294967296"] {
            let damaged = text.replace(&max, bad);
            assert_eq!(
                read(&damaged).unwrap_err().to_string(),
                "field \"ifindex\" is not an ifindex",
                "{bad}"
            );
        }
    }

    #[test]
    fn endpoint_netns_cookie_round_trips_with_and_without() {
        let mut record = EndpointRecord {
            ipv4: Some("10.0.0.2/24".parse().unwrap()),
            ..path_endpoint()
        };
        let with = NetnsId {
            dev: 4,
            ino: 4026532281,
            cookie: NonZeroU64::new(12345),
            boot: None,
        };
        record.netns_id = Some(with);
        let read = EndpointRecord::from_json(&parse_json(&record.to_json())).unwrap();
        assert_eq!(
            read.netns_id.and_then(|id| id.cookie),
            NonZeroU64::new(12345)
        );
        assert_eq!(read.netns_id, Some(with));

        // Recorded on a kernel without cookies: dev/ino only.
        let without = NetnsId {
            cookie: None,
            ..with
        };
        record.netns_id = Some(without);
        let json = record.to_json();
        assert!(json.get("netns_cookie").unwrap().is_null());
        let read = EndpointRecord::from_json(&parse_json(&json)).unwrap();
        assert_eq!(read.netns_id, Some(without));

        // A record written before the field existed.
        let older = match json {
            Value::Object(members) => Value::Object(
                members
                    .into_iter()
                    .filter(|(k, _)| k != "netns_cookie")
                    .collect(),
            ),
            _ => unreachable!(),
        };
        let read = EndpointRecord::from_json(&parse_json(&older)).unwrap();
        assert_eq!(read, record);
    }

    /// Through the text form, as records are stored.
    fn parse_json(value: &Value) -> Value {
        crate::json::parse(&value.to_compact().unwrap()).unwrap()
    }

    #[test]
    fn netns_cookie_alone_decides_when_both_have_one() {
        let ours = NetnsId {
            dev: 4,
            ino: 4026532281,
            cookie: NonZeroU64::new(7),
            boot: None,
        };
        // The inode reused by a later namespace: the cookie tells them apart.
        let reused_inode = NetnsId {
            cookie: NonZeroU64::new(9),
            ..ours
        };
        assert!(!ours.same_namespace(&reused_inode));
        assert!(ours.same_namespace(&ours));
        // Without a cookie on either side, dev/ino decide as before.
        let no_cookie = NetnsId {
            cookie: None,
            ..ours
        };
        assert!(ours.same_namespace(&no_cookie));
        assert!(no_cookie.same_namespace(&ours));
        let other_inode = NetnsId {
            ino: ours.ino + 1,
            cookie: None,
            ..ours
        };
        assert!(!ours.same_namespace(&other_inode));
    }

    #[test]
    fn without_cookies_the_inodes_time_tells_a_namespace_that_got_our_inode() {
        // Kernels before 5.14: no cookie, and the freed inode number is
        // handed out again at once. The mount at a container's name keeps
        // its inode, made once: another namespace's is made later.
        let ours = NetnsId {
            dev: 4,
            ino: 4026532281,
            cookie: None,
            boot: None,
        };
        let (made, later) = (
            NonZeroU64::new(1_796_453_044_541_967_881),
            NonZeroU64::new(1_796_453_051_002_114_305),
        );
        assert!(ours.same_namespace(&ours), "the inode number alone");
        assert!(!ours.same_mounted_namespace(made, &ours, later));
        assert!(!ours.same_mounted_namespace(later, &ours, made));
        assert!(ours.same_mounted_namespace(made, &ours, made));
        // A time unknown on either side (a record older than the field):
        // the inode decides, as before.
        assert!(ours.same_mounted_namespace(None, &ours, later));
        assert!(ours.same_mounted_namespace(made, &ours, None));
        // Another inode is another namespace whatever the times.
        let other_inode = NetnsId {
            ino: ours.ino + 1,
            ..ours
        };
        assert!(!ours.same_mounted_namespace(made, &other_inode, made));
        // With cookies on both sides, the cookie alone decides: the same
        // namespace mounted again has a new inode, with a new time.
        let cookie = NetnsId {
            cookie: NonZeroU64::new(7),
            ..ours
        };
        assert!(cookie.same_mounted_namespace(made, &cookie, later));
    }

    #[test]
    fn an_identity_seen_in_another_boot_is_another_namespace() {
        // Cookies count from 1 at every boot and inodes are handed out
        // again: the same numbers in two boots are two namespaces.
        let last_boot = NetnsId {
            dev: 4,
            ino: 4026532281,
            cookie: NonZeroU64::new(7),
            boot: Some(boot_mark(b"2f3c8a4e-6b1d-4c59-9e7a-0d5b8c1f4a62")),
        };
        let this_boot = NetnsId {
            boot: Some(boot_mark(b"9c0e7d21-5a3b-4f18-8b6c-e2a4d7f90b35")),
            ..last_boot
        };
        assert_eq!(last_boot.boot, Some(0x2f3c_8a4e));
        assert!(!last_boot.same_namespace(&this_boot));
        assert!(!this_boot.same_namespace(&last_boot));
        // Without cookies too (kernels before 5.14: the inode alone).
        let (old_kernel_last, old_kernel_this) = (
            NetnsId {
                cookie: None,
                ..last_boot
            },
            NetnsId {
                cookie: None,
                ..this_boot
            },
        );
        assert!(!old_kernel_last.same_namespace(&old_kernel_this));
        assert!(this_boot.same_namespace(&this_boot));
        // A record older than the field is taken as before.
        let unknown = NetnsId {
            boot: None,
            ..last_boot
        };
        assert!(unknown.same_namespace(&this_boot));
    }

    #[test]
    fn container_records_round_trip_and_older_ones_read_as_created() {
        let record = ContainerRecord {
            name: "web".into(),
            created: Some(Timestamp::now()),
            state: ContainerState::Creating,
            networks: vec!["ab".repeat(32), "cd".repeat(32)],
            netns_id: Some(NetnsId {
                dev: 4,
                ino: 4026532281,
                cookie: NonZeroU64::new(77),
                boot: Some(boot_mark(b"2f3c8a4e-6b1d-4c59-9e7a-0d5b8c1f4a62")),
            }),
            netns_inode_time: NonZeroU64::new(1_796_453_044_541_967_881),
            keep_processes: true,
            processes_looked_at: true,
        };
        let read = ContainerRecord::from_json(&parse_json(&record.to_json())).unwrap();
        assert_eq!(read, record);
        // What versions before the state existed wrote.
        let older = crate::json::parse(
            r#"{"version": 1, "name": "web", "created": "2024-05-01T12:00:00.123456789Z"}"#,
        )
        .unwrap();
        let read = ContainerRecord::from_json(&older).unwrap();
        assert_eq!(read.state, ContainerState::Created);
        assert!(read.networks.is_empty());
        assert_eq!((read.netns_id, read.netns_inode_time), (None, None));
        assert!(!read.keep_processes && !read.processes_looked_at);
        assert!(read.created.is_some());
        // A time in another form, or none, is no damage: nothing decides on it.
        for created in [r#""created": "2024-01-01T00:00:00Z", "#, ""] {
            let text = format!(r#"{{"version": 1, {created}"name": "web"}}"#);
            let read = ContainerRecord::from_json(&crate::json::parse(&text).unwrap()).unwrap();
            assert_eq!((read.name.as_str(), read.created), ("web", None));
        }
        for (bad_record, why) in [
            (
                r#"{"version": 1, "name": "w", "created": "2024-05-01T12:00:00.123456789Z", "state": "half"}"#,
                "field \"state\": invalid value \"half\"",
            ),
            (
                r#"{"version": 1, "name": "w", "created": "2024-05-01T12:00:00.123456789Z", "networks": "n"}"#,
                "field \"networks\" is not an array",
            ),
            (
                r#"{"version": 1, "name": "w", "created": "2024-05-01T12:00:00.123456789Z", "networks": [1]}"#,
                "field \"networks\" holds a non-string",
            ),
            (
                r#"{"version": 2, "name": "w"}"#,
                "container record has version 2, this program reads version 1",
            ),
        ] {
            let value = crate::json::parse(bad_record).unwrap();
            let error = ContainerRecord::from_json(&value).unwrap_err();
            assert!(error.0.contains(why), "{bad_record}: {error}");
        }
    }
}
