//! What the commands print: docker-style tables and `network inspect` JSON.

use crate::driver::{ContainerInfo, EndpointInfo, NetworkInfo};
use crate::json::{Value, WriteError};

/// Aligns `rows` (the first is the header) the way docker's tabwriter does:
/// each column as wide as its widest cell plus 3, at least 10; the last
/// column unpadded.
pub fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            let widest = rows
                .iter()
                .filter_map(|row| row.get(column))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0);
            (widest + 3).max(10)
        })
        .collect();
    let mut text = String::new();
    for row in rows {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate() {
            if column + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}", width = widths[column]));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// `network ls`: `NETWORK ID     NAME      DRIVER    SCOPE`.
pub fn network_table(networks: &[NetworkInfo], no_trunc: bool) -> String {
    let mut rows = vec![vec![
        "NETWORK ID".to_string(),
        "NAME".to_string(),
        "DRIVER".to_string(),
        "SCOPE".to_string(),
    ]];
    rows.extend(networks.iter().map(|network| {
        vec![
            network_id(network, no_trunc).to_string(),
            network.name.clone(),
            network.driver.clone(),
            "local".to_string(),
        ]
    }));
    table(&rows)
}

/// The ID shown in lists: the short one unless `no_trunc`.
pub fn network_id(network: &NetworkInfo, no_trunc: bool) -> &str {
    if no_trunc {
        &network.id
    } else {
        network.short_id()
    }
}

/// `ps`: one line per container with its networks and addresses.
pub fn container_table(containers: &[ContainerInfo]) -> String {
    let mut rows = vec![vec![
        "NAME".to_string(),
        "NETWORKS".to_string(),
        "ADDRESSES".to_string(),
    ]];
    rows.extend(containers.iter().map(|container| {
        let networks: Vec<&str> = container
            .endpoints
            .iter()
            .map(|endpoint| endpoint.network.as_str())
            .collect();
        let addresses: Vec<String> = container
            .endpoints
            .iter()
            .flat_map(endpoint_addresses)
            .collect();
        vec![
            container.name.clone(),
            dash_if_empty(crate::text::join(&networks, ",")),
            dash_if_empty(addresses.join(",")),
        ]
    }));
    table(&rows)
}

fn dash_if_empty(text: String) -> String {
    if text.is_empty() {
        "-".to_string()
    } else {
        text
    }
}

fn endpoint_addresses(endpoint: &EndpointInfo) -> Vec<String> {
    let v4 = endpoint.ipv4.map(|address| address.to_string());
    let v6 = endpoint.ipv6.map(|address| address.to_string());
    v4.into_iter().chain(v6).collect()
}

/// `network inspect`: one network as docker shows it.
pub fn network_json(network: &NetworkInfo) -> Value {
    // IPv4's first, as Docker lists them (its IPv4 configs, then its IPv6
    // ones), whatever order `--subnet` gave: scripts read `Config[0]` as
    // the IPv4 subnet.
    let family = |v4: bool| {
        let subnets = network.subnets.iter();
        subnets.filter(move |subnet| matches!(subnet.subnet, ipnet::IpNet::V4(_)) == v4)
    };
    let ipam_config: Vec<Value> = family(true)
        .chain(family(false))
        .map(|subnet| {
            let mut members = vec![("Subnet".to_string(), Value::from(subnet.subnet.to_string()))];
            if let Some(gateway) = subnet.gateway {
                members.push(("Gateway".to_string(), Value::from(gateway.to_string())));
            }
            if let Some(range) = subnet.ip_range {
                members.push(("IPRange".to_string(), Value::from(range.to_string())));
            }
            if !subnet.aux.is_empty() {
                let aux = subnet
                    .aux
                    .iter()
                    .map(|(name, address)| (name.clone(), Value::from(address.to_string())));
                members.push(("AuxiliaryAddresses".to_string(), Value::object(aux)));
            }
            Value::object(members)
        })
        .collect();
    // Keyed by the container (or namespace path) as Docker keys by
    // container; a namespace attached twice (CNI's two interfaces, a path
    // reused by another namespace since, a name recorded twice on the
    // network while its container's index was lost) by each endpoint
    // record's id, unique in the network: a key repeated would make the
    // document one the writer refuses.
    // Counted once, sorted: a network holds thousands of endpoints.
    let mut labels: Vec<&str> = network
        .endpoints
        .iter()
        .map(|e| e.container.as_str())
        .collect();
    crate::order::sort(&mut labels);
    let key = |endpoint: &EndpointInfo| {
        let label = endpoint.container.as_str();
        let first = labels.partition_point(|l| *l < label);
        match labels.get(first + 1) == Some(&label) {
            false => label.to_string(),
            true => endpoint.record_id.clone(),
        }
    };
    let containers = network.endpoints.iter().map(|endpoint| {
        (
            key(endpoint),
            Value::object([
                ("Name", Value::from(endpoint.container.as_str())),
                ("EndpointID", Value::from(endpoint.endpoint_id.as_str())),
                ("MacAddress", Value::from(endpoint.mac.as_str())),
                ("IPv4Address", address_or_empty(endpoint.ipv4)),
                ("IPv6Address", address_or_empty(endpoint.ipv6)),
            ]),
        )
    });
    Value::object([
        ("Name", Value::from(network.name.as_str())),
        ("Id", Value::from(network.id.as_str())),
        ("Created", Value::from(network.created.to_string())),
        ("Scope", Value::from("local")),
        ("Driver", Value::from(network.driver.as_str())),
        ("EnableIPv6", Value::from(network.ipv6)),
        (
            "IPAM",
            Value::object([
                ("Driver", Value::from("default")),
                ("Options", Value::object(Vec::<(String, Value)>::new())),
                ("Config", Value::from(ipam_config)),
            ]),
        ),
        ("Internal", Value::from(network.internal)),
        // Docker prints these for every network; ours has none of what
        // they describe (swarm attachment, the ingress network, config
        // networks, labels).
        ("Attachable", Value::from(false)),
        ("Ingress", Value::from(false)),
        ("ConfigFrom", Value::object([("Network", Value::from(""))])),
        ("ConfigOnly", Value::from(false)),
        ("Containers", Value::object(containers)),
        ("Options", Value::object(network_options(network))),
        ("Labels", Value::object(Vec::<(String, Value)>::new())),
    ])
}

fn address_or_empty(address: Option<impl ToString>) -> Value {
    Value::from(
        address
            .map(|address| address.to_string())
            .unwrap_or_default(),
    )
}

/// The options as given, with `parent` and `ipvlan_mode` showing what is in
/// effect (the dummy parent's name, the default mode).
fn network_options(network: &NetworkInfo) -> Vec<(String, Value)> {
    let effective = [
        ("parent", network.parent.clone()),
        ("ipvlan_mode", network.mode.as_str().to_string()),
    ];
    let mut options: Vec<(String, Value)> = network
        .options
        .iter()
        .map(|(key, value)| {
            let shown = effective
                .iter()
                .find(|(name, _)| name == key)
                .map_or(value.clone(), |(_, actual)| actual.clone());
            (key.clone(), Value::from(shown))
        })
        .collect();
    for (name, actual) in effective {
        if !options.iter().any(|(key, _)| key == name) {
            options.push((name.to_string(), Value::from(actual)));
        }
    }
    options
}

/// `network inspect`'s document: a JSON array, 4-space indented; an error
/// rather than JSON that a strict reader would refuse.
pub fn inspect_document(networks: &[NetworkInfo]) -> Result<String, WriteError> {
    let values: Vec<Value> = networks.iter().map(network_json).collect();
    Value::from(values).to_pretty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::{IpvlanMode, SubnetInfo};
    use crate::json;

    fn network() -> NetworkInfo {
        let mut network = NetworkInfo::example();
        network.name = "db_net".into();
        network.parent = "eth0".into();
        network.internal = false;
        network.ipv6 = true;
        network.mode = IpvlanMode::L3;
        network.options = vec![
            ("parent".into(), "eth0".into()),
            ("ipvlan_flag".into(), "private".into()),
        ];
        network.subnets = vec![
            SubnetInfo {
                subnet: "192.168.1.0/24".parse().unwrap(),
                gateway: Some("192.168.1.1".parse().unwrap()),
                ip_range: Some("192.168.1.128/25".parse().unwrap()),
                aux: vec![("router".into(), "192.168.1.5".parse().unwrap())],
                host: vec!["192.168.1.250".parse().unwrap()],
            },
            SubnetInfo {
                subnet: "2001:db8::/64".parse().unwrap(),
                gateway: None,
                ip_range: None,
                aux: Vec::new(),
                host: Vec::new(),
            },
        ];
        network.endpoints = vec![EndpointInfo {
            endpoint_id: "ipv1".into(),
            record_id: "_netns_cookie_4097".into(),
            network: "db_net".into(),
            network_id: network.id.clone(),
            container: "ipv1".into(),
            netns_path: "/run/netns/ipv1".into(),
            ifname: "eth0".into(),
            ipv4: Some("192.168.1.2/24".parse().unwrap()),
            ipv6: None,
            mac: "02:42:ac:11:00:02".into(),
        }];
        network
    }

    #[test]
    fn table_columns_are_padded_like_docker() {
        let text = network_table(&[network()], false);
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("NETWORK ID     NAME      DRIVER    SCOPE")
        );
        assert_eq!(
            lines.next(),
            Some("0123456789ab   db_net    ipvlan    local")
        );
        assert_eq!(lines.next(), None);
        assert!(network_table(&[network()], true).contains(&network().id));
    }

    #[test]
    fn empty_table_is_just_the_header() {
        assert_eq!(
            network_table(&[], false),
            "NETWORK ID   NAME      DRIVER    SCOPE\n"
        );
    }

    #[test]
    fn ps_lists_networks_and_addresses() {
        let network = network();
        let containers = [
            ContainerInfo {
                name: "ipv1".into(),
                netns_path: "/run/netns/ipv1".into(),
                endpoints: network.endpoints.clone(),
                netns_id: None,
                netns_inode_time: None,
            },
            ContainerInfo {
                name: "lonely".into(),
                netns_path: "/run/netns/lonely".into(),
                endpoints: Vec::new(),
                netns_id: None,
                netns_inode_time: None,
            },
        ];
        let text = container_table(&containers);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "NAME      NETWORKS   ADDRESSES");
        assert_eq!(lines[1], "ipv1      db_net     192.168.1.2/24");
        assert_eq!(lines[2], "lonely    -          -");
    }

    #[test]
    fn inspect_has_docker_fields() {
        let document = json::parse(&inspect_document(&[network()]).unwrap()).expect("valid JSON");
        let network = &document.as_array().expect("array")[0];
        // Docker's keys, in Docker's order (`EnableIPv4` aside, Docker 28's):
        // a script reading `.Labels` or `.ConfigOnly` finds them.
        let keys: Vec<&str> = network
            .as_object()
            .expect("object")
            .iter()
            .map(|(key, _)| key.as_str())
            .collect();
        assert_eq!(
            keys,
            [
                "Name",
                "Id",
                "Created",
                "Scope",
                "Driver",
                "EnableIPv6",
                "IPAM",
                "Internal",
                "Attachable",
                "Ingress",
                "ConfigFrom",
                "ConfigOnly",
                "Containers",
                "Options",
                "Labels"
            ]
        );
        assert_eq!(
            network.get("ConfigFrom"),
            Some(&json::parse(r#"{"Network": ""}"#).unwrap())
        );
        assert_eq!(
            network
                .get("Labels")
                .and_then(Value::as_object)
                .map(<[_]>::len),
            Some(0)
        );
        assert_eq!(network.get("Name").and_then(Value::as_str), Some("db_net"));
        assert_eq!(network.get("Scope").and_then(Value::as_str), Some("local"));
        assert_eq!(
            network.get("Created").and_then(Value::as_str),
            Some("2024-05-01T12:00:00.123456789Z")
        );
        assert_eq!(
            network.get("EnableIPv6").and_then(Value::as_bool),
            Some(true)
        );
        assert_eq!(
            network.get("Internal").and_then(Value::as_bool),
            Some(false)
        );
        let ipam = network.get("IPAM").expect("IPAM");
        assert_eq!(ipam.get("Driver").and_then(Value::as_str), Some("default"));
        let config = ipam
            .get("Config")
            .and_then(Value::as_array)
            .expect("Config");
        assert_eq!(
            config[0].get("Subnet").and_then(Value::as_str),
            Some("192.168.1.0/24")
        );
        assert_eq!(
            config[0].get("Gateway").and_then(Value::as_str),
            Some("192.168.1.1")
        );
        assert_eq!(
            config[0].get("IPRange").and_then(Value::as_str),
            Some("192.168.1.128/25")
        );
        assert_eq!(
            config[0]
                .get("AuxiliaryAddresses")
                .and_then(|aux| aux.get("router"))
                .and_then(Value::as_str),
            Some("192.168.1.5")
        );
        assert!(config[1].get("Gateway").is_none() && config[1].get("IPRange").is_none());
        let endpoint = network
            .get("Containers")
            .and_then(|containers| containers.get("ipv1"))
            .expect("endpoint keyed by container");
        assert_eq!(
            endpoint.get("IPv4Address").and_then(Value::as_str),
            Some("192.168.1.2/24")
        );
        assert_eq!(
            endpoint.get("IPv6Address").and_then(Value::as_str),
            Some("")
        );
        assert_eq!(
            endpoint.get("MacAddress").and_then(Value::as_str),
            Some("02:42:ac:11:00:02")
        );
        assert_eq!(
            endpoint.get("EndpointID").and_then(Value::as_str),
            Some("ipv1")
        );
        // Docker's member order.
        let keys = |value: &Value| -> Vec<String> {
            value
                .as_object()
                .unwrap()
                .iter()
                .map(|(key, _)| key.clone())
                .collect()
        };
        assert_eq!(
            keys(endpoint),
            [
                "Name",
                "EndpointID",
                "MacAddress",
                "IPv4Address",
                "IPv6Address"
            ]
        );
        assert_eq!(keys(network)[..4], ["Name", "Id", "Created", "Scope"]);
        let options = network.get("Options").expect("Options");
        assert_eq!(options.get("parent").and_then(Value::as_str), Some("eth0"));
        assert_eq!(
            options.get("ipvlan_mode").and_then(Value::as_str),
            Some("l3")
        );
        assert_eq!(
            options.get("ipvlan_flag").and_then(Value::as_str),
            Some("private")
        );
    }

    /// `--subnet` given IPv6 first: `IPAM.Config` lists the IPv4 subnet
    /// first all the same, as Docker does.
    #[test]
    fn ipam_config_lists_ipv4_first() {
        let mut network = network();
        network.subnets.reverse();
        assert!(matches!(network.subnets[0].subnet, ipnet::IpNet::V6(_)));
        let document = network_json(&network);
        let config = document.get("IPAM").and_then(|ipam| ipam.get("Config"));
        let subnets: Vec<&str> = config
            .and_then(Value::as_array)
            .unwrap()
            .iter()
            .filter_map(|c| c.get("Subnet").and_then(Value::as_str))
            .collect();
        assert_eq!(subnets, ["192.168.1.0/24", "2001:db8::/64"]);
    }

    #[test]
    fn a_namespace_attached_twice_is_keyed_by_its_endpoints() {
        // CNI's two interfaces of one pod on one network: one namespace
        // path, two endpoints. Before, the path keyed both, and the writer
        // refused the whole document (inspect printed nothing).
        let mut network = network();
        let first = EndpointInfo {
            endpoint_id: "0123".into(),
            record_id: "0123".into(),
            container: "/var/run/netns/pod1".into(),
            netns_path: "/var/run/netns/pod1".into(),
            ifname: "net1".into(),
            ..network.endpoints[0].clone()
        };
        let second = EndpointInfo {
            endpoint_id: "4567".into(),
            record_id: "4567".into(),
            ifname: "net2".into(),
            ..first.clone()
        };
        network.endpoints.extend([first, second]);
        let containers = containers_inspected(network);
        let keys: Vec<&str> = containers.iter().map(|(key, _)| key.as_str()).collect();
        assert_eq!(keys, ["ipv1", "0123", "4567"]);
        let name = containers[2].1.get("Name").and_then(Value::as_str);
        assert_eq!(name, Some("/var/run/netns/pod1"));
    }

    /// `inspect`'s `Containers` of `network`, written and read back.
    fn containers_inspected(network: NetworkInfo) -> Vec<(String, Value)> {
        let text = inspect_document(&[network]).unwrap();
        let document = crate::json::parse(&text).unwrap();
        let containers = document.as_array().unwrap()[0].get("Containers");
        containers.and_then(Value::as_object).unwrap().to_vec()
    }

    #[test]
    fn a_container_name_recorded_twice_is_keyed_by_its_records() {
        // Two records of one name on a network (its container's index, never
        // synced, lost to a power cut, and the name connected again before
        // `restore`): the name is each one's `EndpointID`, so that keyed
        // both, and the writer refused the whole document.
        let mut network = network();
        let again = EndpointInfo {
            record_id: "_netns_cookie_4242".into(),
            netns_path: "/run/netns/ipv1".into(),
            ..network.endpoints[0].clone()
        };
        network.endpoints.push(again);
        let containers = containers_inspected(network);
        let keys: Vec<&str> = containers.iter().map(|(key, _)| key.as_str()).collect();
        assert_eq!(keys, ["_netns_cookie_4097", "_netns_cookie_4242"]);
        for (_, endpoint) in &containers {
            assert_eq!(endpoint.get("Name").and_then(Value::as_str), Some("ipv1"));
        }
    }

    #[test]
    fn inspect_document_is_indented_with_four_spaces() {
        let text = inspect_document(&[network()]).unwrap();
        assert!(
            text.starts_with("[\n    {\n        \"Name\": \"db_net\","),
            "{text}"
        );
        assert_eq!(inspect_document(&[]).unwrap(), "[]");
    }
}
