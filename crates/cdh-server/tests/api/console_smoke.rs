//! The browser harness works: headless chromium opens a page the test app serves.

use crate::browser::Browser;
use crate::support::TestApp;

#[tokio::test]
async fn browser_opens_a_served_page() {
    let app = TestApp::sqlite().await;
    let browser = Browser::start().await;

    browser.goto(&app.handle.url("/healthz")).await;
    let page = browser.text("body").await;
    assert!(
        page.contains(r#""status":"ok""#),
        "the health answer is not on the page: {page:?}"
    );
    assert_eq!(browser.url().await, app.handle.url("/healthz"));
    let shot = browser.screenshot("smoke").await;
    let png = std::fs::read(&shot).expect("read the screenshot back");
    assert!(
        png.starts_with(b"\x89PNG"),
        "{} is not a PNG",
        shot.display()
    );

    browser.close().await;
}
