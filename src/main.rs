fn main() {
    let code = ipvlan::cli::main();
    // Test builds only (feature `fault-injection`): the soak's peak RSS.
    ipvlan::fault::report_peak_rss();
    std::process::exit(code);
}
