//! The `cdh` command line as a library: argument types, and one module per command.

pub mod cli;
pub mod commands;
pub mod csv_out;
pub mod csv_scan;
#[path = "gen.rs"]
pub mod generator;
pub mod load;
pub mod report;
pub mod write;
