//! Browser tests' harness: Debian's headless chromium driven through chromedriver with
//! fantoccini, one browser at a time, with helpers that wait for elements and save
//! screenshots to `target/screenshots/` (to `docs/screenshots/` with `CDH_UPDATE_SCREENSHOTS=1`).

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::sync::{Mutex, MutexGuard};

/// How long `find` and the other element helpers wait for an element to appear.
pub const WAIT: Duration = Duration::from_secs(10);

/// A headless chromium session, its chromedriver and a fresh profile directory. Only one
/// exists at a time in the process (the others wait in `start`).
pub struct Browser {
    /// The WebDriver session, for anything the helpers do not cover.
    pub client: Client,
    driver: Driver,
    profile: tempfile::TempDir,
    _turn: MutexGuard<'static, ()>,
}

/// The chromedriver process; dropping it kills its process group (it and its chromium).
struct Driver(Child);

impl Browser {
    /// Starts chromedriver on a free port and opens a headless chromium session through it.
    /// Waits for any other browser of this process to be dropped first.
    pub async fn start() -> Browser {
        static TURN: Mutex<()> = Mutex::const_new(());
        let turn = TURN.lock().await;

        let driver_bin = env_path("CDH_CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium_bin = env_path("CDH_CHROMIUM", "/usr/bin/chromium");
        for bin in [&driver_bin, &chromium_bin] {
            assert!(
                bin.exists(),
                "{} is missing: the browser tests need Debian's chromium and chromium-driver; \
                 run scripts/browser-deps (or point CDH_CHROMEDRIVER / CDH_CHROMIUM at them)",
                bin.display()
            );
        }

        let port = free_port();
        let mut command = Command::new(&driver_bin);
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group, so that dropping the browser can end chromium too.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        // From here on a panic drops `driver`, which kills chromedriver.
        let mut driver = Driver(
            command
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", driver_bin.display())),
        );
        let profile = tempfile::tempdir().expect("temp dir for the chromium profile");
        let base = format!("http://127.0.0.1:{port}");
        driver.wait_ready(&base).await;

        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": chromium_bin.display().to_string(), "args": args }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&base)
            .await
            .unwrap_or_else(|e| panic!("open a chromium session through chromedriver: {e}"));
        Browser {
            client,
            driver,
            profile,
            _turn: turn,
        }
    }

    /// Opens `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// The current page's URL.
    pub async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("the current URL")
            .to_string()
    }

    /// The first element matching `css`, waiting up to `WAIT` for it to appear.
    pub async fn find(&self, css: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(e) => {
                let url = self.url().await;
                panic!("no element `{css}` on {url} after {WAIT:?}: {e}")
            }
        }
    }

    /// The visible text of the first element matching `css` (waits for it).
    pub async fn text(&self, css: &str) -> String {
        self.find(css)
            .await
            .text()
            .await
            .unwrap_or_else(|e| panic!("text of `{css}`: {e}"))
    }

    /// The visible texts of every element matching `css` now, in document order (does not
    /// wait: an empty list when nothing matches).
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let elements = self
            .client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find all `{css}`: {e}"));
        let mut texts = Vec::with_capacity(elements.len());
        for element in elements {
            texts.push(
                element
                    .text()
                    .await
                    .unwrap_or_else(|e| panic!("text of `{css}`: {e}")),
            );
        }
        texts
    }

    /// Clears the input matching `css` (waits for it) and types `value` into it.
    pub async fn fill(&self, css: &str, value: &str) {
        let element = self.find(css).await;
        element
            .clear()
            .await
            .unwrap_or_else(|e| panic!("clear `{css}`: {e}"));
        element
            .send_keys(value)
            .await
            .unwrap_or_else(|e| panic!("type into `{css}`: {e}"));
    }

    /// Clicks the element matching `css` (waits for it).
    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click `{css}`: {e}"));
    }

    /// Resizes the window, e.g. to `(390, 844)` for a phone-sized screenshot.
    pub async fn resize(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .unwrap_or_else(|e| panic!("resize the window to {width}x{height}: {e}"));
    }

    /// Saves a PNG of the viewport to `<screenshots_dir>/<name>.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("screenshot `{name}`: {e}"));
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Ends the session (chromium quits) and stops chromedriver.
    pub async fn close(mut self) {
        let result = self.client.clone().close().await;
        self.driver.stop();
        result.expect("end the browser session");
    }
}

impl Driver {
    /// Polls chromedriver's `/status` until it answers ready (at most ~10 s).
    async fn wait_ready(&mut self, base: &str) {
        let http = reqwest::Client::new();
        let status = format!("{base}/status");
        let mut last = String::from("no answer");
        for _ in 0..100 {
            if let Some(exit) = self.0.try_wait().expect("poll chromedriver") {
                panic!("chromedriver exited before answering: {exit}");
            }
            match http.get(&status).send().await {
                Ok(reply) => match reply.json::<Value>().await {
                    Ok(body) if body["value"]["ready"] == json!(true) => return,
                    Ok(body) => last = body.to_string(),
                    Err(e) => last = e.to_string(),
                },
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not become ready at {status}: {last}");
    }

    /// Kills chromedriver's process group (it and the chromium it started) and reaps it.
    fn stop(&mut self) {
        if let Ok(Some(_)) = self.0.try_wait() {
            return;
        }
        let group = format!("-{}", self.0.id());
        let killed = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !killed {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where screenshots go: `target/screenshots/`, or `docs/screenshots/` (linked from the README)
/// when `CDH_UPDATE_SCREENSHOTS` is set.
pub fn screenshots_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // The README links docs/screenshots; a plain test run writes beside the build instead, so
    // running the suite leaves the work tree clean.
    if std::env::var_os("CDH_UPDATE_SCREENSHOTS").is_some_and(|v| !v.is_empty()) {
        workspace.join("docs/screenshots")
    } else {
        workspace.join("target/screenshots")
    }
}

fn env_path(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// A port nothing listens on right now (the OS picks it; chromedriver binds it next).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
        .port()
}
