//! `cdh unify`: resolve a contact file into profiles, or preview what would merge.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cdh_core::{
    Blocklist, IdentifierField, Normalizer, Outcome, PreviewOptions, Region, UnifyKeys, preview,
    resolve,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::UnifyArgs;
use crate::load::{KNOWN_COLUMNS, LoadSpec, load, read_header};
use crate::report::{preview_text, slot_stats_lines, thousands, totals};
use crate::write::write_outputs;

/// Runs `cdh unify`.
pub fn run(args: &UnifyArgs) -> anyhow::Result<()> {
    // The phonenumber crate's database (costly to build) is not built up front: the fast path
    // answers nearly every value, so most files never need it.
    let started = Instant::now();
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    pool.install(|| run_in_pool(args, threads, started))
}

fn run_in_pool(args: &UnifyArgs, threads: usize, started: Instant) -> anyhow::Result<()> {
    let region = Region::parse(&args.region).map_err(|_| {
        anyhow::anyhow!(
            "unknown phone region `{}`; use an ISO 3166 code such as TW, JP or US",
            args.region
        )
    })?;
    let custom_columns = custom_columns(&args.input)?;
    let fields = args
        .keys
        .iter()
        .map(|k| IdentifierField::parse(k, &custom_columns))
        .collect::<Result<Vec<_>, _>>()?;
    let keys = UnifyKeys::new(fields).context("invalid --keys")?;
    let unique = args
        .unique_fields
        .iter()
        .filter(|u| !u.is_empty())
        .map(|u| IdentifierField::parse(u, &custom_columns))
        .collect::<Result<Vec<_>, _>>()
        .context("invalid --unique-fields")?;
    let normalizer = Normalizer::new(region, exclusions(&args.excluded, region, &custom_columns)?);
    let spec = LoadSpec {
        keys: keys.fields().to_vec(),
        unique,
        normalizer,
    };

    let progress = Progress::new();
    let loaded = load(&args.input, &spec, threads, &|stage| progress.stage(stage))?;
    let n = loaded.graph.n_contacts();

    if args.preview {
        progress.stage("previewing");
        let options = PreviewOptions {
            suspicious_threshold: args.suspicious_threshold,
            ..PreviewOptions::default()
        };
        let p = preview(&loaded.graph, None, &options);
        progress.finish();
        let text = preview_text(
            &p,
            &loaded,
            &keys.to_string(),
            region.code(),
            args.suspicious_threshold,
        );
        if !print_quietly(&text)? {
            // The reader went away (`cdh unify --preview ... | head`): it has what it wanted.
            return Ok(());
        }
        eprintln!(
            "previewed {} contacts in {:.2?}",
            thousands(n as u64),
            started.elapsed()
        );
        return Ok(());
    }

    progress.stage("resolving");
    let (partition, n_refused) = if loaded.graph.slots().iter().any(|s| s.unique) {
        let resolved = cdh_core::resolve_refusing(&loaded.graph, None);
        (resolved.partition, resolved.refusals.len())
    } else {
        (resolve(&loaded.graph, None), 0)
    };
    let Some(out) = &args.out else {
        bail!("--out is required unless --preview is given")
    };
    let n_profiles = partition.n_profiles();
    progress.counter("writing profiles", n_profiles as u64);
    write_outputs(&loaded, partition, out, &|done| progress.set(done))?;
    progress.finish();

    let counts = loaded.graph.value_counts();
    let n_suspicious = counts
        .iter()
        .enumerate()
        .filter(|&(v, &c)| c > args.suspicious_threshold && loaded.graph.merges(v as u32))
        .count();
    let (invalid, blocked) = totals(&loaded.stats);
    eprintln!(
        "unified {} contacts into {} profiles ({} merges) in {:.2?}",
        thousands(n as u64),
        thousands(n_profiles as u64),
        thousands((n - n_profiles) as u64),
        started.elapsed()
    );
    eprint!("{}", slot_stats_lines(&loaded));
    eprintln!(
        "  {} invalid and {} blocked values kept out of merging; {} suspicious values (shared by more than {} contacts; see --preview)",
        thousands(invalid),
        thousands(blocked),
        thousands(n_suspicious as u64),
        args.suspicious_threshold
    );
    if n_refused > 0 {
        eprintln!(
            "  {} merges refused: they would give a profile two values of a unique field (see --preview)",
            thousands(n_refused as u64)
        );
    }
    eprintln!(
        "  wrote {} and {}",
        out.join("assignments.csv").display(),
        out.join("profiles.csv").display()
    );
    Ok(())
}

/// Writes `text` to stdout; `false` when stdout is a pipe whose reader has closed it, which
/// ends the command quietly instead of panicking as `print!` does.
fn print_quietly(text: &str) -> anyhow::Result<bool> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e).context("cannot write the preview to stdout"),
    }
}

/// Columns of the file beyond the built-in schema: candidates for custom identifier keys.
fn custom_columns(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut head = Vec::with_capacity(64 * 1024);
    file.take(64 * 1024).read_to_end(&mut head)?;
    let (header, _) = read_header(&head, path)?;
    Ok(header
        .into_iter()
        .filter(|h| !KNOWN_COLUMNS.contains(&h.as_str()))
        .collect())
}

/// Parses `--exclude FIELD=VALUE` options, normalising each value like its field.
fn exclusions(excluded: &[String], region: Region, custom: &[String]) -> anyhow::Result<Blocklist> {
    let mut plain = Normalizer::new(region, Blocklist::built_in());
    let mut blocklist = Blocklist::built_in();
    for item in excluded {
        let Some((field, value)) = item.split_once('=') else {
            bail!("--exclude takes FIELD=VALUE, got `{item}`");
        };
        let field = IdentifierField::parse(field, custom)?;
        match plain.normalize(&field, value) {
            Ok(v) => blocklist.exclude_normalized(field, v),
            Err(Outcome::Blocked(_)) => {} // already never merges
            Err(other) => bail!("--exclude {item}: the value is {}", describe(other)),
        }
    }
    Ok(blocklist)
}

fn describe(outcome: Outcome) -> String {
    match outcome {
        Outcome::Empty => "empty".into(),
        Outcome::Invalid(r) => r.to_string(),
        Outcome::Blocked(r) => r.to_string(),
        Outcome::Valid => "valid".into(),
    }
}

/// A progress bar on a terminal, plain lines otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
}

impl Progress {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        Self {
            bar,
            started: Instant::now(),
        }
    }

    fn stage(&self, name: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(name.to_owned()),
            None => eprintln!("[{:>7.2?}] {name}", self.started.elapsed()),
        }
    }

    fn counter(&self, name: &str, total: u64) {
        match &self.bar {
            Some(bar) => {
                bar.set_length(total);
                bar.set_position(0);
                bar.set_style(
                    ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta})")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.set_message(name.to_owned());
            }
            None => eprintln!("[{:>7.2?}] {name} ({total})", self.started.elapsed()),
        }
    }

    fn set(&self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
