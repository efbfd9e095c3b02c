//! Command-line arguments (clap), with `CDH_*` environment variables as fallbacks.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::commands;

/// The customer data hub: unify contacts into profiles.
#[derive(Debug, Parser)]
#[command(name = "cdh", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Unify the contacts of a CSV file into profiles (or preview what would merge).
    Unify(UnifyArgs),
    /// Write a realistic synthetic contact file for benchmarks and demos.
    Gen(GenArgs),
    /// Run the hub: the Profile API over HTTP.
    Serve(ServeArgs),
    /// Administer the hub's database directly (console users).
    Admin(AdminArgs),
}

/// Arguments of `cdh unify`.
#[derive(Debug, Args)]
pub struct UnifyArgs {
    /// The unify keys, 1 to 3 of: line_uid, display_mobile, display_email, customer_id,
    /// connect_id, or a column of the file (a custom identifier field).
    #[arg(long, env = "CDH_KEYS", value_delimiter = ',', required = true)]
    pub keys: Vec<String>,
    /// The default phone region for national numbers (ISO 3166 code).
    #[arg(long, env = "CDH_REGION", default_value = "TW")]
    pub region: String,
    /// The contact file: CSV with a header; `contact_id` is required.
    pub input: PathBuf,
    /// Where to write assignments.csv and profiles.csv.
    #[arg(long, env = "CDH_OUT", required_unless_present = "preview")]
    pub out: Option<PathBuf>,
    /// Print what would merge instead of writing anything (so not with `--out`).
    #[arg(long, conflicts_with = "out")]
    pub preview: bool,
    /// Values that must never merge, as FIELD=VALUE (normalised like the field); repeatable.
    #[arg(long = "exclude", value_name = "FIELD=VALUE")]
    pub excluded: Vec<String>,
    /// Fields a profile may hold only one value of: a merge that would give it a second is
    /// refused and reported as a conflict.
    #[arg(
        long,
        env = "CDH_UNIQUE_FIELDS",
        value_delimiter = ',',
        default_value = "customer_id"
    )]
    pub unique_fields: Vec<String>,
    /// A value carried by more contacts than this is flagged as suspicious.
    #[arg(long, env = "CDH_SUSPICIOUS_THRESHOLD", default_value_t = 20)]
    pub suspicious_threshold: u32,
    /// Worker threads (default: one per core).
    #[arg(long, env = "CDH_THREADS")]
    pub threads: Option<usize>,
}

/// Arguments of `cdh gen`.
#[derive(Debug, Args)]
pub struct GenArgs {
    /// How many contacts to write.
    pub n: u64,
    /// The CSV file to write.
    pub out: PathBuf,
    /// The random seed: the same seed writes the same file.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Leave out shared store phones and placeholder emails.
    #[arg(long)]
    pub no_shared_values: bool,
}

/// Arguments of `cdh serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on.
    #[arg(long, env = "CDH_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// The database: sqlite://PATH or postgres://...
    #[arg(
        long,
        env = "CDH_DATABASE_URL",
        default_value = "sqlite://./cdh-data/cdh.db"
    )]
    pub database_url: String,
    /// The operator's token; when unset, one is generated at first start, printed once and
    /// kept only as a hash in the data directory.
    #[arg(long, env = "CDH_OPERATOR_TOKEN", hide_env_values = true)]
    pub operator_token: Option<String>,
    /// Where exports and the operator token's hash are kept.
    #[arg(long, env = "CDH_DATA_DIR", default_value = "./cdh-data")]
    pub data_dir: PathBuf,
    /// Seed a demo organization on first start and print an admin token.
    #[arg(long)]
    pub demo: bool,
    /// Serve `/metrics` without a token on this address of its own (on the main address it
    /// needs the operator token).
    #[arg(long, env = "CDH_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Let webhooks reach private addresses (loopback, RFC 1918, link-local, ...), for
    /// on-premise receivers; by default they reach public addresses only.
    #[arg(long, env = "CDH_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,
    /// The address browsers reach the server at (a proxy's, behind one); `https://...` marks
    /// console cookies `Secure`.
    #[arg(long, env = "CDH_PUBLIC_URL")]
    pub public_url: Option<String>,
}

/// Arguments of `cdh admin`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// The `cdh admin` commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a console user who signs in with an email and a password. The password is read
    /// from CDH_USER_PASSWORD when set, else from one line of standard input.
    CreateUser(CreateUserArgs),
}

/// Arguments of `cdh admin create-user`.
#[derive(Debug, Args)]
pub struct CreateUserArgs {
    /// The organization, as the API names it (`<hub>-<org>`, such as 1-1).
    #[arg(long)]
    pub org: String,
    /// The user's email address.
    #[arg(long)]
    pub email: String,
    /// What the user may do.
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// The database: sqlite://PATH or postgres://...
    #[arg(
        long,
        env = "CDH_DATABASE_URL",
        default_value = "sqlite://./cdh-data/cdh.db"
    )]
    pub database_url: String,
}

/// A console user's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    /// Manages the organization.
    Admin,
    /// Works with contacts and profiles.
    Agent,
}

/// Parses the process's arguments, runs the command, and reports any error on stderr.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Unify(args) => commands::unify::run(&args),
        Command::Gen(args) => commands::gen_file::run(&args),
        Command::Serve(args) => commands::serve::run(&args),
        Command::Admin(args) => commands::admin::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}
