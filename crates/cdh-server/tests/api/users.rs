//! Console users through the API: created and listed by the operator or the organization's
//! admin (never with a password hash), signed in with the library call the console uses,
//! and every error: 401, 403, 404, 409 and 422.

use cdh_store::model::{HubId, OrganizationId};
use reqwest::Method;
use serde_json::json;

use crate::both;
use crate::support::{OPERATOR, TestApp};

const PASSWORD: &str = "correct horse battery";

fn users_path(org: &str) -> String {
    format!("/v1/organizations/{org}/users")
}

fn org_ref(id: &str) -> (HubId, OrganizationId) {
    let (hub, org) = id.split_once('-').expect("an organization id");
    (hub.parse().unwrap(), org.parse().unwrap())
}

async fn create_list_and_sign_in(app: &TestApp) {
    let org = app.org("brand").await;
    let ann = app
        .post(
            &users_path(&org.id),
            OPERATOR,
            json!({"email": "  Ann@Example.COM ", "password": PASSWORD, "role": "admin"}),
        )
        .await
        .expect(201);
    assert_eq!(ann.body["email"], "ann@example.com");
    assert_eq!(ann.body["role"], "admin");
    assert_eq!(ann.body["organization_id"], org.id);
    assert!(ann.body["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(ann.body.get("password").is_none() && ann.body.get("password_hash").is_none());
    // The organization's admin token may create users too.
    app.post(
        &users_path(&org.id),
        &org.admin,
        json!({"email": "aaron@example.com", "password": PASSWORD, "role": "agent"}),
    )
    .await
    .expect(201);

    let list = app.get(&users_path(&org.id), &org.admin).await.expect(200);
    let items = list.body["items"].as_array().unwrap();
    let emails: Vec<&str> = items.iter().map(|u| u["email"].as_str().unwrap()).collect();
    assert_eq!(emails, ["aaron@example.com", "ann@example.com"]);
    assert!(
        !list.text.contains("argon2"),
        "no hash is ever shown: {}",
        list.text
    );
    assert_eq!(
        app.get(&users_path(&org.id), OPERATOR)
            .await
            .expect(200)
            .body["items"],
        list.body["items"]
    );

    // Sign-in, as the console calls it: email normalised, password checked.
    let state = &app.handle.state;
    let (hub, o) = org_ref(&org.id);
    let user = cdh_server::users::sign_in(state, hub, o, "ANN@example.com ", PASSWORD)
        .await
        .unwrap()
        .expect("the right password signs in");
    assert_eq!(user.id.to_string(), ann.str("id"));
    for (email, password) in [
        ("ann@example.com", "wrong password!"),
        ("nobody@example.com", PASSWORD),
        ("not an email", PASSWORD),
    ] {
        assert_eq!(
            cdh_server::users::sign_in(state, hub, o, email, password)
                .await
                .unwrap(),
            None,
            "{email} / {password}"
        );
    }
    // Another organization's user with the same email does not sign in here.
    assert_eq!(
        cdh_server::users::sign_in(
            state,
            hub,
            OrganizationId(o.0 + 1000),
            "ann@example.com",
            PASSWORD
        )
        .await
        .unwrap(),
        None
    );
}
both!(
    users_are_created_listed_and_sign_in,
    create_list_and_sign_in
);

async fn user_errors(app: &TestApp) {
    let org = app.org("brand").await;
    let other = app.org("other").await;
    let path = users_path(&org.id);
    let body = json!({"email": "ann@example.com", "password": PASSWORD, "role": "agent"});

    // 401 without a token or with a bad one.
    app.call(Method::POST, &path, None, Some(body.clone()))
        .await
        .expect_error(401, "unauthorized");
    app.call(Method::GET, &path, Some("cdh_1_1_nope"), None)
        .await
        .expect_error(401, "unauthorized");
    // Another organization's admin is told the organization does not exist.
    app.post(&path, &other.admin, body.clone())
        .await
        .expect_error(404, "not_found");
    app.get(&path, &other.admin)
        .await
        .expect_error(404, "not_found");
    // A token of this organization without `admin` is forbidden.
    let writer = app.token(&org.id, OPERATOR, &["profiles:write"]).await;
    app.post(&path, &writer, body.clone())
        .await
        .expect_error(403, "forbidden");
    app.get(&path, &writer).await.expect_error(403, "forbidden");
    // Organizations that do not exist, or ids that name none.
    for id in ["999-999", "nope", "1-0"] {
        app.post(&users_path(id), OPERATOR, body.clone())
            .await
            .expect_error(404, "not_found");
        app.get(&users_path(id), OPERATOR)
            .await
            .expect_error(404, "not_found");
    }

    // 422: a bad email, a short password, an unknown role, an unknown or missing field.
    let bad = [
        (
            json!({"email": "ann", "password": PASSWORD, "role": "agent"}),
            "invalid_field",
            "email",
        ),
        (
            json!({"email": "ann@example.com", "password": "123456789", "role": "agent"}),
            "invalid_field",
            "password",
        ),
        (
            json!({"email": "ann@example.com", "password": PASSWORD, "role": "owner"}),
            "invalid_field",
            "role",
        ),
        (
            json!({"email": "ann@example.com", "password": PASSWORD, "role": "agent", "name": "Ann"}),
            "unknown_field",
            "name",
        ),
        (
            json!({"email": "ann@example.com", "password": PASSWORD}),
            "missing_field",
            "role",
        ),
    ];
    for (body, code, field) in bad {
        let r = app
            .post(&path, OPERATOR, body.clone())
            .await
            .expect_error(422, code);
        assert_eq!(r.body["error"]["details"]["field"], field, "{body}");
    }

    // 409 for an email already used in the organization, however it is written.
    app.post(&path, OPERATOR, body.clone()).await.expect(201);
    let r = app
        .post(
            &path,
            &org.admin,
            json!({"email": "ANN@example.com", "password": PASSWORD, "role": "admin"}),
        )
        .await
        .expect_error(409, "conflict");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ann@example.com"),
        "{}",
        r.text
    );
    // The same email is free in another organization; lists stay apart.
    app.post(&users_path(&other.id), &other.admin, body.clone())
        .await
        .expect(201);
    let mine = app.get(&path, &org.admin).await.expect(200);
    assert_eq!(mine.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(mine.body["items"][0]["organization_id"], org.id);
}
both!(user_errors_are_401_403_404_409_422, user_errors);

async fn openapi_describes_users(app: &TestApp) {
    let doc = app
        .call(Method::GET, "/openapi.json", None, None)
        .await
        .expect(200);
    let path = &doc.body["paths"]["/v1/organizations/{id}/users"];
    assert!(path["post"]["responses"]["409"].is_object(), "{path}");
    assert!(path["get"]["responses"]["200"].is_object(), "{path}");
    let new_user = &doc.body["components"]["schemas"]["NewUser"];
    assert_eq!(new_user["properties"]["password"]["minLength"], 10);
    assert_eq!(
        doc.body["components"]["schemas"]["UserRole"]["enum"],
        json!(["admin", "agent"])
    );
}
both!(openapi_describes_the_user_routes, openapi_describes_users);
