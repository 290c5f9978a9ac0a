// The binary starts from C's `main`, not the Rust runtime's start (see
// `ipvlan::process`); test builds keep the test harness's `main`.
#![cfg_attr(not(test), no_main)]

/// See [`ipvlan::process::ProcessAllocator`]: a command's allocations
/// without a system call each.
#[global_allocator]
static ALLOCATOR: ipvlan::process::ProcessAllocator = ipvlan::process::ProcessAllocator;

#[cfg(not(test))]
#[no_mangle]
extern "C" fn main(argc: std::ffi::c_int, argv: *const *const std::ffi::c_char) -> std::ffi::c_int {
    ipvlan::process::prepare_process();
    // Test builds only (feature `fault-injection`): a profile's first mark.
    ipvlan::fault::note_start();
    // SAFETY: C's `main` receives `argc` live NUL-terminated strings in `argv`.
    let args = unsafe { ipvlan::process::args_from_c(argc, argv) };
    // A runtime runs CNI plugins with CNI_COMMAND set; the command line is
    // for everything else.
    let code = if ipvlan::cni::is_plugin_mode(std::env::var_os("CNI_COMMAND").as_deref()) {
        ipvlan::cni::main(args.first().map(|arg0| arg0.as_os_str()))
    } else {
        ipvlan::cli::main_args(args)
    };
    // Test builds only (feature `fault-injection`): the soak's peak RSS,
    // a profile's marks.
    ipvlan::fault::report_peak_rss();
    // Flushes stdout, then exits.
    std::process::exit(code)
}

/// The release binary has no unwinder. It aborts on panic (the release
/// profile), so nothing ever unwinds, and its unwind tables are not linked
/// (`.cargo/no-unwind-tables.ld`); yet std's panic message code can print a
/// backtrace (`RUST_BACKTRACE`), which would link LLVM's libunwind and std's
/// DWARF symbolizer (`gimli`, `addr2line`, `miniz_oxide`,
/// `rustc_demangle`): 258 KB of the 1 MiB binary for a stripped backtrace
/// that names no function. These definitions stand in for the few unwinder
/// entry points std calls. Inside the link-time optimised module, std's
/// backtrace walk sees a walk that finds no frame, and the symbolizer it
/// would have called is dropped as unreachable; a panic still prints its
/// message (and an empty `stack backtrace:`) and aborts. The others can
/// only be reached while unwinding, which never starts. If std one day
/// calls an entry point not defined here, the linker takes libunwind's
/// object for it and fails on the duplicate definitions: loudly, at build
/// time. Builds that unwind (tests, the VM's guest builds) keep libunwind.
#[cfg(all(not(test), target_env = "musl", panic = "abort"))]
mod no_unwinder {
    use std::ffi::{c_int, c_void};

    /// `_URC_END_OF_STACK`: the walk found no (more) frames.
    const END_OF_STACK: c_int = 5;

    #[no_mangle]
    extern "C" fn _Unwind_Backtrace(_trace: *const c_void, _argument: *mut c_void) -> c_int {
        END_OF_STACK
    }

    #[no_mangle]
    extern "C" fn _Unwind_GetIPInfo(_context: *mut c_void, _before: *mut c_int) -> usize {
        std::process::abort()
    }

    #[no_mangle]
    extern "C" fn _Unwind_GetLanguageSpecificData(_context: *mut c_void) -> usize {
        std::process::abort()
    }

    #[no_mangle]
    extern "C" fn _Unwind_Resume(_exception: *mut c_void) -> ! {
        std::process::abort()
    }
}
