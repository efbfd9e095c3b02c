//! The `cdh` binary: parses arguments and hands over to the library.

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> std::process::ExitCode {
    cdh::cli::main()
}
