//! One module per command.

pub mod admin;
pub mod gen_file;
pub mod serve;
pub mod unify;
