//! The tutorial's steps in the console: Settings -> Channels lists and adds channels, the
//! timeline says which channel each entry came from, an error page keeps the menu, and a
//! preview offers exclusions only when there is a value to exclude.

use reqwest::StatusCode;
use serde_json::json;

use crate::console::{Console, user};
use crate::support::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tutorials_steps_are_in_the_console() {
    let app = TestApp::start(crate::support::Backend::Sqlite, |c| c.run_worker = false).await;
    let org = app.org("Lumen Tea").await;
    user(&app, &org, "ann@example.com", "admin").await;
    let mut console = Console::new(&app);
    console.sign_in(&org.id, "ann@example.com").await;

    // Settings -> Channels: none yet, then one added by the form.
    let page = console.get("/settings/channels").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.html.contains("No channel yet"), "{}", page.html);
    assert!(
        page.html
            .contains("id=\"nav-channels\" href=\"/settings/channels\" aria-current=\"page\"")
    );
    let added = console
        .post(
            "/settings/channels",
            &[("type", "sms"), ("product", "caac"), ("name", "Lumen SMS")],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.html);
    let page = console.get(&added.location).await;
    assert!(page.html.contains("The channel was added."));
    assert!(
        page.html
            .contains("data-type=\"sms\" data-product=\"caac\"")
            && page.html.contains("Lumen SMS"),
        "{}",
        page.html
    );
    let refused = console
        .post(
            "/settings/channels",
            &[("type", "sms"), ("product", "caac"), ("name", "  ")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.html.contains("The channel was not added"),
        "{}",
        refused.html
    );
    let channels = app.get("/v1/channels", &org.admin).await.expect(200);
    let [channel] = channels.body["items"].as_array().unwrap().as_slice() else {
        panic!("one channel: {}", channels.body);
    };
    let channel_id = channel["id"].as_str().unwrap();

    // The timeline names the channel of each entry.
    let contact = app
        .contact(
            &org.admin,
            channel_id,
            "s1",
            json!({"display_email": "amy@example.com"}),
        )
        .await
        .expect(200);
    app.post(
        &format!("/v1/contacts/{}/notes", contact.str("id")),
        &org.admin,
        json!({"text": "asked about oolong", "author": "ann"}),
    )
    .await
    .expect(201);
    let profile = console
        .get(&format!("/profiles/{}", contact.str("profile_id")))
        .await;
    assert!(profile.html.contains("on Lumen SMS"), "{}", profile.html);

    // An error page keeps the menu of a signed-in user.
    let missing = console.get("/profiles/999999999").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(
        missing.html.contains("There is nothing here"),
        "{}",
        missing.html
    );
    assert!(
        missing.html.contains("id=\"nav-contacts\""),
        "{}",
        missing.html
    );
    assert!(missing.html.contains("id=\"sign-out\""));

    // Nothing suspicious to exclude: no exclusion button.
    let created = console
        .post(
            "/settings/unification/previews",
            &[("keys", "display_email")],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.html);
    let preview = console.get(&created.location).await;
    assert!(
        preview.html.contains("No value is shared"),
        "{}",
        preview.html
    );
    assert!(!preview.html.contains("Preview again with these exclusions"));
    app.finish().await;
}
