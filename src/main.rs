fn main() {
    std::process::exit(ipvlan::cli::main());
}
