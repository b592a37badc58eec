//! The `listd` binary: a thin clap front end over the library.

fn main() {
    std::process::exit(listd::cli::main());
}
