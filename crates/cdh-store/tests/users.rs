//! Console users: created, found for sign-in, read back and listed per organization; a
//! duplicate email is a conflict, an unknown organization is not found, and another
//! organization's (or hub's) users are invisible.

use cdh_store::Resource;
use cdh_store::StoreError;
use cdh_store::model::{ConsoleUser, Role};
use cdh_store::model::{OrganizationId, UserId};

use crate::conformance;
use crate::support::{TestStore, hub};

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";

conformance!(users_are_created_and_read_back, create_body);
async fn create_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    let ann = s
        .create_user(h.id, h.org, "ann@example.com", HASH, Role::Admin, 1_000)
        .await
        .unwrap();
    assert_eq!(
        (
            ann.organization_id,
            ann.email.as_str(),
            ann.role,
            ann.created_at
        ),
        (h.org, "ann@example.com", Role::Admin, 1_000)
    );
    assert_eq!(s.get_user(h.id, ann.id).await.unwrap(), ann);
    let bob = s
        .create_user(
            h.id,
            h.org,
            "bob@example.com",
            "other-hash",
            Role::Agent,
            2_000,
        )
        .await
        .unwrap();
    assert_ne!(ann.id, bob.id);

    // Sign-in finds the user with the stored hash; the email is compared as stored.
    let (found, hash) = s
        .user_for_sign_in(h.id, h.org, "ann@example.com")
        .await
        .unwrap()
        .expect("ann can sign in");
    assert_eq!((found, hash.as_str()), (ann.clone(), HASH));
    assert_eq!(
        s.user_for_sign_in(h.id, h.org, "nobody@example.com")
            .await
            .unwrap(),
        None
    );

    // Listed by email, whatever the order of creation.
    let carl = s
        .create_user(h.id, h.org, "aaron@example.com", HASH, Role::Agent, 3_000)
        .await
        .unwrap();
    let listed: Vec<ConsoleUser> = s.list_users(h.id, h.org).await.unwrap();
    assert_eq!(listed, vec![carl, ann, bob]);
    t.finish(h.id).await;
}

conformance!(duplicate_emails_and_unknown_organizations_fail, errors_body);
async fn errors_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    s.create_user(h.id, h.org, "ann@example.com", HASH, Role::Admin, 1)
        .await
        .unwrap();
    let err = s
        .create_user(h.id, h.org, "ann@example.com", HASH, Role::Agent, 2)
        .await
        .unwrap_err();
    match &err {
        StoreError::Conflict(message) => {
            assert!(message.contains("ann@example.com"), "{message}")
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(err.code(), "conflict");
    assert_eq!(
        s.create_user(
            h.id,
            OrganizationId(h.org.0 + 1_000_000),
            "x@example.com",
            HASH,
            Role::Agent,
            1
        )
        .await
        .unwrap_err(),
        StoreError::NotFound(Resource::Organization)
    );
    assert_eq!(
        s.get_user(h.id, UserId(987_654_321)).await.unwrap_err(),
        StoreError::NotFound(Resource::User)
    );
    // Only the first user was stored.
    assert_eq!(s.list_users(h.id, h.org).await.unwrap().len(), 1);
    t.finish(h.id).await;
}

conformance!(users_of_other_organizations_are_invisible, isolation_body);
async fn isolation_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    let other_org = s.create_organization(h.id, "brand jp", "JP").await.unwrap();
    let ann = s
        .create_user(h.id, h.org, "ann@example.com", HASH, Role::Admin, 1)
        .await
        .unwrap();
    // The same email may exist once per organization.
    let ann_jp = s
        .create_user(
            h.id,
            other_org,
            "ann@example.com",
            "jp-hash",
            Role::Agent,
            2,
        )
        .await
        .unwrap();
    assert_eq!(s.list_users(h.id, h.org).await.unwrap(), vec![ann.clone()]);
    assert_eq!(
        s.list_users(h.id, other_org).await.unwrap(),
        vec![ann_jp.clone()]
    );
    let (found, hash) = s
        .user_for_sign_in(h.id, other_org, "ann@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.id, hash.as_str()), (ann_jp.id, "jp-hash"));

    // Another hub sees none of them, even by id.
    let other = hub(s).await;
    assert!(s.list_users(other.id, other.org).await.unwrap().is_empty());
    assert_eq!(
        s.get_user(other.id, ann.id).await.unwrap_err(),
        StoreError::NotFound(Resource::User)
    );
    assert_eq!(
        s.user_for_sign_in(other.id, other.org, "ann@example.com")
            .await
            .unwrap(),
        None
    );
    // A bob in the other hub's organization does not show up in ours.
    s.create_user(other.id, other.org, "bob@example.com", HASH, Role::Agent, 3)
        .await
        .unwrap();
    assert_eq!(s.list_users(h.id, h.org).await.unwrap(), vec![ann]);
    t.finish(h.id).await;
}

#[test]
fn roles_parse_exactly() {
    assert_eq!(Role::parse("admin"), Some(Role::Admin));
    assert_eq!(Role::parse("agent"), Some(Role::Agent));
    assert_eq!(Role::parse("Admin"), None);
    assert_eq!(Role::parse(""), None);
    assert_eq!(Role::Admin.as_str(), "admin");
    assert_eq!(Role::Agent.to_string(), "agent");
}

conformance!(ending_sessions_moves_the_users_epoch_on, epoch_body);
async fn epoch_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    let ann = s
        .create_user(h.id, h.org, "ann@example.com", HASH, Role::Admin, 1_000)
        .await
        .unwrap();
    let bob = s
        .create_user(h.id, h.org, "bob@example.com", HASH, Role::Agent, 1_000)
        .await
        .unwrap();
    assert_eq!(ann.session_epoch, 0);
    assert_eq!(s.end_sessions(h.id, ann.id).await.unwrap(), 1);
    assert_eq!(s.end_sessions(h.id, ann.id).await.unwrap(), 2);
    assert_eq!(s.get_user(h.id, ann.id).await.unwrap().session_epoch, 2);
    assert_eq!(s.get_user(h.id, bob.id).await.unwrap().session_epoch, 0);
    assert_eq!(
        s.end_sessions(h.id, UserId(i64::MAX)).await,
        Err(StoreError::NotFound(Resource::User))
    );
    t.finish(h.id).await;
}
