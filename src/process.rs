//! What the `ipvlan` binary needs from its process before any command
//! runs: it starts from its own C `main` (`src/main.rs`), without the
//! Rust runtime's start, whose stack-overflow handler alone cost nine
//! system calls per command (a signal stack mapped, guarded and
//! registered, handlers queried and set) and two more at exit.

pub use crate::sys::{args_from_c, prepare_process, ProcessAllocator};
