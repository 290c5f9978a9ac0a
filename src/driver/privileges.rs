//! This process's capabilities: whether it may change network
//! configuration (the CLI asks before it starts) and what `doctor` reports.

/// Bit of CAP_NET_ADMIN in the capability sets (`linux/capability.h`).
pub const CAP_NET_ADMIN: u32 = 12;
/// Bit of CAP_SYS_ADMIN (namespaces, mounts).
pub const CAP_SYS_ADMIN: u32 = 21;
/// Bit of CAP_SYS_PTRACE: what lets a process read every other one's
/// namespaces (`/proc/PID/ns/net`).
pub const CAP_SYS_PTRACE: u32 = 19;

/// Whether the effective capability set holds CAP_NET_ADMIN. When
/// `capget(2)` fails the answer is yes: the kernel will still refuse what
/// is not allowed, and the error says so.
pub fn has_net_admin() -> bool {
    held_capabilities().0
}

/// Whether this process holds CAP_NET_ADMIN and CAP_SYS_ADMIN (entering
/// network namespaces, mounting), from one `capget`; each true when it
/// cannot tell.
pub fn held_capabilities() -> (bool, bool) {
    match own_capabilities() {
        Some(caps) => (
            caps & (1 << CAP_NET_ADMIN) != 0,
            caps & (1 << CAP_SYS_ADMIN) != 0,
        ),
        None => (true, true),
    }
}

/// This thread's effective capability mask (`capget(2)`: one system call
/// where reading `/proc/self/status` takes a dozen).
pub fn own_capabilities() -> Option<u64> {
    crate::sys::effective_capabilities().ok()
}

/// The `CapEff:` mask of a `/proc/PID/status` text.
pub fn effective_capabilities(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_effective_mask() {
        let status = "Name:\tipvlan\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\n\
                      CapEff:\t0000000000001000\nCapBnd:\t000001ffffffffff\n";
        assert_eq!(effective_capabilities(status), Some(1 << CAP_NET_ADMIN));
        assert_eq!(effective_capabilities("CapEff:\tzz\n"), None);
        assert_eq!(effective_capabilities("Name:\tx\n"), None);
    }

    #[test]
    fn capget_agrees_with_proc_status() {
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        assert_eq!(own_capabilities(), effective_capabilities(&status));
        assert!(own_capabilities().is_some());
    }
}
