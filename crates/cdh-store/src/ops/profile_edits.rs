//! An admin's edit of a profile (`Profiles::patch_profile`): identifier fields are written to
//! every contact of the profile, as a contact write (normalised, looked up, unified); other
//! fields become manual values that win over the merged ones until the admin clears them.

use std::collections::BTreeMap;

use cdh_core::IdentifierField;

use crate::error::{Rejection, Resource, StoreError, StoreResult};
use crate::model::{ChannelId, ContactId, ContactInput, HubId, ProfileId};
use crate::ops::feed::append_events;
use crate::ops::golden::golden_many;
use crate::ops::profiles::{check_edit_field, resolve_profile};
use crate::ops::upsert::{lock_profiles, upsert_in, with_retries};
use crate::plan::unify::NewEvent;
use crate::port::ProfileRecord;
use crate::rules::realm_of_scope;
use crate::sql::text::buckets_of;
use crate::sql::{Adapter, fetch_one, query};

/// The edits of a PATCH, checked and split by what they change.
struct Edits<'a> {
    /// Identifier fields and their new values, written to every contact of the profile.
    identifiers: Vec<(&'a str, &'a str)>,
    /// Other fields: a manual value, or `None` to return the field to its merged value.
    manual: Vec<(&'a str, Option<&'a str>)>,
}

impl<'a> Edits<'a> {
    fn parse(edits: &'a BTreeMap<String, Option<String>>) -> StoreResult<Self> {
        if edits.is_empty() {
            return Err(StoreError::rejected(
                Rejection::EmptyPatch,
                "no field to edit",
            ));
        }
        let mut parsed = Edits {
            identifiers: Vec::new(),
            manual: Vec::new(),
        };
        for (name, value) in edits {
            check_edit_field(name)?;
            match (IdentifierField::built_in(name), value) {
                (Some(IdentifierField::LineUid), _) => {
                    return Err(StoreError::rejected(
                        Rejection::InvalidField,
                        "line_uid is issued by LINE to each contact and cannot be edited",
                    ));
                }
                (Some(_), None) => {
                    return Err(StoreError::rejected(
                        Rejection::InvalidField,
                        format!(
                            "{name} is an identifier of the profile's contacts: give a value \
                             (a contact's own write removes one)"
                        ),
                    ));
                }
                (Some(_), Some(value)) => parsed.identifiers.push((name, value.as_str())),
                (None, value) => parsed.manual.push((name, value.as_deref())),
            }
        }
        Ok(parsed)
    }
}

/// See `Profiles::patch_profile`.
pub(crate) async fn patch_profile<B: Adapter>(
    store: &B,
    hub: HubId,
    id: ProfileId,
    edits: &BTreeMap<String, Option<String>>,
    actor: &str,
) -> StoreResult<ProfileRecord> {
    let parsed = Edits::parse(edits)?;
    with_retries(|| async {
        let mut tx = store.begin_write().await?;
        let now = store.clock().now();
        // Identifiers first, as contact writes: they may merge the profile into another, and
        // the manual values go to the profile that is live after them.
        if !parsed.identifiers.is_empty() {
            let (live, _) = resolve_profile::<B>(&mut tx, hub, id).await?;
            let fields: BTreeMap<String, Option<String>> = parsed
                .identifiers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), Some((*value).to_owned())))
                .collect();
            for (contact, channel_id, external_id) in members::<B>(&mut tx, hub, live).await? {
                let input = ContactInput {
                    channel_id,
                    external_id,
                    fields: fields.clone(),
                    ..ContactInput::default()
                };
                let written = upsert_in::<B>(&mut tx, hub, &input, actor, now).await?;
                if let Some(bad) = written
                    .contact
                    .invalid_fields
                    .iter()
                    .find(|f| fields.contains_key(&f.field))
                {
                    return Err(StoreError::rejected(
                        Rejection::InvalidField,
                        format!(
                            "{} is not a valid value for contact {contact}: {}",
                            bad.field, bad.reason
                        ),
                    ));
                }
            }
        }
        B::lock_hub_shared(&mut tx, hub).await?;
        let (live, _) = resolve_profile::<B>(&mut tx, hub, id).await?;
        // Lock the profile row, so a merge absorbing it waits or has already happened.
        let locked = lock_profiles::<B>(&mut tx, hub, &[live]).await?;
        let live = match locked.first().and_then(|p| p.merged_into) {
            Some(survivor) => survivor,
            None => live,
        };
        for (field, value) in &parsed.manual {
            B::execute(
                &mut tx,
                query(
                    "DELETE FROM profile_overrides \
                     WHERE hub_id = $1 AND profile_id = $2 AND field = $3",
                )
                .bind(hub)
                .bind(live)
                .bind(*field),
            )
            .await?;
            if let Some(value) = value {
                B::execute(
                    &mut tx,
                    query(
                        "INSERT INTO profile_overrides (hub_id, profile_id, field, value, \
                         actor, updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(hub)
                    .bind(live)
                    .bind(*field)
                    .bind(*value)
                    .bind(actor)
                    .bind(now),
                )
                .await?;
            }
        }
        B::execute(
            &mut tx,
            query("UPDATE profiles SET updated_at = $3 WHERE hub_id = $1 AND id = $2")
                .bind(hub)
                .bind(live)
                .bind(now),
        )
        .await?;
        // The profile's events go to the realm its contacts unify in.
        let (scope,): (String,) = fetch_one::<B, _>(
            &mut tx,
            query(
                "SELECT c.scope FROM profiles p JOIN contacts c \
                 ON c.hub_id = p.hub_id AND c.id = p.oldest_contact \
                 WHERE p.hub_id = $1 AND p.id = $2",
            )
            .bind(hub)
            .bind(live),
            Resource::Profile,
        )
        .await?;
        append_events::<B>(
            &mut tx,
            hub,
            realm_of_scope(&scope),
            &[NewEvent {
                kind: "profile.updated",
                profile_id: live,
                payload: serde_json::json!({
                    "fields": edits.keys().collect::<Vec<_>>(),
                    "actor": actor,
                    "manual": true,
                }),
            }],
            now,
        )
        .await?;
        let mut result = golden_many::<B>(&mut tx, hub, &[live]).await?;
        B::commit(tx).await?;
        result.pop().ok_or(StoreError::NotFound(Resource::Profile))
    })
    .await
}

/// The contacts of live profile `live`: id, channel and external id, in id order.
async fn members<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    live: ProfileId,
) -> StoreResult<Vec<(ContactId, ChannelId, String)>> {
    B::fetch_all(
        conn,
        query(format!(
            "SELECT c.id, c.channel_id, c.external_id FROM ({}) b \
             {j} memberships m ON m.hub_id = $1 AND m.bucket_id = b.bucket_id \
             {j} contacts c ON c.hub_id = m.hub_id AND c.id = m.contact_id \
             ORDER BY c.id",
            buckets_of("$2"),
            j = B::ORDERED_JOIN
        ))
        .bind(hub)
        .bind(live),
    )
    .await
}
