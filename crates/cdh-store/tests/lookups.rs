//! Organizations, channels, tokens and hub settings read back, and their not-found paths.

use cdh_store::Resource;
use cdh_store::StoreError;
use cdh_store::model::NewChannel;
use cdh_store::model::{ChannelId, HubId, OrganizationId, Realm};

use crate::conformance;
use crate::support::{TestStore, hub};

conformance!(organizations_channels_tokens_read_back, lookups_body);
async fn lookups_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    let org = s.get_organization(h.id, h.org).await.unwrap();
    assert_eq!(
        (
            org.id,
            org.hub_id,
            org.name.as_str(),
            org.default_region.as_str()
        ),
        (h.org, h.id, "brand tw", "TW")
    );
    assert_eq!(s.list_organizations(h.id).await.unwrap(), vec![org.clone()]);
    assert_eq!(s.organization_hub(h.org).await.unwrap(), Some(org.clone()));

    let channels = s.list_channels(h.id, h.org).await.unwrap();
    let ids: Vec<ChannelId> = channels.iter().map(|c| c.id).collect();
    assert_eq!(ids, vec![h.line_caac, h.email_caac, h.email_maac]);
    let line = s.get_channel(h.id, h.line_caac).await.unwrap();
    assert_eq!(
        (
            line.channel_type.as_str(),
            line.product.as_str(),
            line.organization_id
        ),
        ("line", "caac", h.org)
    );

    let other = s.create_organization(h.id, "brand jp", "JP").await.unwrap();
    assert!(s.list_channels(h.id, other).await.unwrap().is_empty());
    let issued = s
        .create_token(h.id, h.org, "crm", &["profiles:read".to_owned()])
        .await
        .unwrap();
    s.create_token(h.id, other, "jp", &["admin".to_owned()])
        .await
        .unwrap();
    s.revoke_token(h.id, issued.id).await.unwrap();
    let tokens = s.list_tokens(h.id, h.org).await.unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].name, "crm");
    assert_eq!(tokens[0].scopes, vec!["profiles:read".to_owned()]);
    assert!(tokens[0].revoked_at.is_some());

    let settings = s.realm_settings(h.id, h.org).await.unwrap();
    assert_eq!(settings.realm, Realm::Organization(h.org));
    assert_eq!(settings.organizations, vec![h.org]);
    assert!(!settings.cross_product && settings.connection.is_none());
    s.set_cross_product(h.id, h.org, true).await.unwrap();
    // Each organization has a switch of its own.
    assert!(s.realm_settings(h.id, h.org).await.unwrap().cross_product);
    assert!(!s.realm_settings(h.id, other).await.unwrap().cross_product);
    s.set_cross_product(h.id, other, true).await.unwrap();
    let connection = s
        .connect_organizations(
            h.id,
            &[h.org, other],
            "https://brand.example/disclosure",
            "partner",
        )
        .await
        .unwrap();
    let settings = s.realm_settings(h.id, other).await.unwrap();
    assert_eq!(settings.realm, Realm::Connection(connection.id));
    assert!(
        settings.cross_product,
        "both had it on, so the connection has"
    );
    let c = settings.connection.as_ref().expect("connected");
    assert_eq!(c, &connection);
    assert_eq!(c.unified_at, None, "not unified until the first apply");
    assert_eq!(
        settings.visible_realms(other),
        vec![Realm::Organization(other), Realm::Connection(connection.id)]
    );
    assert_eq!(c.organization_ids, {
        let mut ids = vec![h.org, other];
        ids.sort_unstable();
        ids
    });
    assert_eq!(
        (c.disclosure_url.as_str(), c.actor.as_str()),
        ("https://brand.example/disclosure", "partner")
    );
    t.finish(h.id).await;
}

conformance!(lookups_of_unknown_ids_are_not_found, not_found_body);
async fn not_found_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    let other_hub = s.create_hub("other").await.unwrap();
    // Another hub's organization is not found in this one.
    assert_eq!(
        s.get_organization(other_hub, h.org).await,
        Err(StoreError::NotFound(Resource::Organization))
    );
    assert_eq!(
        s.get_channel(other_hub, h.line_caac).await,
        Err(StoreError::NotFound(Resource::Channel))
    );
    assert_eq!(
        s.get_channel(h.id, ChannelId(h.org.0)).await,
        Err(StoreError::NotFound(Resource::Channel))
    );
    assert_eq!(s.organization_hub(OrganizationId(i64::MAX)).await, Ok(None));
    assert_eq!(
        s.realm_settings(HubId(i64::MAX), h.org).await,
        Err(StoreError::NotFound(Resource::Organization))
    );
    assert!(s.list_tokens(other_hub, h.org).await.unwrap().is_empty());
    let err = s
        .create_channel(
            h.id,
            &NewChannel {
                organization_id: h.org,
                channel_type: "api".into(),
                product: "nope".into(),
                name: "x".into(),
                external_account_id: "x".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)));
    t.finish(h.id).await;
}
