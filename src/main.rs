fn main() {
    std::process::exit(glimpse::cli::main());
}
