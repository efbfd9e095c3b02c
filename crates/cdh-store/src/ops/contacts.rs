//! [`Contacts`] for every backend: the upsert (each adapter runs its own, see
//! [`crate::sql::Upserts::upsert`]), a contact read back, and notes and conversations on its timeline.

use async_trait::async_trait;

use crate::error::{Resource, StoreError, StoreResult};
use crate::model::{
    ChannelId, Contact, ContactId, ContactInput, HubId, Millis, ProfileId, TimelineEntryId,
    Upserted,
};
use crate::ops::setup::missing_parent;
use crate::ops::upsert::profile_of_contact;
use crate::port::Contacts;
use crate::sql::{Adapter, fetch_one, query};

#[async_trait]
impl<B: Adapter> Contacts for B {
    async fn upsert_contact(
        &self,
        hub: HubId,
        input: &ContactInput,
        actor: &str,
    ) -> StoreResult<Upserted> {
        let _open = self.apply_gates().enter(hub).await;
        self.upsert(hub, input, actor).await
    }

    async fn get_contact(&self, hub: HubId, id: ContactId) -> StoreResult<Contact> {
        let mut conn = self.acquire().await?;
        let row: ContactRow = fetch_one::<B, _>(
            &mut conn,
            query(
                "SELECT id, channel_id, external_id, fields, tags, custom_fields, \
                 invalid_fields, created_at, updated_at FROM contacts \
                 WHERE hub_id = $1 AND id = $2",
            )
            .bind(hub)
            .bind(id),
            Resource::Contact,
        )
        .await?;
        let profile = profile_of_contact::<B>(&mut conn, hub, id).await?;
        row.into_contact(profile)
    }

    async fn add_note(
        &self,
        hub: HubId,
        contact: ContactId,
        text: &str,
        author: &str,
        at: Millis,
    ) -> StoreResult<TimelineEntryId> {
        add_timeline_entry(self, hub, contact, "note", text, author, at).await
    }

    async fn add_conversation(
        &self,
        hub: HubId,
        contact: ContactId,
        direction: &str,
        text: &str,
        sent_at: Millis,
    ) -> StoreResult<TimelineEntryId> {
        if direction != "in" && direction != "out" {
            return Err(StoreError::Invalid(format!(
                "direction must be in or out, not {direction}"
            )));
        }
        add_timeline_entry(self, hub, contact, "conversation", text, direction, sent_at).await
    }
}

/// A contact as stored.
#[derive(sqlx::FromRow)]
struct ContactRow {
    id: ContactId,
    channel_id: ChannelId,
    external_id: String,
    fields: String,
    tags: String,
    custom_fields: String,
    invalid_fields: String,
    created_at: i64,
    updated_at: i64,
}

impl ContactRow {
    fn into_contact(self, profile_id: ProfileId) -> StoreResult<Contact> {
        Ok(Contact {
            id: self.id,
            channel_id: self.channel_id,
            external_id: self.external_id,
            profile_id,
            fields: serde_json::from_str(&self.fields)?,
            tags: serde_json::from_str(&self.tags)?,
            custom_fields: serde_json::from_str(&self.custom_fields)?,
            invalid_fields: serde_json::from_str(&self.invalid_fields)?,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// Adds a note (`author` the writer) or a conversation record (`author` its direction).
async fn add_timeline_entry<B: Adapter>(
    store: &B,
    hub: HubId,
    contact: ContactId,
    kind: &str,
    text: &str,
    author: &str,
    at: Millis,
) -> StoreResult<TimelineEntryId> {
    let mut tx = store.begin_write().await?;
    let id = TimelineEntryId(B::next_id(&mut tx, hub).await?);
    B::execute(
        &mut tx,
        query(
            "INSERT INTO timeline_entries (hub_id, id, contact_id, kind, text, author, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(hub)
        .bind(id)
        .bind(contact)
        .bind(kind)
        .bind(text)
        .bind(author)
        .bind(at),
    )
    .await
    .map_err(|e| missing_parent(e, Resource::Contact))?;
    B::commit(tx).await?;
    Ok(id)
}
