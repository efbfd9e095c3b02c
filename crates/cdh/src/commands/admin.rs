//! `cdh admin`: administration straight on the database, without a running server. For now
//! `create-user`, which makes a console user (the logic is `cdh_server::users`).

use std::io::BufRead;

use anyhow::{Context, anyhow, bail};
use cdh_server::wire::OrgRef;
use cdh_store::model::Role;

use crate::cli::{AdminArgs, AdminCommand, CreateUserArgs, RoleArg};

/// Where the password of `create-user` is read from first.
pub const PASSWORD_ENV: &str = "CDH_USER_PASSWORD";

/// Runs `cdh admin ...`.
pub fn run(args: &AdminArgs) -> anyhow::Result<()> {
    match &args.command {
        AdminCommand::CreateUser(args) => create_user(args),
    }
}

/// Runs `cdh admin create-user`: prints what was created and where to sign in.
pub fn create_user(args: &CreateUserArgs) -> anyhow::Result<()> {
    let org = OrgRef::parse(args.org.trim()).map_err(|_| {
        anyhow!(
            "--org must name an organization as the API does (<hub>-<org>, such as 1-1), not {:?}",
            args.org
        )
    })?;
    let password = read_password()?;
    let role = match args.role {
        RoleArg::Admin => Role::Admin,
        RoleArg::Agent => Role::Agent,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let user = runtime.block_on(async {
        let store = open_existing(&args.database_url).await?;
        cdh_server::users::create_user_in_store(
            &store,
            org.hub,
            org.org,
            &args.email,
            &password,
            role,
            cdh_store::Clock::system().now(),
        )
        .await
        .map_err(|e| match e.code {
            cdh_server::ErrorCode::NotFound => anyhow!("organization {org} does not exist"),
            _ => anyhow!("{}", e.message),
        })
    })?;
    println!(
        "created {} {} in organization {org}; sign in at /sign-in?org={org}",
        user.role.as_str(),
        user.email
    );
    Ok(())
}

/// The password from `CDH_USER_PASSWORD`, else the first line of standard input (without
/// its line ending).
fn read_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var(PASSWORD_ENV) {
        return Ok(password);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        bail!("no password: set {PASSWORD_ENV} or give it as one line on standard input");
    }
    Ok(password.to_owned())
}

/// Opens (and migrates) the database, refusing to create a SQLite file that is not there:
/// a mistyped path would otherwise make an empty database that knows no organization.
async fn open_existing(url: &str) -> anyhow::Result<cdh_store::AnyStore> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or(path);
        if !std::path::Path::new(path).exists() {
            bail!(
                "no database at {path}; start `cdh serve` once to create it, or pass --database-url"
            );
        }
    }
    cdh_store::open(url)
        .await
        .map_err(|e| anyhow!("cannot open the database: {e}"))
}
