//! `cdh gen`: writes a synthetic contact file.

use std::fs::File;
use std::io::BufWriter;
use std::time::Instant;

use anyhow::Context;

use crate::cli::GenArgs;
use crate::generator::{GenOptions, generate};

/// Runs `cdh gen`.
pub fn run(args: &GenArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let file =
        File::create(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let options = GenOptions {
        n_contacts: args.n,
        seed: args.seed,
        shared_values: !args.no_shared_values,
        region: "TW",
    };
    let stats = generate(&options, BufWriter::with_capacity(1 << 20, file))
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!(
        "wrote {} contacts of {} people ({} carry a shared value) to {} in {:.2?}",
        stats.n_contacts,
        stats.n_people,
        stats.n_shared_value_contacts,
        args.out.display(),
        started.elapsed()
    );
    Ok(())
}
