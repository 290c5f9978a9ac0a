//! The CNI result: read from `prevResult` or a delegated IPAM plugin in any
//! version we speak, written in the request's version.
//!
//! One shape covers them all: 0.3.0 to 1.1.0 differ only in `ips[].version`
//! (0.3.x and 0.4.0) and in 1.1.0's optional fields, which are written only
//! for 1.1.0 and read from any.

use std::net::IpAddr;

use ipnet::IpNet;

use super::error::{CniError, ErrorCode};
use super::read::Obj;
use super::version::Version;
use crate::json::Value;

/// A result.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CniResult {
    /// The interfaces the chain created or used.
    pub interfaces: Vec<Interface>,
    /// The addresses, each optionally pointing into `interfaces`.
    pub ips: Vec<IpConfig>,
    /// The routes.
    pub routes: Vec<Route>,
    /// DNS settings; empty ones are not written.
    pub dns: Dns,
}

/// One entry of `interfaces`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interface {
    /// The interface name.
    pub name: String,
    /// Its hardware address, as text.
    pub mac: Option<String>,
    /// Its MTU (written from 1.1.0).
    pub mtu: Option<u32>,
    /// The namespace path for a container interface; none on the host.
    pub sandbox: Option<String>,
    /// A vhost-user socket (written from 1.1.0).
    pub socket_path: Option<String>,
    /// A PCI address (written from 1.1.0).
    pub pci_id: Option<String>,
}

/// One entry of `ips`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpConfig {
    /// The address with its prefix length.
    pub address: IpNet,
    /// The gateway, if any.
    pub gateway: Option<IpAddr>,
    /// The index into `interfaces` of the interface holding it.
    pub interface: Option<usize>,
}

/// One entry of `routes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The destination.
    pub dst: IpNet,
    /// The next hop; none means the default gateway of its family.
    pub gw: Option<IpAddr>,
    /// Route MTU (1.1.0).
    pub mtu: Option<u32>,
    /// Advertised MSS (1.1.0).
    pub advmss: Option<u32>,
    /// Metric (1.1.0).
    pub priority: Option<u32>,
    /// Routing table (1.1.0).
    pub table: Option<u32>,
    /// Scope (1.1.0).
    pub scope: Option<u8>,
}

impl Route {
    /// Reads a route object (of a result, or of `ipam.routes`, which
    /// host-local hands on as they are).
    pub fn read(obj: &Obj<'_>) -> Result<Route, CniError> {
        let dst = obj
            .cidr("dst")?
            .ok_or_else(|| obj.error(format!("{} is missing", obj.path("dst"))))?;
        let scope = match obj.u32("scope")? {
            None => None,
            Some(scope) => Some(u8::try_from(scope).map_err(|_| {
                obj.error(format!(
                    "{} must be at most 255, not {scope}",
                    obj.path("scope")
                ))
            })?),
        };
        Ok(Route {
            dst,
            gw: obj.ip("gw")?,
            mtu: obj.u32("mtu")?,
            advmss: obj.u32("advmss")?,
            priority: obj.u32("priority")?,
            table: obj.u32("table")?,
            scope,
        })
    }
}

/// DNS settings of a result or a config.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dns {
    /// Name servers, in order.
    pub nameservers: Vec<String>,
    /// The local domain.
    pub domain: Option<String>,
    /// The search list.
    pub search: Vec<String>,
    /// resolv.conf options.
    pub options: Vec<String>,
}

impl Dns {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }

    /// Reads a `dns` object.
    pub fn read(obj: &Obj<'_>) -> Result<Dns, CniError> {
        Ok(Dns {
            nameservers: obj.strings("nameservers")?,
            domain: obj.str("domain")?.map(str::to_owned),
            search: obj.strings("search")?,
            options: obj.strings("options")?,
        })
    }

    /// The `dns` object.
    pub fn to_json(&self) -> Value {
        let strings = |items: &[String]| {
            Value::Array(items.iter().map(|s| Value::from(s.as_str())).collect())
        };
        let mut members = Vec::new();
        if !self.nameservers.is_empty() {
            members.push(("nameservers", strings(&self.nameservers)));
        }
        if let Some(domain) = &self.domain {
            members.push(("domain", Value::from(domain.as_str())));
        }
        if !self.search.is_empty() {
            members.push(("search", strings(&self.search)));
        }
        if !self.options.is_empty() {
            members.push(("options", strings(&self.options)));
        }
        Value::object(members)
    }
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "4"
    } else {
        "6"
    }
}

impl CniResult {
    /// Reads a result found at `at` (`prevResult`, or empty for a
    /// delegate's output); errors get `code`. Unknown keys are ignored, as
    /// the spec asks; `ips[].version`, when present, must match the
    /// address.
    pub fn read(value: &Value, at: &str, code: ErrorCode) -> Result<CniResult, CniError> {
        let top = Obj::new(value, at, code)?;
        let mut result = CniResult::default();
        for (i, item) in top.array("interfaces")?.iter().enumerate() {
            let obj = Obj::new(item, format!("{}[{i}]", top.path("interfaces")), code)?;
            // Missing, it reads as empty, as Go's decoder has it (an
            // unnamed interface is no master: see `choose_master`).
            let name = obj.str("name")?.unwrap_or_default();
            result.interfaces.push(Interface {
                name: name.to_string(),
                mac: obj.str("mac")?.map(str::to_owned),
                mtu: obj.u32("mtu")?,
                sandbox: obj.str("sandbox")?.map(str::to_owned),
                socket_path: obj.str("socketPath")?.map(str::to_owned),
                pci_id: obj.str("pciID")?.map(str::to_owned),
            });
        }
        for (i, item) in top.array("ips")?.iter().enumerate() {
            let obj = Obj::new(item, format!("{}[{i}]", top.path("ips")), code)?;
            let address = obj
                .cidr("address")?
                .ok_or_else(|| obj.error(format!("{} is missing", obj.path("address"))))?;
            if let Some(version) = obj.str("version")? {
                if version != family(address.addr()) {
                    return Err(obj.error(format!(
                        "{} is {:?} but the address {address} is IPv{}",
                        obj.path("version"),
                        crate::text::escape_controls(version),
                        family(address.addr())
                    )));
                }
            }
            let interface = match obj.u32("interface")? {
                None => None,
                Some(index) if (index as usize) < result.interfaces.len() => Some(index as usize),
                Some(index) => {
                    return Err(obj.error(format!(
                        "{} is {index}, but there are {} interfaces",
                        obj.path("interface"),
                        result.interfaces.len()
                    )))
                }
            };
            result.ips.push(IpConfig {
                address,
                gateway: obj.ip("gateway")?,
                interface,
            });
        }
        for (i, item) in top.array("routes")?.iter().enumerate() {
            let obj = Obj::new(item, format!("{}[{i}]", top.path("routes")), code)?;
            result.routes.push(Route::read(&obj)?);
        }
        if let Some(dns) = top.obj("dns")? {
            result.dns = Dns::read(&dns)?;
        }
        Ok(result)
    }

    /// The result as `version` writes it: `ips[].version` up to 0.4.0,
    /// the interfaces' 1.1.0 fields only for 1.1.0, a route's keys (1.1.0's
    /// `table`, `priority`, `scope`, `mtu`, `advmss`) in every version, no
    /// empty `dns`.
    pub fn to_json(&self, version: Version) -> Value {
        let text = |s: &str| Value::from(s);
        let new_fields = version.has_1_1_fields();
        let interfaces = self
            .interfaces
            .iter()
            .map(|interface| {
                let mut m = vec![("name", text(&interface.name))];
                if let Some(mac) = &interface.mac {
                    m.push(("mac", text(mac)));
                }
                if let (true, Some(mtu)) = (new_fields, interface.mtu) {
                    m.push(("mtu", Value::from(mtu)));
                }
                if let Some(sandbox) = &interface.sandbox {
                    m.push(("sandbox", text(sandbox)));
                }
                if let (true, Some(path)) = (new_fields, &interface.socket_path) {
                    m.push(("socketPath", text(path)));
                }
                if let (true, Some(id)) = (new_fields, &interface.pci_id) {
                    m.push(("pciID", text(id)));
                }
                Value::object(m)
            })
            .collect();
        let ips = self
            .ips
            .iter()
            .map(|ip| {
                let mut m = Vec::new();
                if version.has_ip_version() {
                    m.push(("version", text(family(ip.address.addr()))));
                }
                m.push(("address", Value::from(ip.address.to_string())));
                if let Some(gateway) = ip.gateway {
                    m.push(("gateway", Value::from(gateway.to_string())));
                }
                if let Some(index) = ip.interface {
                    m.push(("interface", Value::from(index)));
                }
                Value::object(m)
            })
            .collect();
        let routes = self
            .routes
            .iter()
            .map(|route| {
                let mut m = vec![("dst", Value::from(route.dst.to_string()))];
                if let Some(gw) = route.gw {
                    m.push(("gw", Value::from(gw.to_string())));
                }
                // In every version, as the reference plugins write them
                // (one route type for all versions): a route put in its
                // table is looked for there by a CHECK of the cached
                // result, and a chained plugin sees its metric.
                for (key, value) in [
                    ("mtu", route.mtu),
                    ("advmss", route.advmss),
                    ("priority", route.priority),
                    ("table", route.table),
                    ("scope", route.scope.map(u32::from)),
                ] {
                    if let Some(value) = value {
                        m.push((key, Value::from(value)));
                    }
                }
                Value::object(m)
            })
            .collect();
        let mut members = vec![("cniVersion", text(version.as_str()))];
        if !self.interfaces.is_empty() {
            members.push(("interfaces", Value::Array(interfaces)));
        }
        if !self.ips.is_empty() {
            members.push(("ips", Value::Array(ips)));
        }
        if !self.routes.is_empty() {
            members.push(("routes", Value::Array(routes)));
        }
        if !self.dns.is_empty() {
            members.push(("dns", self.dns.to_json()));
        }
        Value::object(members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse;

    const FULL: &str = r#"{
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "eth0", "mac": "02:42:0a:01:02:05", "mtu": 1400,
                        "sandbox": "/run/netns/c1", "socketPath": "/s", "pciID": "0000:00:1f.6",
                        "future": true}],
        "ips": [{"address": "10.1.2.5/24", "gateway": "10.1.2.1", "interface": 0},
                {"address": "2001:db8::5/64", "interface": 0}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.2.1", "mtu": 1300, "priority": 5, "scope": 0},
                   {"dst": "::/0"}],
        "dns": {"nameservers": ["10.1.2.1"], "search": ["example.org"]}
    }"#;

    fn full() -> CniResult {
        CniResult::read(
            &parse(FULL).unwrap(),
            "prevResult",
            ErrorCode::InvalidConfig,
        )
        .unwrap()
    }

    #[test]
    fn a_1_1_result_round_trips_without_unknown_keys() {
        let result = full();
        assert_eq!(result.interfaces[0].mtu, Some(1400));
        assert_eq!(result.ips[1].interface, Some(0));
        assert_eq!(
            result.to_json(Version::V1_1_0).to_compact().unwrap(),
            concat!(
                r#"{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","mac":"02:42:0a:01:02:05","mtu":1400,"#,
                r#""sandbox":"/run/netns/c1","socketPath":"/s","pciID":"0000:00:1f.6"}],"#,
                r#""ips":[{"address":"10.1.2.5/24","gateway":"10.1.2.1","interface":0},"#,
                r#"{"address":"2001:db8::5/64","interface":0}],"#,
                r#""routes":[{"dst":"0.0.0.0/0","gw":"10.1.2.1","mtu":1300,"priority":5,"scope":0},{"dst":"::/0"}],"#,
                r#""dns":{"nameservers":["10.1.2.1"],"search":["example.org"]}}"#
            )
        );
    }

    /// An interface's 1.1.0 fields go below 1.1.0; a route's keys stay in
    /// every version, as the reference plugins write them: before, a route
    /// put in table 100 by a 1.0.0 ADD lost its table in the cached result,
    /// and the CHECK that read it looked in the main table.
    #[test]
    fn older_versions_drop_the_interfaces_1_1_fields_keep_the_routes_and_0_x_adds_ip_versions() {
        let result = full();
        let v1 = result.to_json(Version::V1_0_0).to_compact().unwrap();
        assert!(v1.starts_with(r#"{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","mac":"02:42:0a:01:02:05","sandbox":"/run/netns/c1"}]"#), "{v1}");
        let routes = r#""routes":[{"dst":"0.0.0.0/0","gw":"10.1.2.1","mtu":1300,"priority":5,"scope":0},{"dst":"::/0"}]"#;
        assert!(v1.contains(routes), "{v1}");
        assert!(!v1.contains("version\":\"4"), "{v1}");
        let v031 = result.to_json(Version::V0_3_1).to_compact().unwrap();
        assert!(v031.contains(routes), "{v031}");
        let mut tabled = full();
        tabled.routes[1].table = Some(100);
        let v040 = tabled.to_json(Version::V0_4_0);
        let back = CniResult::read(&v040, "", ErrorCode::DecodingFailure).unwrap();
        assert_eq!(back.routes, tabled.routes);
        assert!(v031.contains(r#""ips":[{"version":"4","address":"10.1.2.5/24","gateway":"10.1.2.1","interface":0},{"version":"6","address":"2001:db8::5/64","interface":0}]"#), "{v031}");
        // And a 0.3.1 result reads back to the same addresses.
        let back = CniResult::read(&parse(&v031).unwrap(), "", ErrorCode::DecodingFailure).unwrap();
        assert_eq!(back.ips, result.ips);
    }

    #[test]
    fn an_empty_dns_is_not_written() {
        let result = CniResult {
            ips: vec![IpConfig {
                address: "10.0.0.2/24".parse().unwrap(),
                gateway: None,
                interface: None,
            }],
            ..CniResult::default()
        };
        assert_eq!(
            result.to_json(Version::V0_4_0).to_compact().unwrap(),
            r#"{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.0.0.2/24"}]}"#
        );
    }

    /// A `prevResult` interface without `name` reads as an unnamed one,
    /// as Go's decoder reads it, not as a bad result (code 7).
    #[test]
    fn an_interface_without_a_name_reads_as_unnamed() {
        let text = r#"{"interfaces":[{"mac":"x"}]}"#;
        let result = CniResult::read(
            &parse(text).unwrap(),
            "prevResult",
            ErrorCode::InvalidConfig,
        )
        .unwrap();
        assert_eq!(result.interfaces.len(), 1);
        assert_eq!(result.interfaces[0].name, "");
        assert_eq!(result.interfaces[0].mac.as_deref(), Some("x"));
    }

    #[test]
    fn bad_results_name_the_key() {
        for (text, msg) in [
            (r#"{"ips":[{"address":"10.0.0.2"}]}"#, "prevResult.ips[0].address \"10.0.0.2\" is not an address with a prefix length (like 10.1.2.0/24)"),
            (r#"{"ips":[{}]}"#, "prevResult.ips[0].address is missing"),
            (r#"{"ips":[{"address":"10.0.0.2/24","version":"6"}]}"#, "prevResult.ips[0].version is \"6\" but the address 10.0.0.2/24 is IPv4"),
            (r#"{"ips":[{"address":"10.0.0.2/24","interface":1}],"interfaces":[{"name":"a"}]}"#, "prevResult.ips[0].interface is 1, but there are 1 interfaces"),
            (r#"{"interfaces":{}}"#, "prevResult.interfaces must be an array, not an object"),
            (r#"{"routes":[{"dst":"::/0","scope":300}]}"#, "prevResult.routes[0].scope must be at most 255, not 300"),
            (r#"{"dns":{"nameservers":[1]}}"#, "prevResult.dns.nameservers[0] must be a string, not a number"),
            (r#"[]"#, "prevResult must be an object, not an array"),
        ] {
            let error = CniResult::read(&parse(text).unwrap(), "prevResult", ErrorCode::InvalidConfig).unwrap_err();
            assert_eq!((error.code, error.msg.as_str()), (ErrorCode::InvalidConfig, msg), "{text}");
        }
    }
}
