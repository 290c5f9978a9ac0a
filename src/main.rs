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
