//! Driver tests that run on any Linux host, including one whose kernel has
//! no ipvlan, dummy or 802.1Q support: validation errors with their texts,
//! and a missing kernel feature reported by name with nothing changed.
//!
//! Each test works in a fresh network namespace (so the links it reads back
//! are its own) and a scratch state directory.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use ipvlan::driver::{Config, ErrorKind, Manager, NetworkCreate};
use ipvlan::netns;
use ipvlan::rtnl::Handle;

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("ipvlan-driver-host-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn config(dir: &Path) -> Config {
    Config {
        state_dir: dir.join("state"),
        netns_dir: dir.join("netns"),
        etc_netns_dir: dir.join("etc-netns"),
    }
}

fn link_names() -> Vec<String> {
    let mut names: Vec<String> = Handle::new()
        .unwrap()
        .links()
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    names.sort();
    names
}

/// Whether this kernel makes ipvlan links, asked by making one (on a veth,
/// in a namespace of its own): a kernel with ipvlan as a module loads it on
/// that first create, which a look at the loaded modules would miss.
fn host_has_ipvlan() -> bool {
    netns::run_in_new(|| {
        let h = ipvlan::rtnl::Handle::new().unwrap();
        h.link_add(&ipvlan::rtnl::LinkSpec::veth("hv0", "hv1"))
            .unwrap();
        let parent = h.link_index("hv0").unwrap();
        h.link_add(&ipvlan::rtnl::LinkSpec::ipvlan(
            "hiv0",
            parent,
            ipvlan::driver::IpvlanMode::L2,
            ipvlan::driver::IpvlanFlag::Bridge,
        ))
        .is_ok()
    })
    .expect("a network namespace to probe ipvlan in")
}

/// Runs `f` in a fresh network namespace with a scratch config.
fn in_fresh_netns(name: &str, f: impl FnOnce(&Config) + Send) {
    common::privilege::require_root();
    let dir = scratch(name);
    let config = config(&dir);
    let _cleanup = Cleanup(config.clone(), dir.clone());
    netns::run_in_new(|| f(&config)).expect("creating a network namespace");
}

/// Removes a test's scratch directory, also when the test fails: first the
/// namespaces it left and the self bind mount that creating a named
/// namespace makes of the run dir (it would outlive the test otherwise).
struct Cleanup(Config, PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let run_dir = &self.0.netns_dir;
        for name in netns::list_named(run_dir).unwrap_or_default() {
            let _ = netns::delete_named(run_dir, &name);
        }
        let released = if run_dir.exists() {
            netns::release_run_dir(run_dir)
        } else {
            Ok(())
        };
        let _ = fs::remove_dir_all(&self.1);
        if !std::thread::panicking() {
            released.expect("releasing the run dir mount");
        }
    }
}

fn request(name: &str, options: &[(&str, &str)]) -> NetworkCreate {
    let mut req = NetworkCreate::new(name);
    req.options = options
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    req
}

/// On a kernel without ipvlan (the development and CI hosts), the
/// missing feature is named and nothing changes; on one with it (Debian's
/// stock kernel loads the module on the first create), the same networks
/// are made, and taken away again. Each branch asserts: nothing is skipped.
#[test]
fn missing_ipvlan_is_named_and_nothing_changes() {
    common::privilege::require_root();
    let has_ipvlan = host_has_ipvlan();
    in_fresh_netns("noipvlan", |config| {
        let manager = Manager::open(config.clone()).unwrap();
        // A store made, as a first command that writes makes it: a create
        // refused for the kernel has locked it, and finds it made.
        drop(ipvlan::store::StateDir::open(&config.state_dir).unwrap());
        assert!(manager.networks().unwrap().is_empty());
        let before_state = common::snapshot(&config.state_dir);
        let before_links = link_names();
        for req in [
            request("isolated1", &[]),
            request("onlo", &[("ipvlan_mode", "l3")]),
        ] {
            let made = manager.create_network(&req);
            if has_ipvlan {
                made.unwrap_or_else(|e| panic!("{}: {e}", req.name));
                manager.remove_network(&req.name).unwrap();
                continue;
            }
            let err = made.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
            assert_eq!(
                err.to_string(),
                "this kernel has no ipvlan support (CONFIG_IPVLAN); try `modprobe ipvlan`"
            );
        }
        if !has_ipvlan {
            assert_eq!(common::snapshot(&config.state_dir), before_state);
        }
        assert_eq!(link_names(), before_links);
        assert!(manager.networks().unwrap().is_empty());
    });
}

#[test]
fn validation_errors_have_their_texts_and_change_nothing() {
    in_fresh_netns("validation", |config| {
        let manager = Manager::open(config.clone()).unwrap();
        assert!(manager.networks().unwrap().is_empty());
        let before_state = common::snapshot(&config.state_dir);
        let before_links = link_names();
        let cases: Vec<(NetworkCreate, &str)> = vec![
            (
                request("n1", &[("ipvlan_mode", "L2")]),
                "requested ipvlan mode 'L2' is not valid, 'l2' mode is the ipvlan driver default",
            ),
            (
                request("n1", &[("ipvlan_flag", "Bridge")]),
                "requested ipvlan flag 'Bridge' is not valid, 'bridge' is the ipvlan driver default",
            ),
            (
                request("n1", &[("parent", "lo")]),
                "loopback interface is not a valid ipvlan parent link",
            ),
            (
                request("n1", &[("foo", "bar")]),
                "unknown option 'foo': valid options are parent, ipvlan_mode, ipvlan_flag, mtu",
            ),
            (
                request("n1", &[("mtu", "abc")]),
                "invalid mtu 'abc': must be a number from 68 to the parent's MTU",
            ),
            (
                request("-bad", &[]),
                "invalid network name \"-bad\": only [a-zA-Z0-9][a-zA-Z0-9_.-]* are allowed, at most 64 bytes",
            ),
            (
                {
                    let mut r = request("n1", &[]);
                    r.driver = "macvlan".into();
                    r
                },
                "driver \"macvlan\" is not supported: this tool only creates ipvlan networks (-d ipvlan)",
            ),
            (
                {
                    let mut r = request("n1", &[("parent", "eth0")]);
                    r.internal = true;
                    r
                },
                "--internal cannot be combined with -o parent=eth0: an internal network gets its own dummy parent and no external connectivity; drop one of the two",
            ),
            (
                {
                    let mut r = request("n1", &[]);
                    r.subnets.push("192.168.1.1/24".parse().unwrap());
                    r
                },
                "invalid subnet 192.168.1.1/24: it should be 192.168.1.0/24",
            ),
            (
                {
                    let mut r = request("n1", &[]);
                    r.subnets.push("192.168.1.0/24".parse().unwrap());
                    r.gateways.push("10.0.0.1".parse().unwrap());
                    r
                },
                "no matching subnet for gateway 10.0.0.1",
            ),
        ];
        for (req, text) in cases {
            let err = manager.create_network(&req).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidValue, "{err}");
            assert_eq!(err.to_string(), text);
        }
        assert_eq!(common::snapshot(&config.state_dir), before_state);
        assert_eq!(link_names(), before_links);
    });
}

#[test]
fn missing_parent_and_bad_vlan_parents_are_refused() {
    in_fresh_netns("parents", |config| {
        let manager = Manager::open(config.clone()).unwrap();
        let host_kernel_lacks_ipvlan = !host_has_ipvlan();
        let cases = [
            (
                "eth9",
                "the requested parent interface eth9 was not found on the host",
            ),
            (
                "nosuch.20",
                "-o parent interface was not found on the host: nosuch",
            ),
            (
                "lo.x",
                "unable to parse a valid vlan id from: lo.x (ex. eth0.10 for vlan 10)",
            ),
        ];
        for (parent, text) in cases {
            let err = manager
                .create_network(&request("n1", &[("parent", parent)]))
                .unwrap_err();
            if host_kernel_lacks_ipvlan {
                // Kernel support is checked first.
                assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
            } else {
                assert_eq!(err.to_string(), text);
            }
        }
    });
}

#[test]
fn unknown_network_and_container_are_not_found() {
    in_fresh_netns("notfound", |config| {
        let manager = Manager::open(config.clone()).unwrap();
        let err = manager.network("nope").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.to_string(), "network nope not found");
        let err = manager.remove_network("nope").unwrap_err();
        assert_eq!(err.to_string(), "network nope not found");
        let err = manager.remove_container("ghost", false).unwrap_err();
        assert_eq!(err.to_string(), "No such container: ghost");
        let err = manager
            .exec("ghost", &["true".into()], &Default::default())
            .unwrap_err();
        assert_eq!(err.to_string(), "No such container: ghost");
    });
}

/// What the caller gave comes back in messages escaped: a library user
/// that logs or prints an error gets one line of plain text.
#[test]
fn messages_escape_control_characters_the_caller_gave() {
    in_fresh_netns("escaping", |config| {
        let manager = Manager::open(config.clone()).unwrap();
        assert!(manager.networks().unwrap().is_empty());
        let before_state = common::snapshot(&config.state_dir);
        let mut bad_key = request("n1", &[("\u{1b}[2Jkey", "1")]);
        bad_key.driver = "ipvlan".into();
        let errors = [
            manager.create_network(&request("a\nb", &[])).unwrap_err(),
            manager.create_network(&bad_key).unwrap_err(),
            manager
                .create_network(&request("n1", &[("ipvlan_flag", "x\r")]))
                .unwrap_err(),
            manager.network("x\ny").unwrap_err(),
            manager.remove_network("\u{9b}31m").unwrap_err(),
            manager
                .exec("a\nb", &["true".into()], &Default::default())
                .unwrap_err(),
            manager.remove_container("a\tb", false).unwrap_err(),
            manager.create_container(Some("\u{202e}x")).unwrap_err(),
        ];
        for error in errors {
            let text = error.to_string();
            assert!(
                !text.chars().any(ipvlan::text::is_unsafe),
                "raw control character in {text:?}"
            );
            assert!(text.contains('\\'), "nothing escaped in {text:?}");
        }
        assert_eq!(
            manager.network("x\ny").unwrap_err().to_string(),
            "network x\\ny not found"
        );
        assert_eq!(common::snapshot(&config.state_dir), before_state);
    });
}

#[test]
fn containers_are_named_namespaces() {
    in_fresh_netns("containers", |config| {
        fs::create_dir_all(&config.netns_dir).unwrap();
        let manager = Manager::open(config.clone()).unwrap();
        let named = manager.create_container(Some("web")).unwrap();
        assert_eq!(named.netns_path, config.netns_dir.join("web"));
        let random = manager.create_container(None).unwrap();
        let names = container_names(&manager);
        let mut expected = vec!["web".to_string(), random.name.clone()];
        expected.sort();
        assert_eq!(names, expected);
        let err = manager.create_container(Some("web")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        // A command runs inside: it sees the container's own loopback only.
        let status = manager
            .exec(
                "web",
                &["/bin/sh".into(), "-c".into(), "exit 7".into()],
                &Default::default(),
            )
            .unwrap();
        assert_eq!(status, 7);
        // A command that cannot start is an error the front end maps to 127
        // (the library prints nothing).
        let err = manager
            .exec("web", &["/nonexistent/cmd".into()], &Default::default())
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::CommandNotFound);
        assert_eq!(
            err.to_string(),
            "/nonexistent/cmd: executable file not found"
        );
        manager.remove_container("web", false).unwrap();
        manager.remove_container(&random.name, false).unwrap();
        assert!(!config.netns_dir.join("web").exists());
        assert!(manager.containers().unwrap().is_empty());
    });
}

#[test]
fn a_named_namespace_without_our_record_is_no_container() {
    in_fresh_netns("foreign", |config| {
        let manager = Manager::open(config.clone()).unwrap();
        // Made as `ip netns add vpn` makes it, with a process inside and
        // an admin's /etc/netns entry.
        netns::create_named(&config.netns_dir, "vpn").unwrap();
        let path = config.netns_dir.join("vpn");
        let view = config.etc_netns_dir.join("vpn");
        fs::create_dir_all(&view).unwrap();
        let admin_hosts = config.state_dir.with_file_name("admin-hosts");
        fs::write(&admin_hosts, "10.9.9.9\tgateway\n").unwrap();
        std::os::unix::fs::symlink(&admin_hosts, view.join("hosts")).unwrap();
        let (holder, inode) = foreign_holder(&path);
        // No store yet: the refusals below must not make one either.
        assert!(manager.containers().unwrap().is_empty());
        let before = common::snapshot(&config.state_dir);

        for force in [false, true] {
            let err = manager.remove_container("vpn", force).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
            assert_eq!(err.to_string(), "No such container: vpn");
        }
        let err = manager
            .exec("vpn", &["true".into()], &Default::default())
            .unwrap_err();
        assert_eq!(err.to_string(), "No such container: vpn");
        let err = manager.spawn_detached("vpn", &["true".into()]).unwrap_err();
        assert_eq!(err.to_string(), "No such container: vpn");

        assert!(manager.containers().unwrap().is_empty());
        let mut holder = holder;
        assert_eq!(holder.0.try_wait().unwrap(), None, "the process was killed");
        assert_eq!(fs::metadata(&path).unwrap().ino(), inode);
        assert!(netns::Netns::open_path(&path).is_ok());
        assert_eq!(fs::read_link(view.join("hosts")).unwrap(), admin_hosts);
        assert_eq!(common::snapshot(&config.state_dir), before);
        assert!(!manager.log_path("vpn").exists());
    });
}

/// A child process killed (and reaped) when the test ends, passed or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn removing_our_containers_leaves_an_admins_etc_netns_entries() {
    in_fresh_netns("admin-view", |config| {
        fs::create_dir_all(&config.netns_dir).unwrap();
        let manager = Manager::open(config.clone()).unwrap();
        let admin_hosts = config.state_dir.with_file_name("admin-hosts");
        fs::write(&admin_hosts, "10.9.9.9\tgateway\n").unwrap();
        // For each name, an admin's directory (mode 0700) and hosts symlink,
        // and an admin's empty directory: neither is ipvlan's to remove.
        let admin_view = |name: &str, with_hosts: bool| {
            let dir = config.etc_netns_dir.join(name);
            fs::create_dir_all(&dir).unwrap();
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
            if with_hosts {
                std::os::unix::fs::symlink(&admin_hosts, dir.join("hosts")).unwrap();
            }
            dir
        };
        let check = |dir: &Path, with_hosts: bool| {
            let mode = fs::metadata(dir).map(|m| m.permissions().mode() & 0o7777);
            assert_eq!(mode.ok(), Some(0o700), "{}", dir.display());
            let hosts = fs::read_link(dir.join("hosts")).ok();
            assert_eq!(hosts, with_hosts.then(|| admin_hosts.clone()));
        };
        for (name, with_hosts) in [("web", true), ("db", false)] {
            manager.create_container(Some(name)).unwrap();
            let dir = admin_view(name, with_hosts);
            manager.remove_container(name, false).unwrap();
            check(&dir, with_hosts);
        }
        // Likewise when restore forgets containers whose namespace is gone.
        for (name, with_hosts) in [("gone1", true), ("gone2", false)] {
            manager.create_container(Some(name)).unwrap();
            admin_view(name, with_hosts);
            netns::delete_named(&config.netns_dir, name).unwrap();
        }
        let report = manager.restore().unwrap();
        assert!(report.errors.is_empty(), "{report:?}");
        assert!(manager.containers().unwrap().is_empty());
        check(&config.etc_netns_dir.join("gone1"), true);
        check(&config.etc_netns_dir.join("gone2"), false);
        assert_eq!(
            fs::read_to_string(&admin_hosts).unwrap(),
            "10.9.9.9\tgateway\n"
        );
    });
}

/// What a power cut can bring back after an `rm` or a detach whose
/// record's removal was durable: a view's link, directory and marker,
/// which are never synced. `restore` takes out the views its markers call
/// ours of containers no record names, and nothing else: a view of a
/// container it knows, an admin's view, our link in an admin's directory
/// (an admin can make one), an entry that links to another view, a
/// directory without our link (a marker is not tied to its directory: a
/// stale one may name an admin's made since). Before,
/// nothing ever looked at them again (`ip netns exec` of a later
/// namespace of that name mounted our network's hosts file).
#[test]
fn restore_takes_out_our_views_no_record_explains() {
    use std::os::unix::fs::symlink;
    in_fresh_netns("stale-view", |config| {
        let manager = Manager::open(config.clone()).unwrap();
        manager.create_container(Some("kept")).unwrap();
        let ours = config.state_dir.join("hosts").join("a".repeat(64));
        fs::create_dir_all(ours.parent().unwrap()).unwrap();
        fs::write(&ours, "127.0.0.1\tlocalhost\n").unwrap();
        let etc = &config.etc_netns_dir;
        let markers = config.state_dir.join("hosts").join("etc-netns");
        fs::create_dir_all(&markers).unwrap();
        let view = |name: &str, marked: bool| {
            fs::create_dir_all(etc.join(name)).unwrap();
            symlink(&ours, etc.join(name).join("hosts")).unwrap();
            if marked {
                fs::write(markers.join(name), "").unwrap();
            }
        };
        view("web", true);
        view("kept", true);
        view("adm", false);
        // Stale markers: of an entry now a link to a live view, of one gone.
        symlink(etc.join("kept"), etc.join("alias")).unwrap();
        fs::write(markers.join("alias"), "").unwrap();
        fs::write(markers.join("gone"), "").unwrap();
        // A stale marker of a directory an admin made since (empty): kept.
        fs::create_dir_all(etc.join("fresh")).unwrap();
        fs::write(markers.join("fresh"), "").unwrap();
        let admin_hosts = config.state_dir.with_file_name("admin-hosts");
        fs::write(&admin_hosts, "10.9.9.9\tgateway\n").unwrap();
        fs::create_dir_all(etc.join("other")).unwrap();
        symlink(&admin_hosts, etc.join("other/hosts")).unwrap();

        let report = manager.restore().unwrap();
        assert!(report.errors.is_empty(), "{report:?}");
        assert!(
            fs::symlink_metadata(etc.join("web")).is_err(),
            "stale view kept"
        );
        assert!(etc.join("fresh").is_dir(), "an admin's directory taken");
        for gone in ["web", "alias", "gone", "fresh"] {
            assert!(!markers.join(gone).exists(), "stale marker {gone} kept");
        }
        assert_eq!(fs::read_link(etc.join("kept/hosts")).unwrap(), ours);
        assert!(markers.join("kept").exists());
        assert_eq!(fs::read_link(etc.join("adm/hosts")).unwrap(), ours);
        assert_eq!(fs::read_link(etc.join("alias")).unwrap(), etc.join("kept"));
        assert_eq!(fs::read_link(etc.join("other/hosts")).unwrap(), admin_hosts);
        let _ = fs::remove_file(&admin_hosts);
        manager.remove_container("kept", true).unwrap();
        assert!(
            fs::symlink_metadata(etc.join("kept")).is_err(),
            "rm kept its view"
        );
    });
}

/// A name `run` cannot take says why, and what frees it: an interrupted
/// run or rm (whose namespace is still at the name) is named as such, and
/// a container whose namespace's name was deleted points to `rm -f`
/// (`restore` keeps one a process still holds). Before, the first read
/// "namespace ... exists", and the last told to run `restore`, which kept it.
#[test]
fn a_name_in_use_says_what_holds_it() {
    in_fresh_netns("name-held", |config| {
        let manager = Manager::open(config.clone()).unwrap();
        for (state, said) in [
            (
                "creating",
                "container name web is held by an interrupted run; `ipvlan restore` rolls it back",
            ),
            (
                "removing",
                "container name web is held by an interrupted rm; `ipvlan restore` finishes it",
            ),
        ] {
            manager.create_container(Some("web")).unwrap();
            let record = common::container_record(&config.state_dir, "web");
            let text = fs::read_to_string(&record).unwrap();
            fs::write(
                &record,
                text.replace("\"state\": \"created\"", &format!("\"state\": \"{state}\"")),
            )
            .unwrap();
            let refused = manager.create_container(Some("web")).unwrap_err();
            assert_eq!(refused.kind(), ErrorKind::AlreadyExists, "{refused}");
            assert_eq!(refused.to_string(), said);
            // Not listed, but named (`ps` warns about them, as `network
            // ls` does about a half-created network).
            let list = manager.container_list().unwrap();
            assert!(list.containers.is_empty(), "{list:?}");
            let named = match state {
                "creating" => &list.half_made,
                _ => &list.half_removed,
            };
            assert_eq!(named, &["web".to_string()], "{list:?}");
            fs::write(&record, text).unwrap();
            manager.remove_container("web", true).unwrap();
        }
        manager.create_container(Some("db")).unwrap();
        netns::delete_named(&config.netns_dir, "db").unwrap();
        let refused = manager.create_container(Some("db")).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "container name db is already in use (its namespace's name is gone; `ipvlan rm -f db` removes it)"
        );
        manager.remove_container("db", true).unwrap();
        manager.create_container(Some("db")).unwrap();
    });
}

#[test]
fn doctor_names_what_this_kernel_lacks() {
    common::privilege::require_root();
    let dir = scratch("doctor");
    let report = ipvlan::driver::doctor(&config(&dir));
    let check = |name: &str| {
        report
            .checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name} check in {report:?}"))
            .clone()
    };
    assert!(check("kernel").ok, "{report:?}");
    assert!(check("privileges").ok, "tests run as root: {report:?}");
    assert!(check("state directory").ok, "{report:?}");
    let ipvlan = check("ipvlan");
    if host_has_ipvlan() {
        assert!(ipvlan.ok, "{report:?}");
    } else {
        assert!(!ipvlan.ok);
        assert_eq!(
            ipvlan.detail,
            "this kernel has no ipvlan support (CONFIG_IPVLAN); try `modprobe ipvlan`"
        );
        assert!(!report.all_ok());
    }
    let _ = fs::remove_dir_all(&dir);
}

/// A state-directory failure carries the system's errno, for an embedder
/// to tell a full disk from a read-only one (ENOTDIR here: a file where
/// the directory's parent belongs); before, only a permission error had
/// one (EACCES, even for EPERM).
#[test]
fn a_state_directory_failure_carries_its_errno() {
    let dir = scratch("state-errno");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("file"), "").unwrap();
    let config = Config {
        state_dir: dir.join("file/state"),
        netns_dir: dir.join("netns"),
        etc_netns_dir: dir.join("etc-netns"),
    };
    let Err(error) = Manager::open(config) else {
        panic!("opened through a file in the way");
    };
    assert_eq!(error.errno(), Some(libc::ENOTDIR), "{error}");
    assert_eq!(error.kind(), ErrorKind::OperationFailed, "{error}");
    let _ = fs::remove_dir_all(&dir);
}

/// doctor judges the state directory as every command does: a symbolic
/// link to a 0700 directory (refused by every command) is bad, a 0755
/// directory (used by every command) is not. Before, doctor followed the
/// link and asked for mode 0700 alone: it said the opposite of both.
#[test]
fn doctor_judges_the_state_directory_as_every_command_does() {
    use std::os::unix::fs::PermissionsExt;
    common::privilege::require_root();
    let dir = scratch("doctor-state");
    let state_check = |config: &Config| {
        ipvlan::driver::doctor(config)
            .checks
            .into_iter()
            .find(|c| c.name == "state directory")
            .expect("a state directory check")
    };
    let real = dir.join("real");
    fs::create_dir_all(&real).unwrap();
    fs::set_permissions(&real, fs::Permissions::from_mode(0o700)).unwrap();
    let link = dir.join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let at = |state: &std::path::Path| Config {
        state_dir: state.to_path_buf(),
        netns_dir: dir.join("netns"),
        etc_netns_dir: dir.join("etc-netns"),
    };
    let through_link = at(&link);
    let seen = state_check(&through_link);
    assert!(!seen.ok, "{seen:?}");
    assert!(seen.detail.contains("symbolic link"), "{seen:?}");
    let refused = Manager::open(through_link).unwrap_err().to_string();
    assert!(refused.contains("symbolic link"), "{refused}");
    let open = dir.join("open");
    fs::create_dir_all(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
    let readable = at(&open);
    let seen = state_check(&readable);
    assert!(seen.ok, "{seen:?}");
    assert!(Manager::open(readable).is_ok());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn restore_removes_a_container_whose_mount_never_came() {
    in_fresh_netns("restore-half", |config| {
        fs::create_dir_all(&config.netns_dir).unwrap();
        let manager = Manager::open(config.clone()).unwrap();
        manager.create_container(Some("half")).unwrap();
        manager.create_container(Some("whole")).unwrap();
        // What a process killed between making the mount point and the
        // bind mount leaves: an empty file, not a namespace.
        let half = config.netns_dir.join("half");
        let status = std::process::Command::new("umount")
            .arg(&half)
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(fs::read(&half).unwrap(), b"");
        let report = manager.restore().unwrap();
        assert!(report.errors.is_empty(), "{report:?}");
        assert!(!half.exists(), "the empty mount point goes");
        let names = container_names(&manager);
        assert_eq!(names, vec!["whole".to_string()]);
        assert!(config.netns_dir.join("whole").exists(), "a live one stays");
        manager.remove_container("whole", false).unwrap();
    });
}

#[test]
fn restore_forgets_a_gone_containers_log_with_it() {
    in_fresh_netns("restore-log", |config| {
        fs::create_dir_all(&config.netns_dir).unwrap();
        let manager = Manager::open(config.clone()).unwrap();
        manager.create_container(Some("web")).unwrap();
        let pid = manager
            .spawn_detached("web", &["sh".into(), "-c".into(), "echo OLD".into()])
            .unwrap();
        wait_for_exit(pid);
        let log = manager.log_path("web");
        assert_eq!(fs::read_to_string(&log).unwrap(), "OLD\n", "precondition");
        // Its namespace gone, as after a reboot: restore forgets the
        // container, and its log with it, as `rm` removes it.
        netns::delete_named(&config.netns_dir, "web").unwrap();
        let report = manager.restore().unwrap();
        assert!(report.errors.is_empty(), "{report:?}");
        assert!(container_names(&manager).is_empty());
        assert!(!log.exists(), "the forgotten container's log stays");
        // A new container of its name logs only its own output.
        manager.create_container(Some("web")).unwrap();
        let pid = manager
            .spawn_detached("web", &["sh".into(), "-c".into(), "echo NEW".into()])
            .unwrap();
        wait_for_exit(pid);
        assert_eq!(fs::read_to_string(&log).unwrap(), "NEW\n");
        manager.remove_container("web", true).unwrap();
    });
}

#[test]
fn rm_f_of_a_held_container_whose_mount_went_removes_its_mount_point() {
    in_fresh_netns("rm-unmounted", |config| {
        fs::create_dir_all(&config.netns_dir).unwrap();
        let manager = Manager::open(config.clone()).unwrap();
        manager.create_container(Some("held")).unwrap();
        let pid = manager
            .spawn_detached("held", &["sleep".into(), "100".into()])
            .unwrap();
        // Unmounted by another hand (`umount`, or an `ip netns del` whose
        // unlink failed): the empty mount point stays at the name, the
        // namespace runs on, held by the command.
        let path = config.netns_dir.join("held");
        let status = std::process::Command::new("umount")
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(fs::read(&path).unwrap(), b"", "precondition");
        let notes = manager.remove_container("held", true).unwrap();
        wait_for_exit(pid);
        assert!(container_names(&manager).is_empty(), "{notes:?}");
        // Before, it stayed: `ip netns list` named it, and a new container
        // of the name found a file that was no namespace.
        assert!(!path.exists(), "the empty mount point was left: {notes:?}");
        manager.create_container(Some("held")).unwrap();
        manager.remove_container("held", false).unwrap();
    });
}

/// Waits for the detached process `pid` (our child) to end.
fn wait_for_exit(pid: u32) {
    let mut status = 0;
    // SAFETY: waitpid on a child of this process, into a live int.
    let waited = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
    assert_eq!(waited, pid as libc::pid_t);
}

/// A network written straight into the state (this kernel may have no
/// ipvlan to create one): enough for an attach to get as far as its
/// target, with `lo` as parent.
fn recorded_network(config: &Config, name: &str) {
    use ipvlan::driver::{IpvlanFlag, IpvlanMode};
    use ipvlan::store::{NetworkRecord, NetworkState, ParentOrigin, StateDir, Timestamp};
    let store = StateDir::open(&config.state_dir).unwrap();
    let state = store.lock().unwrap();
    state
        .put_network(&NetworkRecord {
            id: "ab".repeat(32),
            name: name.to_string(),
            driver: "ipvlan".into(),
            mode: IpvlanMode::L2,
            flag: IpvlanFlag::Bridge,
            parent: "lo".into(),
            parent_origin: ParentOrigin::Existing,
            parent_index: None,
            internal: false,
            ipv6: false,
            mtu: None,
            subnets: vec![ipvlan::ipam::SubnetSpec {
                subnet: "10.200.0.0/24".parse().unwrap(),
                gateway: Some("10.200.0.1".parse().unwrap()),
                ip_range: None,
                aux: Vec::new(),
                host: Vec::new(),
            }],
            created: Timestamp::now(),
            options: vec![("parent".into(), "lo".into())],
            state: NetworkState::Created,
        })
        .unwrap();
}

/// Runs `f` on another thread (in this thread's network namespace) and
/// returns what it returns, failing the test when it takes more than ten
/// seconds; `unblock` then releases whatever holds it, so the thread ends.
fn promptly<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
    unblock: impl FnOnce(),
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(10)) {
        Ok(value) => {
            thread.join().unwrap();
            value
        }
        Err(_) => {
            unblock();
            let _ = thread.join();
            panic!("{what} did not return within 10 s");
        }
    }
}

/// Opens the FIFO for writing, which lets a reader blocked in open(2) go on.
fn release_fifo(fifo: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo);
}

#[test]
fn a_namespace_path_that_is_no_network_namespace_is_refused_at_once_and_before_the_lock() {
    use ipvlan::driver::{AttachRequest, Target};
    in_fresh_netns("notns", |config| {
        let manager = Manager::open(config.clone()).unwrap();
        recorded_network(config, "n1");
        let targets = config.state_dir.parent().unwrap().join("targets");
        fs::create_dir_all(targets.join("dir")).unwrap();
        fs::write(targets.join("file"), b"").unwrap();
        let fifo = targets.join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let cases: Vec<(PathBuf, &str)> = vec![
            (fifo.clone(), "a FIFO"),
            ("/dev/zero".into(), "a character device"),
            (targets.join("dir"), "a directory"),
            (targets.join("file"), "a regular file"),
            ("/proc/self/ns/mnt".into(), "a mnt namespace"),
        ];
        let before_state = common::snapshot(&config.state_dir);
        let before_links = link_names();
        let refusal = |path: &Path, found: &str| {
            format!(
                "{} is not a network namespace: it is {found}",
                path.display()
            )
        };
        let connect = |path: &Path| {
            let (config, target) = (config.clone(), Target::Path(path.to_path_buf()));
            move || {
                Manager::open(config)
                    .unwrap()
                    .connect("n1", &target, &AttachRequest::default())
                    .map(|_| ())
            }
        };
        let disconnect = |path: &Path| {
            let (config, target) = (config.clone(), Target::Path(path.to_path_buf()));
            move || {
                Manager::open(config)
                    .unwrap()
                    .disconnect("n1", &target)
                    .map(|_| ())
            }
        };
        for (path, found) in &cases {
            let what = format!("connect to {}", path.display());
            let err = promptly(&what, connect(path), || release_fifo(&fifo)).unwrap_err();
            assert_eq!(err.to_string(), refusal(path, found), "{what}");
            assert_eq!(err.kind(), ErrorKind::InvalidValue, "{what}");
            let what = format!("disconnect from {}", path.display());
            let err = promptly(&what, disconnect(path), || release_fifo(&fifo)).unwrap_err();
            assert_eq!(err.to_string(), refusal(path, found), "{what}");
        }
        assert_eq!(common::snapshot(&config.state_dir), before_state);
        assert_eq!(link_names(), before_links);

        // Another command holding the state lock does not delay the
        // refusal: it comes before the lock is asked for.
        let store = ipvlan::store::StateDir::open(&config.state_dir).unwrap();
        let mut held = Some(store.lock().unwrap());
        for (path, found) in &cases {
            let what = format!("connect to {} while the lock is held", path.display());
            let err = promptly(&what, connect(path), || {
                held = None;
                release_fifo(&fifo);
            })
            .unwrap_err();
            assert_eq!(err.to_string(), refusal(path, found), "{what}");
        }
        for (path, found) in &cases[..3] {
            let what = format!("disconnect from {} while the lock is held", path.display());
            let err = promptly(&what, disconnect(path), || {
                held = None;
                release_fifo(&fifo);
            })
            .unwrap_err();
            assert_eq!(err.to_string(), refusal(path, found), "{what}");
        }
        drop(held);
        assert_eq!(common::snapshot(&config.state_dir), before_state);
        drop(manager);
    });
}

#[test]
fn the_callers_own_namespace_is_refused_by_any_path_or_name() {
    use ipvlan::driver::{AttachRequest, Target};
    in_fresh_netns("ownns", |config| {
        let manager = Manager::open(config.clone()).unwrap();
        recorded_network(config, "n1");
        // The caller's namespace bound under a container name, as another
        // tool might have done.
        fs::create_dir_all(&config.netns_dir).unwrap();
        let alias = config.netns_dir.join("here");
        fs::write(&alias, b"").unwrap();
        let status = std::process::Command::new("mount")
            .arg("--bind")
            .arg("/proc/self/ns/net")
            .arg(&alias)
            .status()
            .unwrap();
        assert!(status.success());
        let thread = fs::read_link("/proc/thread-self").unwrap();
        let tid = thread.file_name().unwrap().to_str().unwrap().to_string();
        let own = |path: &str| {
            format!(
                "{path} is the network namespace ipvlan itself runs in, where the networks' parent interfaces are; only another namespace can be attached"
            )
        };
        let cases: Vec<(Target, String)> = vec![
            (
                Target::Path("/proc/thread-self/ns/net".into()),
                own("/proc/thread-self/ns/net"),
            ),
            // `..` as the kernel takes it: `self` is `PID`, and `PID/..`
            // is `/proc` (`thread-self/..` would be `PID/task`, where no
            // `thread-self` is: not found, as `ls` says).
            (
                Target::Path("/proc/self/../thread-self//ns/net".into()),
                own("/proc/self/../thread-self/ns/net"),
            ),
            (
                Target::Path(format!("/proc/{tid}/ns/net").into()),
                own(&format!("/proc/{tid}/ns/net")),
            ),
            (
                Target::Path(format!("/proc/self/task/{tid}/ns/net").into()),
                own(&format!("/proc/self/task/{tid}/ns/net")),
            ),
            (
                Target::Container("here".into()),
                own(&alias.display().to_string()),
            ),
        ];
        let before_state = common::snapshot(&config.state_dir);
        let before_links = link_names();
        for (target, text) in cases {
            let err = manager
                .connect("n1", &target, &AttachRequest::default())
                .unwrap_err();
            assert_eq!(err.to_string(), text, "{target:?}");
            assert_eq!(err.kind(), ErrorKind::InvalidValue, "{target:?}");
            assert_eq!(
                common::snapshot(&config.state_dir),
                before_state,
                "{target:?}"
            );
            assert_eq!(link_names(), before_links, "{target:?}");
        }
    });
}

#[test]
fn a_namespace_replaced_while_connect_waits_for_the_lock_is_not_attached() {
    use ipvlan::driver::{AttachRequest, Target};
    in_fresh_netns("replaced", |config| {
        let manager = Manager::open(config.clone()).unwrap();
        recorded_network(config, "n1");
        drop(netns::create_named(&config.netns_dir, "racer").unwrap());
        let path = config.netns_dir.join("racer");
        let before_state = common::snapshot(&config.state_dir);
        let store = ipvlan::store::StateDir::open(&config.state_dir).unwrap();
        let held = store.lock().unwrap();
        let connecting = {
            let config = config.clone();
            std::thread::spawn(move || {
                Manager::open(config).unwrap().connect(
                    "n1",
                    &Target::Container("racer".into()),
                    &AttachRequest::default(),
                )
            })
        };
        // Until connect holds the namespace open, then a moment for it to
        // reach the lock.
        let opened = || {
            fs::read_dir("/proc/self/fd")
                .unwrap()
                .flatten()
                .any(|fd| fs::read_link(fd.path()).is_ok_and(|target| target == path))
        };
        for _ in 0..500 {
            if opened() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(opened(), "connect never opened the namespace");
        std::thread::sleep(std::time::Duration::from_secs(1));
        // `ip netns del racer; ip netns add racer` meanwhile.
        netns::delete_named(&config.netns_dir, "racer").unwrap();
        drop(netns::create_named(&config.netns_dir, "racer").unwrap());
        drop(held);
        let err = connecting.join().unwrap().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} no longer leads to the namespace it named when connect began (removed or replaced meanwhile); nothing was done",
                path.display()
            )
        );
        assert_eq!(common::snapshot(&config.state_dir), before_state);
        drop(manager);
    });
}

/// Without root, each test that needs it fails with the same one line.
#[test]
fn without_root_every_privileged_test_fails_with_one_reason() {
    common::privilege::assert_unprivileged_run_fails_with_one_reason(
        "without_root_every_privileged_test_fails_with_one_reason",
    );
}

/// `doctor`'s CNI lines, on directories of the test's own: where the plugin
/// is installed (this program by link or copy, or another program under its
/// name) and whether each config naming `ipvlan` can run.
#[test]
fn doctor_reports_cni_readiness_from_the_plugin_and_config_directories() {
    use ipvlan::driver::{cni_readiness, CniDirs};
    use std::os::unix::fs::symlink;

    let dir = scratch("cni-readiness");
    let this = dir.join("this-binary");
    fs::write(&this, b"\x7fELF ours").unwrap();
    fs::set_permissions(&this, fs::Permissions::from_mode(0o755)).unwrap();
    let program = |path: &Path, bytes: &[u8]| {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    };
    let (linked, copied, reference, empty) = (
        dir.join("linked"),
        dir.join("copied"),
        dir.join("reference"),
        dir.join("empty"),
    );
    for d in [&linked, &copied, &reference, &empty] {
        fs::create_dir_all(d).unwrap();
    }
    symlink(&this, linked.join("ipvlan")).unwrap();
    program(&copied.join("ipvlan"), b"\x7fELF ours");
    program(&reference.join("ipvlan"), b"\x7fELF theirs");
    let conf = dir.join("net.d");
    fs::create_dir_all(&conf).unwrap();
    let dirs = |bin: &[&PathBuf]| CniDirs {
        bin: bin.iter().map(|d| d.to_path_buf()).collect(),
        conf: vec![conf.clone(), dir.join("no-such-conf-dir")],
        this_binary: this.clone(),
        podman_order: false,
    };
    let lines = |dirs: &CniDirs| {
        let checks = cni_readiness(dirs);
        assert_eq!(checks.len(), 2, "{checks:?}");
        assert_eq!(checks[0].name, "cni plugin");
        assert_eq!(checks[1].name, "cni configs");
        (checks[0].clone(), checks[1].clone())
    };

    // Nothing installed, no config: a host that does not run CNI passes.
    let (plugin, configs) = lines(&dirs(&[&empty]));
    assert!(plugin.ok && configs.ok, "{plugin:?} {configs:?}");
    assert!(
        plugin
            .detail
            .starts_with("not installed in any CNI plugin directory"),
        "{plugin:?}"
    );
    assert!(
        configs.detail.starts_with("no config names ipvlan"),
        "{configs:?}"
    );

    // A link to this program and a copy of it are ours; another program
    // under the name is not, and when it comes first a runtime runs it.
    let (plugin, _) = lines(&dirs(&[&reference, &linked, &copied]));
    assert_eq!(
        plugin.detail,
        format!(
            "{}: another program (the reference plugin?); {}: this program; {}: this program \
             (a runtime searching in this order runs the other one first)",
            reference.join("ipvlan").display(),
            linked.join("ipvlan").display(),
            copied.join("ipvlan").display()
        )
    );

    // In the usual directories, ours first (where containerd looks) and
    // another after it: Podman, which searches the first one last, runs
    // the other. Before, nothing said so.
    let usual = CniDirs {
        podman_order: true,
        ..dirs(&[&copied, &reference])
    };
    let (plugin, _) = lines(&usual);
    assert_eq!(
        plugin.detail,
        format!(
            "{}: this program; {}: another program (the reference plugin?) \
             (Podman, which searches {} last, runs the other one)",
            copied.join("ipvlan").display(),
            reference.join("ipvlan").display(),
            copied.display()
        )
    );
    // Ours where Podman looks first: no runtime of the usual ones runs
    // the other, but the one searching only the first directory does.
    let (plugin, _) = lines(&CniDirs {
        podman_order: true,
        ..dirs(&[&reference, &copied])
    });
    assert!(
        plugin
            .detail
            .ends_with("(a runtime searching in this order runs the other one first)"),
        "{plugin:?}"
    );
    let (plugin, _) = lines(&dirs(&[&copied, &reference]));
    assert!(!plugin.detail.contains("runs the other"), "{plugin:?}");

    // A conflist with our IPAM needs our plugin; a .conf delegating to
    // host-local needs host-local; a broken file naming ipvlan is reported,
    // another tool's broken file is not ours to report.
    fs::write(
        conf.join("10-ours.conflist"),
        r#"{"cniVersion":"1.0.0","name":"podnet","plugins":[{"type":"ipvlan","master":"eth0","ipam":{"type":"ipvlan","subnet":"10.1.0.0/24"}},{"type":"portmap"}]}"#,
    )
    .unwrap();
    fs::write(
        conf.join("20-host-local.conf"),
        r#"{"cniVersion":"0.4.0","name":"hl","type":"ipvlan","master":"eth0","ipam":{"type":"host-local","subnet":"10.2.0.0/24"}}"#,
    )
    .unwrap();
    fs::write(conf.join("30-other.conflist"), "{ not json, and not ours").unwrap();
    fs::write(conf.join("notes.txt"), "ipvlan {").unwrap();
    let (_, configs) = lines(&dirs(&[&reference]));
    assert!(!configs.ok, "{configs:?}");
    assert_eq!(
        configs.detail,
        format!(
            "podnet ({}): ipam ipvlan; hl ({}): ipam host-local; \
             podnet uses keys only ipvlan's own plugin reads, which is not installed; \
             hl: its IPAM plugin host-local is in none of {}",
            conf.join("10-ours.conflist").display(),
            conf.join("20-host-local.conf").display(),
            reference.display()
        )
    );
    program(&copied.join("host-local"), b"\x7fELF host-local");
    let (_, configs) = lines(&dirs(&[&reference, &copied]));
    assert!(configs.ok, "{configs:?}");

    fs::write(conf.join("40-broken.conflist"), r#"{"type": "ipvlan", "#).unwrap();
    let (_, configs) = lines(&dirs(&[&copied]));
    assert!(!configs.ok, "{configs:?}");
    let broken = format!(
        "{}: not valid JSON (",
        conf.join("40-broken.conflist").display()
    );
    assert!(configs.detail.contains(&broken), "{configs:?}");

    // An empty IPAM type is none, as the runtimes read it; before, a
    // plugin named "" was looked for and missed.
    let chained = dir.join("net.d-chained");
    fs::create_dir_all(&chained).unwrap();
    fs::write(
        chained.join("10-chained.conf"),
        r#"{"cniVersion":"1.0.0","name":"ch","type":"ipvlan","master":"eth0","ipam":{"type":""}}"#,
    )
    .unwrap();
    let (_, configs) = lines(&CniDirs {
        conf: vec![chained.clone()],
        ..dirs(&[&copied])
    });
    assert!(configs.ok, "{configs:?}");
    assert_eq!(
        configs.detail,
        format!(
            "ch ({}): ipam none (chained)",
            chained.join("10-chained.conf").display()
        )
    );
    let _ = fs::remove_dir_all(&dir);
}

/// A connect keeps its thread in the target's namespace from the socket's
/// opening to the link's settings (one visit): whichever way it ends
/// before those, refused under the lock or failed at the kernel's create,
/// the calling thread is back in its own namespace and nothing changed.
#[test]
fn a_failed_connect_leaves_its_thread_in_its_own_namespace() {
    use ipvlan::driver::{AttachRequest, Target};
    use std::os::unix::fs::MetadataExt;
    in_fresh_netns("visit", |config| {
        let manager = Manager::open(config.clone()).unwrap();
        recorded_network(config, "n1");
        drop(netns::create_named(&config.netns_dir, "c1").unwrap());
        let own = || fs::metadata("/proc/thread-self/ns/net").unwrap().ino();
        let home = own();
        let connect = |request: &AttachRequest| {
            manager
                .connect("n1", &Target::Container("c1".into()), request)
                .unwrap_err()
        };
        // The first attempt makes the network's directories; from then on
        // a failed attempt changes nothing but the allocation cursor (a
        // hint, see the store's layout).
        connect(&AttachRequest::default());
        assert_eq!(own(), home);
        let snapshot = || {
            let mut state = common::snapshot(&config.state_dir);
            state.retain(|path, _| !path.ends_with("cursor"));
            state
        };
        let before_state = snapshot();
        let cases = [
            // Refused under the lock, after the target was opened.
            (
                AttachRequest {
                    ipv4: None,
                    ipv6: Some("fd00::5".parse().unwrap()),
                },
                "network n1 has no IPv6 subnet",
            ),
            // Taken up to the kernel, whose create refuses an ipvlan link
            // on `lo` (or has no ipvlan): given back.
            (AttachRequest::default(), "attaching c1 to network n1: "),
        ];
        for (request, refusal) in cases {
            let err = connect(&request);
            assert!(err.to_string().contains(refusal), "{request:?}: {err}");
            assert_eq!(own(), home, "{request:?}: {err}");
            assert_eq!(snapshot(), before_state, "{request:?}: {err}");
        }
        drop(manager);
    });
}

/// An attach waits while a dead batch's intents cannot be made records
/// (the lock could not expand its `batch-intents`): an endpoint they name
/// may have a link no record names, which the attach would not see (it
/// would give the namespace a second link, and maybe that link's address
/// to another). Before, the attach went on. Once the file reads again, it
/// does.
#[test]
fn an_attach_waits_while_a_dead_batchs_intents_are_not_records() {
    use ipvlan::driver::{AttachRequest, Target};
    in_fresh_netns("pending", |config| {
        let manager = Manager::open(config.clone()).unwrap();
        recorded_network(config, "n1");
        drop(netns::create_named(&config.netns_dir, "c1").unwrap());
        let store = ipvlan::store::StateDir::open(&config.state_dir).unwrap();
        let network = store.network_by_name("n1").unwrap();
        let (file, kept) = dead_batch_out_of_reach(config, &store, &network, None);
        let connect = || {
            manager
                .connect(
                    "n1",
                    &Target::Container("c1".into()),
                    &AttachRequest::default(),
                )
                .unwrap_err()
                .to_string()
        };
        let refused = connect();
        assert!(
            refused.contains("network n1 may have an endpoint no record names yet"),
            "{refused}"
        );
        // A batch likewise, before it lists what its checks look up.
        let batch = manager
            .connect_many("n1", &[Target::Container("c1".into())])
            .unwrap_err()
            .to_string();
        assert!(
            batch.contains("network n1 may have an endpoint no record names yet"),
            "{batch}"
        );
        // Readable again: made records, and the attach goes on (to the
        // kernel's create, which this host refuses).
        fs::remove_file(&file).unwrap();
        fs::rename(&kept, &file).unwrap();
        let attempted = connect();
        assert!(
            attempted.contains("attaching c1 to network n1: "),
            "{attempted}"
        );
        assert_eq!(
            store.endpoint(&network.id, "e7").unwrap().map(|e| e.state),
            Some(ipvlan::store::EndpointState::Attaching)
        );
        drop(manager);
    });
}

/// A batch that died holding the lock, its intent of endpoint `e7` on
/// `network` in its file and the page saying one may be there (`also`
/// recorded beside it); then the file put out of reach (a link, which the
/// store refuses). The file's path and where it was moved.
fn dead_batch_out_of_reach(
    config: &Config,
    store: &ipvlan::store::StateDir,
    network: &ipvlan::store::NetworkRecord,
    also: Option<&ipvlan::store::EndpointRecord>,
) -> (PathBuf, PathBuf) {
    let intent = ipvlan::store::EndpointRecord {
        state: ipvlan::store::EndpointState::Attaching,
        mac: None,
        ifindex: Some(7001),
        ..common::endpoint(network, "e7", Some("10.200.0.7/24"), None)
    };
    {
        let locked = store.lock().unwrap();
        if let Some(record) = also {
            locked.put_endpoint(record).unwrap();
        }
        locked
            .put_batch_intents(&mut [&intent].into_iter())
            .unwrap();
    }
    let file = config.state_dir.join("batch-intents");
    let kept = config.state_dir.with_file_name("intents-kept");
    fs::rename(&file, &kept).unwrap();
    std::os::unix::fs::symlink(&kept, &file).unwrap();
    (file, kept)
}

/// `restore` repairs no endpoint while a dead batch's intents cannot be
/// made records: any may be one they name, its record older than what the
/// batch did (a detach's link gone, which a repair would make again). Here
/// an endpoint whose namespace is gone stays until the file reads; then it
/// is released. Before, it was released (or re-made) at once.
#[test]
fn restore_repairs_no_endpoint_while_a_dead_batchs_intents_are_not_records() {
    in_fresh_netns("pending-restore", |config| {
        let manager = Manager::open(config.clone()).unwrap();
        recorded_network(config, "n1");
        let store = ipvlan::store::StateDir::open(&config.state_dir).unwrap();
        let network = store.network_by_name("n1").unwrap();
        let gone = common::endpoint(&network, "e8", Some("10.200.0.8/24"), None);
        let (file, kept) = dead_batch_out_of_reach(config, &store, &network, Some(&gone));
        let report = manager.restore().unwrap();
        assert!(report.endpoints_released.is_empty(), "{report:?}");
        assert!(
            report
                .errors
                .iter()
                .any(|e| e.contains("no endpoint is repaired")),
            "{report:?}"
        );
        assert!(store.endpoint(&network.id, "e8").unwrap().is_some());
        fs::remove_file(&file).unwrap();
        fs::rename(&kept, &file).unwrap();
        let report = manager.restore().unwrap();
        assert_eq!(report.endpoints_released, ["n1: c-e8"], "{report:?}");
        assert!(store.endpoint(&network.id, "e8").unwrap().is_none());
        drop(manager);
    });
}

/// Another tool's process running in a new namespace at `path`, and that
/// namespace's inode, once the process is inside.
fn foreign_holder(path: &Path) -> (KillOnDrop, u64) {
    let inode = fs::metadata(path).unwrap().ino();
    let holder = KillOnDrop(
        Command::new("nsenter")
            .arg(format!("--net={}", path.display()))
            .args(["sleep", "1000"])
            .spawn()
            .expect("nsenter (util-linux)"),
    );
    let inside = format!("net:[{inode}]");
    let entered = (0..500).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        fs::read_link(format!("/proc/{}/ns/net", holder.0.id()))
            .is_ok_and(|ns| ns.as_os_str() == inside.as_str())
    });
    assert!(entered, "the holder never entered {}", path.display());
    (holder, inode)
}

/// Asserts that the process `holder` still runs in the namespace of inode
/// `inode` at `path`, still mounted there.
fn still_theirs(holder: &mut KillOnDrop, path: &Path, inode: u64) {
    assert_eq!(
        holder.0.try_wait().unwrap(),
        None,
        "their process was killed"
    );
    assert_eq!(fs::metadata(path).unwrap().ino(), inode);
    assert!(
        netns::Netns::open_path(path).is_ok(),
        "their namespace was unmounted"
    );
}

/// With `theirs(NAME)` making our container NAME and then putting another
/// tool's namespace (with a process in it) where ours is: `exec` of `web`
/// refuses to run there, `rm -f web` forgets our container and leaves
/// theirs, and so does `restore` for `db`; returns `db`'s holder, path and
/// inode.
fn none_of_theirs_is_touched(
    manager: &Manager,
    config: &Config,
    theirs: &dyn Fn(&str) -> (KillOnDrop, u64),
) -> (KillOnDrop, PathBuf, u64) {
    let (mut holder, inode) = theirs("web");
    let path = config.netns_dir.join("web");
    let refused = manager
        .exec(
            "web",
            &["true".into()],
            &ipvlan::driver::ExecOptions::default(),
        )
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("is not the namespace made for container web"),
        "{refused}"
    );
    still_theirs(&mut holder, &path, inode);
    let notes = manager.remove_container("web", true).unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("is not the namespace made for container web")),
        "{notes:?}"
    );
    still_theirs(&mut holder, &path, inode);
    assert!(manager.containers().unwrap().is_empty());

    // The same found by restore (a reboot, then their tool first).
    let (mut other, other_inode) = theirs("db");
    let other_path = config.netns_dir.join("db");
    let report = manager.restore().unwrap();
    assert!(report.errors.is_empty(), "{report:?}");
    assert!(manager.containers().unwrap().is_empty(), "{report:?}");
    still_theirs(&mut other, &other_path, other_inode);
    (other, other_path, other_inode)
}

/// As [`another_tools_namespace_at_our_containers_name_is_never_run_in_killed_or_deleted`]
/// on a kernel without namespace cookies (before 5.14), which hands the
/// freed nsfs inode out again at once: the new namespace at our name has
/// the inode recorded for ours, and no cookie tells them apart. (The
/// record is written as such a kernel writes it: no cookie, and the inode
/// the next namespace got.) Our own container's namespace, recorded the
/// same way, is still ours: `rm -f` deletes it.
#[test]
fn another_tools_namespace_with_our_inode_on_a_kernel_without_cookies_is_never_ours() {
    in_fresh_netns("reusedino", |config| {
        let manager = Manager::open(config.clone()).unwrap();
        let theirs_with_our_inode = |name: &str| {
            let (holder, inode) = theirs_at_our_name(&manager, config, name);
            record_as_a_kernel_without_cookies(config, name, Some(inode));
            (holder, inode)
        };
        let (mut other, other_path, other_inode) =
            none_of_theirs_is_touched(&manager, config, &theirs_with_our_inode);
        still_theirs(&mut other, &other_path, other_inode);

        manager.create_container(Some("ours")).unwrap();
        record_as_a_kernel_without_cookies(config, "ours", None);
        manager.remove_container("ours", true).unwrap();
        assert!(!config.netns_dir.join("ours").exists(), "ours is deleted");
        let _ = netns::delete_named(&config.netns_dir, "db");
        let _ = netns::delete_named(&config.netns_dir, "web");
    });
}

/// `run --rm` removing the container it made
/// (`Manager::remove_made_container`) on a kernel without namespace
/// cookies: the container given its name meanwhile (`rm -f`, then `run
/// --name` again) may have the inode number ours had. It is told apart by
/// its inode's time and left alone; before, the inode number alone made it
/// ours, and it was removed.
#[test]
fn run_rm_tells_its_container_from_one_made_at_its_name_since_without_cookies() {
    in_fresh_netns("madeagain", |config| {
        let manager = Manager::open(config.clone()).unwrap();
        let mut ours = manager.create_container(Some("same")).unwrap();
        manager.remove_container("same", true).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30));
        manager.create_container(Some("same")).unwrap();
        let path = config.netns_dir.join("same");
        let new_inode = fs::metadata(&path).unwrap().ino();
        // As such a kernel records both: no cookie, and the new one got
        // our inode number.
        record_as_a_kernel_without_cookies(config, "same", None);
        ours.netns_id = ours.netns_id.map(|id| ipvlan::store::records::NetnsId {
            cookie: None,
            ino: new_inode,
            ..id
        });
        // Nor does its command start in the new one (a run that made it,
        // held up before entering while `rm -f` and another run came):
        // before, without cookies, it ran there.
        for started in [
            manager
                .exec_in_made_container(
                    &ours,
                    &["true".into()],
                    &ipvlan::driver::ExecOptions::default(),
                )
                .map(drop),
            manager
                .spawn_detached_in_made_container(&ours, &["true".into()])
                .map(drop),
        ] {
            let refused = started.expect_err("started in the container made since");
            assert!(
                refused.to_string().contains("was removed meanwhile"),
                "{refused}"
            );
        }
        let notes = manager.remove_made_container(&ours, true).unwrap();
        assert!(
            notes.iter().any(|n| n.contains("was removed meanwhile")),
            "{notes:?}"
        );
        assert_eq!(
            fs::metadata(&path).unwrap().ino(),
            new_inode,
            "the new one stays"
        );
        // The new one's own removal goes on.
        let new = manager.containers().unwrap().into_iter().next().unwrap();
        assert!(manager
            .remove_made_container(&new, true)
            .unwrap()
            .is_empty());
        assert!(!path.exists());
    });
}

/// Our container `name` made, its namespace deleted (`ip netns del`) and
/// another tool's put at its name (`ip netns add`), with a process in it
/// ([`foreign_holder`]): the holder and the new namespace's inode.
fn theirs_at_our_name(manager: &Manager, config: &Config, name: &str) -> (KillOnDrop, u64) {
    manager.create_container(Some(name)).unwrap();
    netns::delete_named(&config.netns_dir, name).unwrap();
    // Ours and theirs made more than a clock tick apart, as two commands
    // are (their inodes' times differ).
    std::thread::sleep(std::time::Duration::from_millis(30));
    drop(netns::create_named(&config.netns_dir, name).unwrap());
    foreign_holder(&config.netns_dir.join(name))
}

/// Rewrites container `name`'s record as a kernel without namespace
/// cookies writes it (see [`common::as_a_kernel_without_cookies`]).
fn record_as_a_kernel_without_cookies(config: &Config, name: &str, inode: Option<u64>) {
    let record = common::container_record(&config.state_dir, name);
    common::as_a_kernel_without_cookies(&record, inode);
}

/// Our container's namespace deleted (`ip netns del web`) and another
/// tool's put at the same name (`ip netns add web`), with a process in it:
/// `exec` refuses to run there, `rm -f` forgets our container without
/// killing, unmounting or deleting theirs, and so does `restore`.
#[test]
fn another_tools_namespace_at_our_containers_name_is_never_run_in_killed_or_deleted() {
    in_fresh_netns("reused", |config| {
        let manager = Manager::open(config.clone()).unwrap();
        let (mut other, other_path, other_inode) =
            none_of_theirs_is_touched(&manager, config, &|name| {
                theirs_at_our_name(&manager, config, name)
            });
        let gone = manager.remove_container("db", true).unwrap_err();
        assert_eq!(gone.kind(), ErrorKind::NotFound, "{gone}");
        still_theirs(&mut other, &other_path, other_inode);
        let _ = netns::delete_named(&config.netns_dir, "db");
        let _ = netns::delete_named(&config.netns_dir, "web");
    });
}

/// Our container's name deleted and another tool's namespace put there
/// (`ip netns del web`, `ip netns add web`) while a process of ours still
/// runs in ours: ours lives on, held by that process. `restore` keeps our
/// container, `rm -f` kills our process and leaves theirs (process,
/// namespace and mount) alone. Before, both took ours for gone: restore
/// forgot the container while its process, link and address lived on.
#[test]
fn our_namespace_held_by_a_process_beside_another_tools_at_its_name() {
    in_fresh_netns("heldbeside", |config| {
        let manager = Manager::open(config.clone()).unwrap();
        manager.create_container(Some("web")).unwrap();
        let ours = manager
            .spawn_detached("web", &["sleep".into(), "1000".into()])
            .unwrap();
        let our_link = fs::read_link(format!("/proc/{ours}/ns/net")).unwrap();
        netns::delete_named(&config.netns_dir, "web").unwrap();
        drop(netns::create_named(&config.netns_dir, "web").unwrap());
        let path = config.netns_dir.join("web");
        let (mut theirs, inode) = foreign_holder(&path);

        let report = manager.restore().unwrap();
        assert!(report.errors.is_empty(), "{report:?}");
        let names = container_names(&manager);
        assert_eq!(names, ["web"], "{report:?}");
        manager.remove_container("web", true).unwrap();
        // Ours killed (a zombie of ours now, which has no namespace).
        let ended = (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            fs::read_link(format!("/proc/{ours}/ns/net")).map_or(true, |l| l != our_link)
        });
        assert!(ended, "our process outlived rm -f");
        still_theirs(&mut theirs, &path, inode);
        assert!(manager.containers().unwrap().is_empty());
        let _ = netns::delete_named(&config.netns_dir, "web");
    });
}

/// The names of the containers `manager` lists.
fn container_names(manager: &Manager) -> Vec<String> {
    manager
        .containers()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect()
}

/// Rewrites container `name`'s record as if made in another boot: its
/// identity's boot (the first 32 bits of the boot id) changed, nothing
/// else.
fn record_another_boot(config: &Config, name: &str) {
    let file = common::container_record(&config.state_dir, name);
    let text = fs::read_to_string(&file).unwrap();
    let boot_id = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let this_boot = u32::from_str_radix(&boot_id[..8], 16).unwrap();
    let named = format!("\"netns_boot\": {this_boot}");
    assert!(text.contains(&named), "the record names this boot: {text}");
    let last_boot = format!("\"netns_boot\": {}", this_boot ^ 1);
    fs::write(&file, text.replace(&named, &last_boot)).unwrap();
}

/// The identity our container's namespace had in the last boot carried by
/// a namespace of this one, another tool's: cookies count from 1 at each
/// boot and inodes are handed out again, so one made early in a boot (at
/// our container's name, before `ipvlan restore` runs) can repeat it.
/// Shown here by the record's boot alone changing (ours is left where it
/// is, with its identity, and a process in it): `exec` refuses to run
/// there, `rm -f` and `restore` forget our container and kill, unmount
/// and delete nothing. Before records named the boot, this namespace was
/// taken for ours: `exec` ran in it, `rm -f` killed its process and
/// deleted it.
#[test]
fn an_identity_from_another_boot_is_never_our_namespace() {
    in_fresh_netns("lastboot", |config| {
        let manager = Manager::open(config.clone()).unwrap();
        let from_another_boot = |name: &str| {
            manager.create_container(Some(name)).unwrap();
            record_another_boot(config, name);
            foreign_holder(&config.netns_dir.join(name))
        };
        drop(none_of_theirs_is_touched(
            &manager,
            config,
            &from_another_boot,
        ));
        let _ = netns::delete_named(&config.netns_dir, "db");
        let _ = netns::delete_named(&config.netns_dir, "web");
    });
}

/// A container whose record says it is being removed (an `rm` under way,
/// or one interrupted) or not made yet (a `run` under way, or one
/// interrupted) runs nothing new: a process `exec` started in a container
/// `rm -f` is taking apart could outlive it. Before, `exec` ran in it.
/// The argument that makes this test binary, started inside a container
/// by the test below, the process that test looks for.
const ZOMBIE_LEADER_ROLE: &str = "ZOMBIE-LEADER-ROLE";

/// A process whose main thread has ended while another runs on (a zombie
/// thread-group leader, whose `/proc/PID/ns/net` reads nothing) is still
/// inside: `rm` refuses, and `rm -f` kills it. Before, only the main
/// thread's link was read: `rm` removed the container and left the
/// thread running in a namespace with no name and no record. The process
/// is this test binary, run with the role's argument.
#[test]
fn a_process_whose_main_thread_ended_is_still_found_inside() {
    if std::env::args().any(|arg| arg == ZOMBIE_LEADER_ROLE) {
        return end_the_main_thread_and_run_on();
    }
    in_fresh_netns("zombie-leader", |config| {
        let manager = Manager::open(config.clone()).unwrap();
        manager.create_container(Some("web")).unwrap();
        let exe = std::env::current_exe().unwrap().display().to_string();
        let argv: Vec<std::ffi::OsString> = [
            exe.as_str(),
            "--exact",
            "a_process_whose_main_thread_ended_is_still_found_inside",
            ZOMBIE_LEADER_ROLE,
        ]
        .map(Into::into)
        .to_vec();
        let pid = manager.spawn_detached("web", &argv).unwrap();
        let ended = (0..500).any(|_| {
            let main_gone = fs::read_link(format!("/proc/{pid}/ns/net")).is_err();
            let threads = fs::read_dir(format!("/proc/{pid}/task")).map_or(0, Iterator::count);
            std::thread::sleep(std::time::Duration::from_millis(20));
            main_gone && threads > 0
        });
        assert!(ended, "the main thread of {pid} never ended alone");
        let refused = manager
            .remove_container("web", false)
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains(&format!(
                "container web still has processes running (pids {pid})"
            )),
            "{refused}"
        );
        manager.remove_container("web", true).unwrap();
        let killed = (0..500).any(|_| {
            let alive = fs::read_to_string(format!("/proc/{pid}/status"))
                .is_ok_and(|status| !status.contains("State:\tZ"));
            std::thread::sleep(std::time::Duration::from_millis(10));
            !alive
        });
        assert!(killed, "rm -f left {pid} running");
    });
}

/// The role: the main thread ends (a signal's handler calls `exit(2)`,
/// which ends the calling thread alone), this one runs on for a minute.
fn end_the_main_thread_and_run_on() {
    extern "C" fn end_this_thread(_: libc::c_int) {
        // SAFETY: exit(2) (not exit_group) ends only the calling thread.
        unsafe { libc::syscall(libc::SYS_exit, 0) };
    }
    let handler: extern "C" fn(libc::c_int) = end_this_thread;
    // SAFETY: a handler that only makes a system call; SIGUSR1 goes to the
    // main thread alone (tgkill with its tid, the process id).
    unsafe {
        libc::signal(libc::SIGUSR1, handler as libc::sighandler_t);
        libc::syscall(
            libc::SYS_tgkill,
            libc::getpid(),
            libc::getpid(),
            libc::SIGUSR1,
        );
    }
    std::thread::sleep(std::time::Duration::from_secs(60));
}

#[test]
fn exec_runs_nothing_in_a_container_being_removed_or_made() {
    in_fresh_netns("removing", |config| {
        let manager = Manager::open(config.clone()).unwrap();
        manager.create_container(Some("web")).unwrap();
        let file = common::container_record(&config.state_dir, "web");
        let set_state = |from: &str, to: &str| {
            let text = fs::read_to_string(&file).unwrap();
            let from = format!("\"state\": \"{from}\"");
            assert!(text.contains(&from), "{text}");
            fs::write(&file, text.replace(&from, &format!("\"state\": \"{to}\""))).unwrap();
        };
        let exec = || {
            manager.exec(
                "web",
                &["true".into()],
                &ipvlan::driver::ExecOptions::default(),
            )
        };
        // Said as a killed command's while no command holds the store's
        // lock, as one at work while another does.
        let store = ipvlan::store::StateDir::open(&config.state_dir).unwrap();
        for (half, interrupted, at_work) in [
            (
                "removing",
                "container web was left half removed by an interrupted rm (`ipvlan restore` finishes it)",
                "container web is being removed",
            ),
            (
                "creating",
                "container web was left half made by an interrupted run (`ipvlan restore` rolls it back)",
                "container web is not made yet: a run is making it",
            ),
        ] {
            set_state("created", half);
            let refused = exec().unwrap_err().to_string();
            assert!(refused.contains(interrupted), "{refused}");
            let held = store.lock().unwrap();
            let refused = exec().unwrap_err().to_string();
            assert!(refused.contains(at_work), "{refused}");
            drop(held);
            set_state(half, "created");
        }
        assert!(exec().is_ok());
        manager.remove_container("web", true).unwrap();
    });
}

/// After a reboot our container's namespace is gone; a symbolic link
/// another tool put at its name (`ln -s /proc/PID/ns/net /run/netns/web`, a
/// common idiom) is theirs. Before, `restore` refused the link on every
/// boot and kept our record for good (and `rm` refused too); now a record
/// made in another boot is forgotten without opening what is there.
#[test]
fn a_link_at_the_name_of_a_container_of_another_boot_is_left_and_the_container_forgotten() {
    in_fresh_netns("linkboot", |config| {
        let manager = Manager::open(config.clone()).unwrap();
        manager.create_container(Some("web")).unwrap();
        record_another_boot(config, "web");
        // The reboot took ours; their link is at the name.
        netns::delete_named(&config.netns_dir, "web").unwrap();
        let target = config.state_dir.with_file_name("their-target");
        fs::write(&target, "theirs\n").unwrap();
        let path = config.netns_dir.join("web");
        std::os::unix::fs::symlink(&target, &path).unwrap();

        let report = manager.restore().unwrap();
        assert!(report.errors.is_empty(), "{report:?}");
        assert!(manager.containers().unwrap().is_empty(), "{report:?}");
        assert_eq!(fs::read_link(&path).unwrap(), target);
        assert_eq!(fs::read_to_string(&target).unwrap(), "theirs\n");
        fs::remove_file(&path).unwrap();
    });
}

/// Commands find a record by its file's name and act on its fields: a
/// container record whose name is not its file's (here an absolute path,
/// as a hand edit could make it) is damage, reported and left alone, and
/// `restore` deletes nothing through it. Nor is a plain file with data in
/// it at one of our container's names taken for the empty mount point a
/// killed create leaves.
#[test]
fn records_naming_another_file_and_files_with_data_at_our_names_are_left_alone() {
    in_fresh_netns("recname", |config| {
        let manager = Manager::open(config.clone()).unwrap();
        manager.create_container(Some("web")).unwrap();
        let victim = config.state_dir.with_file_name("victim.conf");
        fs::write(&victim, "precious\n").unwrap();
        let dir = config.state_dir.join("records/containers");
        let text = fs::read_to_string(dir.join("web.json")).unwrap();
        let edited = text.replace(
            "\"name\": \"web\"",
            &format!("\"name\": \"{}\"", victim.display()),
        );
        assert_ne!(edited, text, "{text}");
        fs::write(dir.join("web.json"), &edited).unwrap();
        // The name of another container of ours: damage too.
        manager.create_container(Some("api")).unwrap();
        let renamed = fs::read_to_string(dir.join("api.json"))
            .unwrap()
            .replace("\"name\": \"api\"", "\"name\": \"web\"");
        fs::write(dir.join("api.json"), &renamed).unwrap();
        // Another tool's file, with data in it, at a name of ours.
        manager.create_container(Some("db")).unwrap();
        netns::delete_named(&config.netns_dir, "db").unwrap();
        fs::write(config.netns_dir.join("db"), "theirs\n").unwrap();

        let report = manager.restore().unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
        assert_eq!(
            fs::read_to_string(config.netns_dir.join("db")).unwrap(),
            "theirs\n"
        );
        assert!(netns::Netns::open_path(config.netns_dir.join("web")).is_ok());
        assert_eq!(fs::read_to_string(dir.join("web.json")).unwrap(), edited);
        assert_eq!(fs::read_to_string(dir.join("api.json")).unwrap(), renamed);
        let said = report.errors.join("\n");
        for expected in [
            "web.json: field \"name\" is not a name",
            "api.json: it is the record of container \"web\", filed as \"api\"",
            "db is a regular file with data in it",
        ] {
            assert!(said.contains(expected), "{expected}: {said}");
        }
        let listed = manager.containers().unwrap();
        assert_eq!(listed.damaged.len(), 2, "{:?}", listed.damaged);
        let _ = netns::delete_named(&config.netns_dir, "web");
        let _ = netns::delete_named(&config.netns_dir, "api");
    });
}

/// `rm` looks at a container's namespace, detaches its endpoints, then
/// deletes the namespace: what another tool put at the name in between
/// (`ip netns del NAME; ip netns add NAME`) is left alone, because the
/// deletion checks the name still holds what was looked at.
#[test]
fn a_namespace_put_at_a_name_since_it_was_looked_at_is_never_deleted() {
    in_fresh_netns("deleteif", |config| {
        let run_dir = &config.netns_dir;
        // Held open, as `rm` holds it: its inode number stays taken.
        let ours = netns::create_named(run_dir, "c1").unwrap();
        netns::delete_named(run_dir, "c1").unwrap();
        let theirs = netns::create_named(run_dir, "c1").unwrap();
        assert_ne!(ours.file_id(), theirs.file_id());
        assert!(!netns::delete_named_if(run_dir, "c1", ours.file_id()).unwrap());
        let there = netns::Netns::open_named(run_dir, "c1").unwrap();
        assert_eq!(there.file_id(), theirs.file_id(), "theirs was unmounted");
        assert!(netns::delete_named_if(run_dir, "c1", theirs.file_id()).unwrap());
        assert!(!run_dir.join("c1").exists());
        // A mount point nothing is bound to (a create killed before its
        // mount), by its own inode.
        fs::write(run_dir.join("c2"), b"").unwrap();
        let leftover = fs::metadata(run_dir.join("c2")).unwrap();
        assert!(
            !netns::delete_named_if(run_dir, "c2", (leftover.dev(), leftover.ino() + 1)).unwrap()
        );
        assert!(netns::delete_named_if(run_dir, "c2", (leftover.dev(), leftover.ino())).unwrap());
        assert!(!run_dir.join("c2").exists());
        // Deleted meanwhile (`ip netns del` during an `rm -f`): done, not
        // an error (which failed `rm -f` and left its record `removing`);
        // without an expectation, a missing name is one, as for iproute2.
        let gone = netns::create_named(run_dir, "c3").unwrap();
        netns::delete_named(run_dir, "c3").unwrap();
        assert!(netns::delete_named_if(run_dir, "c3", gone.file_id()).unwrap());
        let missing = netns::delete_named(run_dir, "c3").unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound, "{missing}");
    });
}

/// A network's name hint (`names/<name>`) is not part of the commit: a
/// power cut may lose it, and every lookup by name then reads every
/// network record. `restore` writes it again.
#[test]
fn restore_writes_a_lost_name_hint_again() {
    in_fresh_netns("hint", |config| {
        recorded_network(config, "hinted");
        let hint = config.state_dir.join("names/hinted");
        fs::remove_file(&hint).unwrap();
        let manager = Manager::open(config.clone()).unwrap();
        let report = manager.restore().unwrap();
        assert!(report.errors.is_empty(), "{report:?}");
        assert_eq!(report.derived_rebuilt, 1, "{report:?}");
        assert_eq!(fs::read_link(&hint).unwrap(), Path::new(&"ab".repeat(32)));
        // One naming another network (a crash between hint and record).
        fs::remove_file(&hint).unwrap();
        std::os::unix::fs::symlink("cd".repeat(32), &hint).unwrap();
        assert_eq!(manager.restore().unwrap().derived_rebuilt, 1);
        assert_eq!(fs::read_link(&hint).unwrap(), Path::new(&"ab".repeat(32)));
        assert_eq!(manager.restore().unwrap().derived_rebuilt, 0);
    });
}

/// The command a container runs gets its standard streams and nothing
/// else of its caller's: a descriptor the caller left open (a lock it
/// holds, a test runner's pipe) would otherwise be held by the command,
/// for good with `run -d`.
#[test]
fn a_command_gets_none_of_its_callers_other_descriptors() {
    // Before: the command inherited every descriptor above 2 that was not
    // close-on-exec.
    in_fresh_netns("fds", |config| {
        let manager = Manager::open(config.clone()).unwrap();
        manager.create_container(Some("fds")).unwrap();
        let file = fs::File::open("/proc/self/status").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        // Inheritable, as a shell's `exec 9>file` leaves it.
        // SAFETY: clearing FD_CLOEXEC on a descriptor this test owns.
        assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }, 0);
        let check = format!("test -e /proc/self/fd/{fd} && exit 3; exit 0");
        let status = manager
            .exec(
                "fds",
                &["/bin/sh".into(), "-c".into(), check.into()],
                &Default::default(),
            )
            .unwrap();
        assert_eq!(status, 0, "the command holds descriptor {fd}");
        manager.remove_container("fds", false).unwrap();
        drop(file);
    });
}

/// `restore` that cannot make a parent of ours again (here: no dummy
/// support in this kernel; in the field, a VLAN id another device of the
/// NIC holds) leaves the network's record as it found it, so a second
/// `restore` changes nothing. Before, each run recorded a new random
/// ifindex for the parent (chosen before the create) and kept it.
#[test]
fn a_parent_restore_cannot_make_leaves_the_record_as_it_was() {
    in_fresh_netns("parent-unmade", |config| {
        let mut net = common::network("lost", &["10.77.0.0/24"]);
        net.parent = "di-lost".into();
        net.parent_origin = ipvlan::store::ParentOrigin::DummyCreated;
        net.options = vec![];
        {
            let store = ipvlan::store::StateDir::open(&config.state_dir).unwrap();
            let state = store.lock().unwrap();
            state.put_network(&net).unwrap();
            state.commit().unwrap();
        }
        let file = config
            .state_dir
            .join("networks")
            .join(format!("{}.json", net.id));
        let before = fs::read(&file).unwrap();
        let manager = Manager::open(config.clone()).unwrap();
        for run in 1..=2 {
            let report = manager.restore().unwrap();
            assert!(
                !report.errors.is_empty(),
                "run {run}: the parent could not be made: {report:?}"
            );
            assert_eq!(
                String::from_utf8_lossy(&fs::read(&file).unwrap()),
                String::from_utf8_lossy(&before),
                "run {run}: the record as it was"
            );
        }
    });
}

/// The record of network `name` as a `network rm` killed before anything
/// else leaves it: `removing`, nothing attached.
fn interrupted_rm(config: &Config, name: &str, subnet: &str) -> ipvlan::store::NetworkRecord {
    let mut net = common::network(name, &[subnet]);
    net.state = ipvlan::store::NetworkState::Removing;
    let store = ipvlan::store::StateDir::open(&config.state_dir).unwrap();
    let state = store.lock().unwrap();
    state.put_network(&net).unwrap();
    state.commit().unwrap();
    net
}

/// An interrupted `network rm` (the network `removing`, nothing attached)
/// that `restore` cannot finish while a dead batch's intents file cannot be
/// read stays `removing`, said in the report, and the next `restore`, once
/// the file is gone, finishes it. Before, it was taken back to `created`
/// for good (and its parent of ours made again): the rm undone.
#[test]
fn an_interrupted_rm_is_not_taken_back_while_a_batch_file_cannot_be_read() {
    in_fresh_netns("rm-held", |config| {
        let net = interrupted_rm(config, "going", "10.78.0.0/24");
        let batch = config.state_dir.join("batch-intents");
        fs::create_dir(&batch).unwrap();
        let manager = Manager::open(config.clone()).unwrap();
        let report = manager.restore().unwrap();
        assert!(
            report.errors.iter().any(|e| e
                == "going: its removal is left for a later restore: a batch's intents file cannot be read"),
            "{report:?}"
        );
        let store = ipvlan::store::StateDir::open(&config.state_dir).unwrap();
        let kept = store.network(&net.id).unwrap().expect("kept");
        assert_eq!(kept.state, ipvlan::store::NetworkState::Removing);
        assert!(report.parents_recreated.is_empty(), "{report:?}");
        fs::remove_dir(&batch).unwrap();
        manager.restore().unwrap();
        let store = ipvlan::store::StateDir::open(&config.state_dir).unwrap();
        assert!(store.network(&net.id).unwrap().is_none(), "removed");
    });
}

/// An interrupted `network rm` whose endpoints cannot be listed (here a
/// file where their directory belongs) stays `removing`, the failure in
/// the report, and the next `restore`, once they can be, finishes it.
/// Before, the failure left it to the end of the pass, which took it back
/// to `created`: the rm undone (and a parent of ours made again by a later
/// restore).
#[test]
fn an_interrupted_rm_is_not_taken_back_while_its_endpoints_cannot_be_listed() {
    in_fresh_netns("rm-unlisted", |config| {
        let net = interrupted_rm(config, "going", "10.79.0.0/24");
        let endpoints = config.state_dir.join("endpoints").join(&net.id);
        fs::create_dir_all(endpoints.parent().unwrap()).unwrap();
        fs::write(&endpoints, "").unwrap();
        let manager = Manager::open(config.clone()).unwrap();
        let report = manager.restore().unwrap();
        assert!(
            report.errors.iter().any(|e| e.starts_with("going: ")),
            "{report:?}"
        );
        let store = ipvlan::store::StateDir::open(&config.state_dir).unwrap();
        let kept = store.network(&net.id).unwrap().expect("kept");
        assert_eq!(kept.state, ipvlan::store::NetworkState::Removing);
        fs::remove_file(&endpoints).unwrap();
        manager.restore().unwrap();
        let store = ipvlan::store::StateDir::open(&config.state_dir).unwrap();
        assert!(store.network(&net.id).unwrap().is_none(), "removed");
    });
}

/// Runs the test `name` again in a process of its own (this test binary,
/// one test thread), for a test that changes what is the whole process's:
/// `true` in the first process, once that run passed; `false` in the
/// second, which then runs the test.
fn run_alone(name: &str) -> bool {
    const INNER: &str = "IPVLAN_TEST_RUN_ALONE";
    if std::env::var_os(INNER).is_some() {
        return false;
    }
    common::privilege::require_root();
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--test-threads=1"])
        .env(INNER, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{stdout}"
    );
    true
}

/// This process's `RLIMIT_NOFILE`.
fn open_files_limit() -> libc::rlimit {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) into a live struct.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    limit
}

/// Sets the soft `RLIMIT_NOFILE` to `soft`, where the hard limit leaves
/// at least `room` for a batch to raise it into (or the test tests
/// nothing).
fn lower_open_files_limit(soft: u64, room: u64) {
    let mut limit = open_files_limit();
    assert!(
        limit.rlim_max >= room,
        "hard limit {} too low",
        limit.rlim_max
    );
    limit.rlim_cur = soft;
    // SAFETY: setrlimit(2) from a live struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
}

/// The batch API raises the soft `RLIMIT_NOFILE` for its descriptors
/// only while it runs: a host program's limit (which its children
/// inherit, and `select(2)` needs below 1,024) is as it was after the
/// call, however the call ended. Before, a `connect_many` of 100 targets
/// refused at once left it at 264 for good. Run in a process of its own
/// (this test binary again): the limit is the whole process's.
#[test]
fn the_batch_api_puts_the_limit_on_open_files_back() {
    use ipvlan::driver::Target;
    if run_alone("the_batch_api_puts_the_limit_on_open_files_back") {
        return;
    }
    let limits = open_files_limit;
    let dir = scratch("rlimit");
    let config = config(&dir);
    recorded_network(&config, "n1");
    let manager = Manager::open(config).unwrap();
    lower_open_files_limit(100, 300);
    let targets: Vec<Target> = (0..100)
        .map(|i| Target::Container(format!("missing{i}")))
        .collect();
    let error = manager.connect_many("n1", &targets).unwrap_err();
    assert_eq!(limits().rlim_cur, 100, "connect_many: {error}");
    let error = manager.disconnect_many("n1", &targets).unwrap_err();
    assert_eq!(limits().rlim_cur, 100, "disconnect_many: {error}");
    let _ = fs::remove_dir_all(&dir);
}

/// An admin's alias `/etc/netns/x -> c2`, c2's view being ours: a `run
/// --name=x` is refused for it (README) and its rollback, like an `rm x`
/// of a container made without networks, leaves c2's view as it was
/// (both removed it through the alias).
#[test]
fn an_alias_of_another_containers_view_is_never_unlinked_through() {
    in_fresh_netns("alias-view", |config| {
        use ipvlan::driver::{AttachRequest, RunRequest};
        fs::create_dir_all(&config.netns_dir).unwrap();
        let manager = Manager::open(config.clone()).unwrap();
        recorded_network(config, "n1");
        let c2 = config.etc_netns_dir.join("c2");
        let ours = config.state_dir.join("hosts").join("ab".repeat(32));
        fs::create_dir_all(&c2).unwrap();
        std::os::unix::fs::symlink(&ours, c2.join("hosts")).unwrap();
        std::os::unix::fs::symlink("c2", config.etc_netns_dir.join("x")).unwrap();
        let err = manager
            .run_container(&RunRequest {
                name: Some("x".into()),
                networks: vec![("n1".into(), AttachRequest::default())],
            })
            .unwrap_err();
        assert!(
            err.to_string().contains("is a link to another entry"),
            "{err}"
        );
        assert_eq!(
            fs::read_link(c2.join("hosts")).ok(),
            Some(ours.clone()),
            "run"
        );

        fs::remove_file(config.etc_netns_dir.join("x")).unwrap();
        manager.create_container(Some("x")).unwrap();
        std::os::unix::fs::symlink("c2", config.etc_netns_dir.join("x")).unwrap();
        manager.remove_container("x", false).unwrap();
        assert_eq!(fs::read_link(c2.join("hosts")).ok(), Some(ours), "rm");
        assert_eq!(
            fs::read_link(config.etc_netns_dir.join("x")).unwrap(),
            Path::new("c2")
        );
    });
}

/// A detach opens its target before the store's lock (a refusal holds no
/// command up) but enters it only under the lock: an `rm -f` of the
/// container, which takes every process it finds inside for one of the
/// container's under the lock, must never find a caller's thread there
/// (it killed the program, an embedder's whole runtime). Before, the
/// detach made its socket in the target before it waited for the lock.
#[test]
fn a_detach_enters_its_target_only_under_the_lock() {
    use ipvlan::driver::Target;
    in_fresh_netns("detach-under-lock", |config| {
        let manager = Manager::open(config.clone()).unwrap();
        recorded_network(config, "n1");
        fs::create_dir_all(&config.netns_dir).unwrap();
        let target = netns::create_named(&config.netns_dir, "c1").unwrap();
        // This process's sockets of the target's namespace (`SIOCGSKNS`
        // on each socket descriptor gives its namespace).
        let target_ino = fs::metadata(config.netns_dir.join("c1")).unwrap().ino();
        let sockets_inside = || {
            let mut inside = 0;
            for entry in fs::read_dir("/proc/self/fd").unwrap() {
                let entry = entry.unwrap();
                let is_socket = fs::read_link(entry.path())
                    .is_ok_and(|link| link.to_string_lossy().starts_with("socket:"));
                let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
                    continue;
                };
                if !is_socket {
                    continue;
                }
                const SIOCGSKNS: libc::c_ulong = 0x894C;
                // SAFETY: an ioctl on a descriptor of this process that
                // returns a new descriptor, closed below.
                let ns = unsafe { libc::ioctl(fd, SIOCGSKNS) };
                if ns >= 0 {
                    // SAFETY: `ns` was just returned to us and is ours.
                    let file = unsafe { <fs::File as std::os::fd::FromRawFd>::from_raw_fd(ns) };
                    inside += usize::from(file.metadata().unwrap().ino() == target_ino);
                }
            }
            inside
        };
        let before = sockets_inside();
        let store = ipvlan::store::StateDir::open(&config.state_dir).unwrap();
        let held = store.lock().unwrap();
        std::thread::scope(|scope| {
            let waiting = scope.spawn(|| manager.disconnect("n1", &Target::Container("c1".into())));
            std::thread::sleep(std::time::Duration::from_millis(300));
            assert!(
                !waiting.is_finished(),
                "the detach did not wait for the lock"
            );
            assert_eq!(
                sockets_inside(),
                before,
                "a socket made in the target before the lock"
            );
            drop(held);
            let err = waiting.join().unwrap().unwrap_err();
            assert!(
                err.to_string().contains("is not connected to network n1"),
                "{err}"
            );
        });
        drop(target);
        netns::delete_named(&config.netns_dir, "c1").unwrap();
    });
}

/// The library's scratch thread (the one `netns::run_in_new` and a
/// container's `exec` run on) has a stack under 2 MiB, in which no
/// transparent huge page fits: with the standard library's 2 MiB, on a
/// kernel whose huge pages are `always`, about one `exec` in 300 had its
/// peak RSS at 3 MiB. As the C library tells it of the running thread.
#[test]
fn the_scratch_threads_stack_is_too_small_for_a_huge_page() {
    common::privilege::require_root();
    let size = netns::run_in_new(|| {
        // SAFETY: pthread_attr_t is plain old data, filled in by
        // pthread_getattr_np for the calling thread, destroyed after.
        unsafe {
            let mut attr: libc::pthread_attr_t = std::mem::zeroed();
            assert_eq!(libc::pthread_getattr_np(libc::pthread_self(), &mut attr), 0);
            let mut base = std::ptr::null_mut();
            let mut size = 0;
            assert_eq!(libc::pthread_attr_getstack(&attr, &mut base, &mut size), 0);
            libc::pthread_attr_destroy(&mut attr);
            size
        }
    })
    .expect("creating a network namespace");
    assert!(size < 2 << 20, "a stack of {size} bytes");
}

/// A program that goes on after the library's calls (an init that runs
/// `restore`, then unmounts `/proc` before `switch_root`) finds none of
/// the files the library read still open: before, the boot id's file
/// (`/proc/sys/kernel/random/boot_id`, read once per process for the
/// commit log and namespace identities) stayed open for the process's
/// life, and `umount /proc` failed with EBUSY.
#[test]
fn nothing_the_library_read_stays_open_once_its_calls_return() {
    in_fresh_netns("read-stays-open", |config| {
        let manager = Manager::open(config.clone()).unwrap();
        manager.create_container(Some("c")).unwrap();
        manager.remove_container("c", false).unwrap();
        manager.restore().unwrap();
        drop(manager);
        // Only the boot id's file: this binary's other tests read
        // sysctls of their own meanwhile.
        let boot_id_open = fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|fd| fs::read_link(fd.ok()?.path()).ok())
            .filter(|target| target == Path::new("/proc/sys/kernel/random/boot_id"))
            .count();
        assert_eq!(boot_id_open, 0, "the boot id's file is still open");
    });
}

/// An empty batch, either way, changes nothing in the store (no lock page,
/// no commit, no hosts file made), and a network that does not exist is
/// still refused. Before, it wrote the lock's page and made the network's
/// hosts file.
#[test]
fn an_empty_batch_changes_nothing() {
    in_fresh_netns("empty-batch", |config| {
        recorded_network(config, "n1");
        let manager = Manager::open(config.clone()).unwrap();
        let before = common::snapshot(&config.state_dir);
        assert!(manager.connect_many("n1", &[]).unwrap().is_empty());
        assert!(manager.disconnect_many("n1", &[]).unwrap().is_empty());
        assert_eq!(common::snapshot(&config.state_dir), before);
        let refused = manager.connect_many("nope", &[]).unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::NotFound, "{refused}");
        let refused = manager.disconnect_many("nope", &[]).unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::NotFound, "{refused}");
    });
}

/// The batch API makes room under the soft `RLIMIT_NOFILE` for its
/// descriptors beside those the program has open already: a runtime or an
/// init holds many. Before, it counted only its own (two a target and a
/// margin) against the limit, so a program with 200 of 256 open got
/// "Too many open files" part-way through the batch's namespaces, the
/// limit never raised. Run in a process of its own (this test binary
/// again): the limit is the whole process's.
#[test]
fn the_batch_api_makes_room_beside_the_descriptors_already_open() {
    use ipvlan::driver::Target;
    if run_alone("the_batch_api_makes_room_beside_the_descriptors_already_open") {
        return;
    }
    in_fresh_netns("rlimit-open", |config| {
        recorded_network(config, "n1");
        let names: Vec<String> = (0..40).map(|i| format!("t{i}")).collect();
        for name in &names {
            drop(netns::create_named(&config.netns_dir, name).unwrap());
        }
        let manager = Manager::open(config.clone()).unwrap();
        lower_open_files_limit(256, 512);
        let held: Vec<fs::File> = (0..200)
            .map(|_| fs::File::open("/dev/null").unwrap())
            .collect();
        let targets: Vec<Target> = names.iter().cloned().map(Target::Container).collect();
        // This kernel (or `lo` as a parent) refuses the links: the batch
        // must get that far, every namespace and socket opened.
        let error = manager
            .connect_many("n1", &targets)
            .unwrap_err()
            .to_string();
        assert!(
            !error.contains("os error 24") && !error.contains("Too many open files"),
            "{error}"
        );
        assert_eq!(open_files_limit().rlim_cur, 256, "the limit put back");
        drop(held);
        for name in &names {
            netns::delete_named(&config.netns_dir, name).unwrap();
        }
        netns::release_run_dir(&config.netns_dir).unwrap();
    });
}

/// A command no program can be given (an argument with a NUL byte, or
/// none) is refused before anything is made: before, `spawn_detached`
/// made the container's log file first, and the refusal said only "a NUL
/// byte in an argument".
#[test]
fn a_command_with_a_nul_byte_is_refused_before_its_log_is_made() {
    in_fresh_netns("nul-argument", |config| {
        let manager = Manager::open(config.clone()).unwrap();
        manager.create_container(Some("c")).unwrap();
        let argv = ["sh".into(), "-c".into(), "echo a\0b".into()];
        let refused = manager.spawn_detached("c", &argv).unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::InvalidValue);
        assert_eq!(
            refused.to_string(),
            "argument 2 of the command (\"echo a\\0b\") holds a NUL byte, which no program can be given"
        );
        assert!(!manager.log_path("c").exists(), "a log file was made");
        let refused = manager.exec("c", &argv, &Default::default()).unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::InvalidValue, "{refused}");
        assert_eq!(
            manager.spawn_detached("c", &[]).unwrap_err().to_string(),
            "no command given"
        );
        assert!(!manager.log_path("c").exists(), "a log file was made");
        manager.remove_container("c", false).unwrap();
    });
}

/// The namespace directory made for a first named namespace is at most
/// 0755 whatever the umask, as iproute2 makes it: writable by others,
/// anyone could put a link or a file at a container's name there. Before,
/// it took the umask's mode (0777 under `umask 000`). The namespace is
/// made in a child with `umask 000`, in a mount namespace of its own.
#[test]
fn the_namespace_directory_is_made_0755_whatever_the_umask() {
    const TEST: &str = "the_namespace_directory_is_made_0755_whatever_the_umask";
    const CHILD_ENV: &str = "IPVLAN_TEST_UMASK_NETNS_DIR";
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        netns::create_named(&dir, "c1").unwrap();
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o755, "{dir}: {mode:o}");
        return;
    }
    common::privilege::require_root();
    let scratch = scratch("umask-netns-dir");
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "umask 000 && exec \"$0\" --exact {TEST} --test-threads=1"
        ))
        .arg(std::env::current_exe().unwrap())
        .env(CHILD_ENV, scratch.join("netns"))
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "{out:?}"
    );
    let _ = fs::remove_dir_all(&scratch);
}

/// An `rm` of a container whose endpoint sits on a network whose record
/// cannot be read is refused before anything changes (the endpoint would
/// stay, named by no container); a damaged record of another network is
/// said, and the container goes. Before, both went unsaid: the container
/// went and its endpoint, address and index entry stayed.
#[test]
fn rm_refuses_a_container_on_a_network_whose_record_cannot_be_read() {
    in_fresh_netns("rm-damaged", |config| {
        fs::create_dir_all(&config.netns_dir).unwrap();
        let manager = Manager::open(config.clone()).unwrap();
        manager.create_container(Some("web")).unwrap();
        manager.create_container(Some("db")).unwrap();
        let ours = "a".repeat(64);
        let theirs = "b".repeat(64);
        let state = &config.state_dir;
        for id in [&ours, &theirs] {
            fs::write(state.join(format!("networks/{id}.json")), "{ torn").unwrap();
        }
        // The index of web files an endpoint on `ours` (the way an attach
        // writes it).
        fs::create_dir_all(state.join("records/container-endpoints")).unwrap();
        fs::write(
            state.join("records/container-endpoints/web.json"),
            format!(
                "{{\n    \"version\": 1,\n    \"container\": \"web\",\n    \"endpoints\": {{\n        \"{ours}\": \"_netns_cookie_7\"\n    }}\n}}\n"
            ),
        )
        .unwrap();
        let err = manager.remove_container("web", true).unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "container web has an endpoint on network {ours}, whose record cannot be read"
            )),
            "{err}"
        );
        assert!(config.netns_dir.join("web").exists());
        assert!(container_names(&manager).contains(&"web".to_string()));
        // db names neither: removed, the damage said.
        let notes = manager.remove_container("db", false).unwrap();
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes.iter().all(|n| n.contains(
                "cannot be read: an endpoint of db on that network, if it has one, stays"
            )),
            "{notes:?}"
        );
        assert!(!container_names(&manager).contains(&"db".to_string()));
    });
}

/// Set (to a scratch directory) in the process
/// [`a_path_for_commands_is_theirs_not_the_embedding_programs`] starts:
/// that test's own test binary, run without a `PATH`, as a program
/// embedding the library from an init system may be.
const EMBEDDER_DIR: &str = "IPVLAN_TEST_EMBEDDER_DIR";

/// A program that embeds the library and has no `PATH` (an init system
/// may start it so) runs commands in a container through `cli::run` and
/// through `Manager::exec`: each command gets Docker's `PATH`, and the
/// program's own environment is left as it was. Before, `Manager::exec`
/// gave its command none, and `cli::run` wrote the `PATH` into the
/// program's environment (a plain write of `environ`, which its other
/// threads may have been reading).
#[test]
fn a_path_for_commands_is_theirs_not_the_embedding_programs() {
    const NAME: &str = "a_path_for_commands_is_theirs_not_the_embedding_programs";
    if let Some(dir) = std::env::var_os(EMBEDDER_DIR) {
        return embedder_without_a_path(Path::new(&dir));
    }
    common::privilege::require_root();
    let dir = scratch("embedder-path");
    let config = config(&dir);
    let _cleanup = Cleanup(config.clone(), dir.clone());
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env_clear()
        .env(EMBEDDER_DIR, &dir)
        .env("IPVLAN_STATE_DIR", &config.state_dir)
        .env("IPVLAN_NETNS_DIR", &config.netns_dir)
        .env("IPVLAN_ETC_NETNS_DIR", &config.etc_netns_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    let seen: Vec<&str> = stdout
        .lines()
        .filter(|line| line.starts_with("PATH=") || line.starts_with("step "))
        .collect();
    let docker = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    assert_eq!(
        seen,
        [
            "step Manager::exec",
            docker,
            "step Manager::exec exit 0, the program's PATH None",
            "step cli::run exec",
            docker,
            "step cli::run exit 0, the program's PATH None",
        ],
        "{stdout}{stderr}"
    );
}

/// The embedding program's part of
/// [`a_path_for_commands_is_theirs_not_the_embedding_programs`].
fn embedder_without_a_path(dir: &Path) {
    assert_eq!(std::env::var_os("PATH"), None);
    let config = config(dir);
    netns::run_in_new(|| {
        let manager = Manager::open(config.clone()).unwrap();
        manager.create_container(Some("web")).unwrap();
        // On a line of its own: the test harness's "test NAME ... " has none.
        println!("\nstep Manager::exec");
        let code = manager
            .exec("web", &["env".into()], &Default::default())
            .unwrap();
        println!(
            "step Manager::exec exit {code}, the program's PATH {:?}",
            std::env::var_os("PATH")
        );
        println!("step cli::run exec");
        let code = ipvlan::cli::run(&["exec", "web", "env"]);
        println!(
            "step cli::run exit {code}, the program's PATH {:?}",
            std::env::var_os("PATH")
        );
    })
    .expect("a network namespace");
}

/// While `exec` waits for its command, no thread of the caller's is in
/// the container's namespace: an `rm -f` looking for what runs inside
/// would take such a thread for a process of the container's and kill the
/// whole caller (the embedding program, once its main thread has ended).
/// Before, the wait was made on the scratch thread that had entered the
/// namespace to start the command.
#[test]
fn no_thread_of_the_caller_waits_inside_the_container() {
    in_fresh_netns("exec-wait-home", |config| {
        let manager = Manager::open(config.clone()).unwrap();
        manager.create_container(Some("web")).unwrap();
        let out = config.state_dir.with_file_name("threads-inside");
        // The command lists the threads of this test's process that are
        // in its namespace, while `exec` waits for it.
        let script = format!(
            "me=$(readlink /proc/self/ns/net); for t in /proc/{pid}/task/*; do \
             [ \"$(readlink $t/ns/net)\" = \"$me\" ] && echo ${{t##*/}}; done > {out}; true",
            pid = std::process::id(),
            out = out.display()
        );
        let code = manager
            .exec(
                "web",
                &["sh".into(), "-c".into(), script.into()],
                &Default::default(),
            )
            .unwrap();
        assert_eq!(code, 0);
        let inside = fs::read_to_string(&out).unwrap();
        assert_eq!(inside, "", "threads of ours in the container's namespace");
    });
}
