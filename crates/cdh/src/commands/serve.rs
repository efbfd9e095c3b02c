//! `cdh serve`: runs the hub's HTTP server until SIGINT/SIGTERM, optionally seeding a demo
//! organization (with an admin token and a console admin) on first start.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use anyhow::Context;
use cdh_server::wire::OrgRef;
use cdh_server::{AppHandle, Config};
use cdh_store::AnyStore;
use cdh_store::model::{ContactInput, HubId, NewChannel, OrganizationId, Role};
use rand::Rng;

use crate::cli::ServeArgs;
use crate::generator::{GenOptions, generate};

/// The file in the data directory that says the demo was seeded (and which organization).
const DEMO_MARKER: &str = "demo-organization";
/// How many generated contacts the demo holds.
const DEMO_CONTACTS: u64 = 300;
/// The demo's console admin.
const DEMO_EMAIL: &str = "admin@demo.example";
/// How long the demo admin's random password is.
const DEMO_PASSWORD_CHARS: usize = 20;

/// Runs `cdh serve`.
pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    // Listened for before anything is printed: a service manager (or a test) may send SIGTERM
    // as soon as the server says it is up, and that must stop it gracefully, not kill it.
    let stop = StopSignal::listen();
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let config = Config {
        listen: args.listen.clone(),
        database_url: args.database_url.clone(),
        operator_token: args.operator_token.clone(),
        data_dir: args.data_dir.clone(),
        metrics_listen: args.metrics_listen.clone(),
        webhook_allow_private: args.webhook_allow_private,
        public_url: args.public_url.clone(),
        ..Config::default()
    };
    let handle = cdh_server::start(config).await?;
    let base = format!("http://{}", handle.addr);
    println!("cdh hub listening on {base} (API under {base}/v1, OpenAPI at {base}/openapi.json)");
    if let Some(token) = &handle.generated_operator_token {
        println!(
            "operator token (shown once, only its hash is kept in {}): {token}",
            args.data_dir.display()
        );
    }
    if args.demo {
        demo(&handle, &args.data_dir, &base).await?;
    }
    stop.wait().await;
    // Not println!: by now whoever read stdout (a terminal, a pipe) may be gone, and a failed
    // write must not cut the graceful shutdown short with a panic.
    let _ = writeln!(
        std::io::stdout(),
        "shutting down: letting in-flight requests finish"
    );
    handle.shutdown().await
}

/// Seeds the demo organization on first start, or says where it is.
async fn demo(handle: &AppHandle, data_dir: &Path, base: &str) -> anyhow::Result<()> {
    let marker = data_dir.join(DEMO_MARKER);
    if let Ok(org) = std::fs::read_to_string(&marker) {
        let org = org.trim();
        println!(
            "demo organization {org} is already seeded; use the admin token printed at its first start"
        );
        // A demo seeded before console users existed gets its console admin now, once.
        if let Ok(org) = OrgRef::parse(org) {
            if handle
                .state
                .store
                .list_users(org.hub, org.org)
                .await?
                .is_empty()
            {
                demo_console_user(handle, org, base).await?;
            } else {
                println!(
                    "console: {base}/sign-in?org={org} (sign in as {DEMO_EMAIL} with the password printed at its first start)"
                );
            }
        }
        return Ok(());
    }
    let store = &handle.state.store;
    let hub = store.create_hub("demo brand").await?;
    let org = store.create_organization(hub, "Demo brand", "TW").await?;
    let n = seed_contacts(store, hub, org).await?;
    let admin = store
        .create_token(hub, org, "demo admin", &["admin".to_owned()])
        .await?;
    let org_id = OrgRef { hub, org };
    std::fs::write(&marker, org_id.to_string())
        .with_context(|| format!("cannot write {}", marker.display()))?;
    println!("demo organization {org_id} seeded with {n} contacts and no unify keys yet");
    println!("admin token (shown once): {}", admin.token);
    println!(
        "try: curl -H 'Authorization: Bearer {}' {base}/v1/channels",
        admin.token
    );
    demo_console_user(handle, org_id, base).await
}

/// Creates the demo's console admin with a random password and prints how to sign in (the
/// password is shown only here).
async fn demo_console_user(handle: &AppHandle, org: OrgRef, base: &str) -> anyhow::Result<()> {
    let password: String = rand::rng()
        .sample_iter(&rand::distr::Alphanumeric)
        .take(DEMO_PASSWORD_CHARS)
        .map(char::from)
        .collect();
    cdh_server::users::create_user(
        &handle.state,
        org.hub,
        org.org,
        DEMO_EMAIL,
        &password,
        Role::Admin,
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot create the demo console user: {e}"))?;
    println!("console: {base}/sign-in?org={org}");
    println!("console admin (password shown once): {DEMO_EMAIL} / {password}");
    Ok(())
}

/// Channels on both products, contacts from the generator, notes and conversations.
async fn seed_contacts(store: &AnyStore, hub: HubId, org: OrganizationId) -> anyhow::Result<u64> {
    let mut channels = BTreeMap::new();
    for kind in [
        "line",
        "messenger",
        "instagram",
        "whatsapp",
        "webchat",
        "sms",
        "email",
    ] {
        for product in ["caac", "maac"] {
            let id = store
                .create_channel(
                    hub,
                    &NewChannel {
                        organization_id: org,
                        channel_type: kind.into(),
                        product: product.into(),
                        name: format!("Demo {kind} ({product})"),
                        external_account_id: format!("demo-{kind}"),
                    },
                )
                .await?;
            channels.insert((kind, product), id);
        }
    }
    let mut file = Vec::new();
    generate(
        &GenOptions {
            n_contacts: DEMO_CONTACTS,
            seed: 7,
            shared_values: true,
            region: "TW",
        },
        &mut file,
    )?;
    let mut reader = csv::Reader::from_reader(file.as_slice());
    let headers = reader.headers()?.clone();
    let now = cdh_store::Clock::system().now();
    let mut n = 0u64;
    for (i, record) in reader.records().enumerate() {
        let record = record?;
        let get = |name: &str| {
            headers
                .iter()
                .position(|h| h == name)
                .and_then(|p| record.get(p))
                .unwrap_or("")
        };
        // Alternate products so the demo has CAAC and MAAC contacts of the same people.
        let product = if i % 3 == 2 { "maac" } else { "caac" };
        let Some(&channel) = channels.get(&(channel_kind(get("channel")), product)) else {
            continue;
        };
        let mut fields = BTreeMap::new();
        for name in [
            "line_uid",
            "display_mobile",
            "display_email",
            "customer_id",
            "connect_id",
            "display_name",
            "gender",
            "birthday",
        ] {
            let value = get(name);
            if !value.is_empty() {
                fields.insert(name.to_owned(), Some(value.to_owned()));
            }
        }
        let input = ContactInput {
            channel_id: channel,
            external_id: get("contact_id").to_owned(),
            fields,
            tags: Some(vec!["demo".to_owned()]),
            ..ContactInput::default()
        };
        let contact = store.upsert_contact(hub, &input, "demo").await?.contact;
        let at = now - i64::try_from(i).unwrap_or(0) * 3_600_000;
        if i % 2 == 0 {
            store
                .add_conversation(hub, contact.id, "in", "Hi, is my order on its way?", at)
                .await?;
            store
                .add_conversation(
                    hub,
                    contact.id,
                    "out",
                    "Yes, it ships tomorrow.",
                    at + 60_000,
                )
                .await?;
        }
        if i % 5 == 0 {
            store
                .add_note(
                    hub,
                    contact.id,
                    "Asked about the member programme.",
                    "demo agent",
                    at,
                )
                .await?;
        }
        n += 1;
    }
    Ok(n)
}

/// The generator's channel names are already ours; anything unexpected becomes web chat.
fn channel_kind(name: &str) -> &'static str {
    match name {
        "line" => "line",
        "messenger" => "messenger",
        "instagram" => "instagram",
        "whatsapp" => "whatsapp",
        "sms" => "sms",
        "email" => "email",
        _ => "webchat",
    }
}

/// Ctrl-C (SIGINT) or SIGTERM, caught from the moment `listen` returns (until then the
/// default action, ending the process at once, applies).
struct StopSignal {
    #[cfg(unix)]
    handlers: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl StopSignal {
    fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let handlers = signal(SignalKind::interrupt())
                .and_then(|int| Ok((int, signal(SignalKind::terminate())?)))
                .ok();
            Self { handlers }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    async fn wait(self) {
        #[cfg(unix)]
        if let Some((mut int, mut term)) = self.handlers {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
