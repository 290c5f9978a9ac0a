fn main() {
    // A runtime runs CNI plugins with CNI_COMMAND set; the command line is
    // for everything else.
    let code = if ipvlan::cni::is_plugin_mode(std::env::var_os("CNI_COMMAND").as_deref()) {
        ipvlan::cni::main()
    } else {
        ipvlan::cli::main()
    };
    // Test builds only (feature `fault-injection`): the soak's peak RSS.
    ipvlan::fault::report_peak_rss();
    std::process::exit(code);
}
