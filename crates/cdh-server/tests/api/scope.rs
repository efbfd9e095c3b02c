//! A change of scope (the cross-product switch, a partner connection) never leaves a new
//! contact outside the profile it should join: the scope in force is the one the last apply
//! applied, for the upsert, the import and the preview alike, until the next apply widens it.

use serde_json::{Value, json};

use crate::both_manual;
use crate::support::{OPERATOR, Org, TestApp};

const EMAIL: &str = "amy@example.com";

/// The profiles a lookup by `email` finds in `org`.
async fn profiles_by_email(app: &TestApp, org: &Org, email: &str) -> Vec<String> {
    let found = app
        .get(&format!("/v1/profiles?display_email={email}"), &org.admin)
        .await
        .expect(200);
    let mut ids: Vec<String> = found.body["items"]
        .as_array()
        .expect("a page of profiles")
        .iter()
        .filter_map(|p| p["id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

fn outcome(reply: &Value) -> &str {
    reply["unification"]["outcome"].as_str().unwrap_or("")
}

async fn cross_product_switch(app: &TestApp) {
    let org = app.org("brand").await;
    let caac = app.channel(&org.admin, "email", "caac").await;
    let maac = app.channel(&org.admin, "email", "maac").await;
    let first = app
        .contact(&org.admin, &caac, "c1", json!({"display_email": EMAIL}))
        .await
        .expect(200);
    app.unify(&org, &["display_email"]).await;
    app.put("/v1/hub", &org.admin, json!({"cross_product": true}))
        .await
        .expect(200);

    // The switch is asked for, not yet applied: a new contact of the same product joins the
    // profile it joined before the switch.
    let second = app
        .contact(&org.admin, &caac, "c2", json!({"display_email": EMAIL}))
        .await
        .expect(200);
    assert_eq!(outcome(&second.body), "joined", "{}", second.body);
    assert_eq!(second.str("profile_id"), first.str("profile_id"));
    let other_product = app
        .contact(&org.admin, &maac, "m1", json!({"display_email": EMAIL}))
        .await
        .expect(200);
    assert_eq!(
        profiles_by_email(app, &org, EMAIL).await.len(),
        2,
        "products stay apart until the switch is applied"
    );

    // The preview shows what the wider scope merges; the apply does it, and from then on new
    // contacts of either product join the one profile.
    let preview = app.unify(&org, &["display_email"]).await;
    assert_eq!(preview["profiles_after"], 1, "{preview}");
    let joined = app
        .contact(&org.admin, &maac, "m2", json!({"display_email": EMAIL}))
        .await
        .expect(200);
    assert_eq!(outcome(&joined.body), "joined", "{}", joined.body);
    assert_eq!(profiles_by_email(app, &org, EMAIL).await.len(), 1);
    let profile = app
        .get(
            &format!("/v1/profiles/{}", other_product.str("profile_id")),
            &org.admin,
        )
        .await
        .expect(200);
    assert_eq!(profile.str("id"), joined.str("profile_id"));

    // Switching back is asked for too: until applied, contacts of both products still join.
    app.put("/v1/hub", &org.admin, json!({"cross_product": false}))
        .await
        .expect(200);
    let after_off = app
        .contact(&org.admin, &caac, "c3", json!({"display_email": EMAIL}))
        .await
        .expect(200);
    assert_eq!(after_off.str("profile_id"), joined.str("profile_id"));
}
both_manual!(
    the_cross_product_switch_takes_effect_with_the_apply,
    cross_product_switch
);

async fn partner_connection(app: &TestApp) {
    let a = app.org("Brand A").await;
    let b = app.org_in_brand("Brand B", &a).await;
    let a_mail = app.channel(&a.admin, "email", "caac").await;
    let b_mail = app.channel(&b.admin, "email", "caac").await;
    let first = app
        .contact(&a.admin, &a_mail, "a1", json!({"display_email": EMAIL}))
        .await
        .expect(200);
    app.unify(&a, &["display_email"]).await;
    app.post(
        "/v1/partner/connections",
        OPERATOR,
        json!({"organization_ids": [a.id, b.id], "disclosure_url": "https://brand.example/privacy"}),
    )
    .await
    .expect(201);

    // Connected, not yet unified together: A's new contact joins A's profile.
    let second = app
        .contact(&a.admin, &a_mail, "a2", json!({"display_email": EMAIL}))
        .await
        .expect(200);
    assert_eq!(outcome(&second.body), "joined", "{}", second.body);
    assert_eq!(second.str("profile_id"), first.str("profile_id"));
    let b_first = app
        .contact(&b.admin, &b_mail, "b1", json!({"display_email": EMAIL}))
        .await
        .expect(200);
    assert_ne!(b_first.str("profile_id"), first.str("profile_id"));

    // Once the shared setting is applied, contacts of both organizations join one profile.
    app.unify(&b, &["display_email"]).await;
    for (org, channel, id) in [(&a, &a_mail, "a3"), (&b, &b_mail, "b2")] {
        let joined = app
            .contact(&org.admin, channel, id, json!({"display_email": EMAIL}))
            .await
            .expect(200);
        assert_eq!(outcome(&joined.body), "joined", "{}", joined.body);
        assert_eq!(profiles_by_email(app, org, EMAIL).await.len(), 1);
    }

    // The switch of the connection's realm waits for an apply too.
    app.put("/v1/hub", &a.admin, json!({"cross_product": true}))
        .await
        .expect(200);
    let after_switch = app
        .contact(&b.admin, &b_mail, "b3", json!({"display_email": EMAIL}))
        .await
        .expect(200);
    assert_eq!(
        outcome(&after_switch.body),
        "joined",
        "{}",
        after_switch.body
    );
    assert_eq!(profiles_by_email(app, &a, EMAIL).await.len(), 1);
}
both_manual!(
    a_partner_connection_takes_effect_with_the_apply,
    partner_connection
);
