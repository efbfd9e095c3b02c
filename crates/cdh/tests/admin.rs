//! `cdh admin create-user`, the console admin of `cdh serve --demo` and its stop on SIGTERM,
//! run as a user would: the binary on a temporary SQLite database, the created users read back
//! from the store.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use cdh_store::model::{HubId, OrganizationId, Role};

fn cdh() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cdh"));
    for var in [
        "CDH_DATABASE_URL",
        "CDH_USER_PASSWORD",
        "CDH_LISTEN",
        "CDH_DATA_DIR",
        "CDH_OPERATOR_TOKEN",
    ] {
        command.env_remove(var);
    }
    command
}

fn db_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("data/cdh.db").display())
}

/// `cdh serve --demo` on the directory's database, its stdout piped.
fn spawn_demo(dir: &Path) -> Child {
    cdh()
        .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--database-url", &db_url(dir)])
        .args([
            "--operator-token",
            "operator-secret-for-tests-0123456789abcdef",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cdh serve starts")
}

/// Starts `cdh serve --demo` on the directory's database and returns it with the lines it
/// printed up to (and including) the first line that starts with `last`.
fn serve_demo(dir: &Path, last: &str) -> (Child, Vec<String>) {
    let mut child = spawn_demo(dir);
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(line) => {
                let done = line.starts_with(last);
                lines.push(line);
                if done {
                    return (child, lines);
                }
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("cdh serve never printed {last:?} ({e}); it printed {lines:#?}");
            }
        }
    }
}

/// Asks the server to stop (SIGTERM, as a service manager would) and waits for it.
fn stop(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exit = child.wait().expect("cdh serve exits");
    assert!(exit.success(), "cdh serve exited with {exit}");
}

fn create_user(dir: &Path, args: &[&str], password: Option<&str>, stdin: &str) -> Output {
    let mut command = cdh();
    command
        .args(["admin", "create-user"])
        .args(args)
        .args(["--database-url", &db_url(dir)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(password) = password {
        command.env("CDH_USER_PASSWORD", password);
    }
    let mut child = command.spawn().expect("cdh admin runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn fails_with(output: &Output, message: &str) {
    assert!(!output.status.success(), "expected a failure");
    let stderr = text(&output.stderr);
    assert!(stderr.contains(message), "expected {message:?} in {stderr}");
}

/// The stored user with this email and whether `password` is theirs.
fn stored_user(dir: &Path, org: &str, email: &str, password: &str) -> Option<(Role, bool)> {
    let (hub, org) = org.split_once('-').unwrap();
    let (hub, org): (HubId, OrganizationId) = (hub.parse().unwrap(), org.parse().unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = cdh_store::open(&db_url(dir)).await.unwrap();
        let found = store.user_for_sign_in(hub, org, email).await.unwrap();
        found.map(|(user, hash)| {
            (
                user.role,
                cdh_server::users::verify_password(password, &hash),
            )
        })
    })
}

#[test]
fn the_demo_has_a_console_admin_and_create_user_adds_more() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();

    // First start: the console address, the email and a random password, once.
    let (server, lines) = serve_demo(dir, "console admin");
    stop(server);
    let console = lines.iter().find(|l| l.starts_with("console: ")).unwrap();
    let (base, org) = console["console: ".len()..]
        .split_once("/sign-in?org=")
        .expect("a sign-in address");
    assert!(base.starts_with("http://127.0.0.1:"), "{console}");
    let credentials = lines.last().unwrap();
    let (email, password) = credentials
        .split_once(": ")
        .unwrap()
        .1
        .split_once(" / ")
        .unwrap();
    assert_eq!(email, "admin@demo.example");
    assert!(
        password.len() >= 16 && password.chars().all(|c| c.is_ascii_alphanumeric()),
        "{credentials}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("demo organization {org} seeded")))
    );
    assert_eq!(
        stored_user(dir, org, email, password),
        Some((Role::Admin, true))
    );

    // Second start: nothing new, and no password.
    let (server, lines) = serve_demo(dir, "console: ");
    stop(server);
    assert!(
        lines.iter().any(|l| l.contains("already seeded")),
        "{lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.contains(password)), "{lines:#?}");

    // create-user with the password from the environment, then from standard input.
    let created = create_user(
        dir,
        &[
            "--org",
            org,
            "--email",
            " Bob@Example.COM",
            "--role",
            "agent",
        ],
        Some("bobs password"),
        "",
    );
    assert!(created.status.success(), "{}", text(&created.stderr));
    assert_eq!(
        text(&created.stdout),
        format!(
            "created agent bob@example.com in organization {org}; sign in at /sign-in?org={org}\n"
        )
    );
    let created = create_user(
        dir,
        &[
            "--org",
            org,
            "--email",
            "carol@example.com",
            "--role",
            "admin",
        ],
        None,
        "carols password\n",
    );
    assert!(created.status.success(), "{}", text(&created.stderr));
    assert_eq!(
        stored_user(dir, org, "bob@example.com", "bobs password"),
        Some((Role::Agent, true))
    );
    assert_eq!(
        stored_user(dir, org, "carol@example.com", "carols password"),
        Some((Role::Admin, true))
    );

    // Errors: clear, on stderr, with a non-zero exit.
    let args = [
        "--org",
        org,
        "--email",
        "bob@example.com",
        "--role",
        "admin",
    ];
    fails_with(
        &create_user(dir, &args, Some("another password"), ""),
        "already exists in this organization",
    );
    let args = [
        "--org",
        org,
        "--email",
        "dan@example.com",
        "--role",
        "admin",
    ];
    fails_with(
        &create_user(dir, &args, Some("short"), ""),
        "at least 10 characters",
    );
    fails_with(&create_user(dir, &args, None, ""), "no password");
    let args = ["--org", org, "--email", "dan", "--role", "admin"];
    fails_with(
        &create_user(dir, &args, Some("long enough password"), ""),
        "must be an email address",
    );
    let args = [
        "--org",
        "1-999999",
        "--email",
        "dan@example.com",
        "--role",
        "admin",
    ];
    fails_with(
        &create_user(dir, &args, Some("long enough password"), ""),
        "organization 1-999999 does not exist",
    );
    let args = [
        "--org",
        "acme",
        "--email",
        "dan@example.com",
        "--role",
        "admin",
    ];
    fails_with(
        &create_user(dir, &args, Some("long enough password"), ""),
        "--org must name an organization",
    );
    let args = [
        "--org",
        org,
        "--email",
        "dan@example.com",
        "--role",
        "owner",
    ];
    fails_with(
        &create_user(dir, &args, Some("long enough password"), ""),
        "invalid value 'owner'",
    );
    assert_eq!(stored_user(dir, org, "dan@example.com", ""), None);
}

#[test]
fn create_user_refuses_a_missing_database() {
    let dir = tempfile::tempdir().unwrap();
    let output = create_user(
        dir.path(),
        &[
            "--org",
            "1-1",
            "--email",
            "ann@example.com",
            "--role",
            "admin",
        ],
        Some("long enough password"),
        "",
    );
    fails_with(&output, "no database at");
    assert!(!dir.path().join("data").exists(), "nothing may be created");
}

/// SIGTERM sent as soon as the server says it is listening (the demo still being seeded) stops
/// it gracefully: the handler is in place before the first line is printed.
#[test]
fn sigterm_right_after_start_stops_the_server_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let mut child = spawn_demo(dir);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a first line").unwrap();
    assert!(first.starts_with("cdh hub listening on "), "{first}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    // The rest of its output, read to the end so that its prints never meet a closed pipe.
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let exit = child.wait().expect("cdh serve exits");
    assert!(
        exit.success(),
        "cdh serve exited with {exit}; it printed {rest:#?}"
    );
    assert_eq!(
        rest.last().map(String::as_str),
        Some("shutting down: letting in-flight requests finish")
    );
}

/// A short operator token opens every organization to whoever guesses it: the server refuses
/// to start with one, and says why.
#[test]
fn serve_refuses_a_short_operator_token() {
    let dir = tempfile::tempdir().unwrap();
    let output = cdh()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--database-url", &db_url(dir.path())])
        .args(["--operator-token", "op-secret"])
        .output()
        .expect("cdh serve runs");
    fails_with(&output, "at least 32 characters");
}

/// A server whose stdout is gone (its terminal closed, the pipe's reader ended) still stops
/// gracefully on SIGTERM: its last message must not end it with a panic instead.
#[test]
fn serve_stops_cleanly_after_its_stdout_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_demo(dir.path());
    let stdout = child.stdout.take().unwrap();
    for line in BufReader::new(stdout).lines() {
        if line
            .expect("cdh serve prints lines")
            .starts_with("console admin")
        {
            break;
        }
    }
    // The reader is dropped here: the pipe has no reader any more.
    stop(child);
}
