//! An upsert's first decision, without IO: what the contact's row and identifiers become,
//! from what the upsert read (its channel, the unify setting in force, the stored contact).
//!
//! Both upsert paths call it: the generic one (`ops::upsert`, PostgreSQL's upserts and both
//! backends' imports) and SQLite's writer connection (`sqlite::writer`).

use std::collections::BTreeMap;

use cdh_core::{Blocklist, IdentifierField, Normalizer, Outcome};

use crate::error::{Resource, StoreError, StoreResult};
use crate::model::{
    ConnectionId, ContactId, ContactInput, FieldValue, HubId, InvalidField, Millis, OrganizationId,
    UnifySetting,
};
use crate::rules::{is_excluded, normalizer, parse_keys, scope_name, value_lock_key};
use crate::sql::{Arg, WriteBatch};

/// The upsert's first read (`sql::text::upsert_context_sql`), one row; the contact's columns
/// are `NULL` when it is new.
#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct ContextRow {
    pub organization_id: OrganizationId,
    pub channel_type: String,
    pub product: String,
    pub region: String,
    pub connection_id: Option<ConnectionId>,
    pub cross_product: i64,
    pub first_id: i64,
    pub setting_keys: Option<String>,
    pub setting_excluded: Option<String>,
    pub setting_unique: Option<String>,
    pub contact_id: Option<ContactId>,
    pub fields: Option<String>,
    pub tags: Option<String>,
    pub custom_fields: Option<String>,
    pub created_at: Option<i64>,
    pub event_seq: i64,
}

/// What a contact's channel says about how it unifies.
#[derive(Clone, Debug)]
pub(crate) struct ChannelInfo {
    pub organization_id: OrganizationId,
    pub channel_type: String,
    pub product: String,
    pub region: String,
    /// The partner connection the organization is in, if any.
    pub group: Option<ConnectionId>,
    pub cross_product: bool,
}

impl ChannelInfo {
    /// The scope the channel's contacts unify in under a setting (with or without LINE uid as
    /// a key).
    pub fn scope(&self, line_uid_is_key: bool) -> String {
        scope_name(
            self.organization_id,
            self.group,
            self.cross_product,
            &self.product,
            self.channel_type == "line",
            line_uid_is_key,
        )
    }
}

/// The stored contact an upsert updates.
#[derive(Clone, Debug)]
pub(crate) struct StoredContact {
    pub id: ContactId,
    pub fields: String,
    pub tags: String,
    pub custom_fields: String,
    pub created_at: i64,
}

/// Everything an upsert reads before it writes, in one statement.
#[derive(Clone, Debug)]
pub(crate) struct UpsertContext {
    pub channel: ChannelInfo,
    pub setting: UnifySetting,
    pub ids: IdBlock,
    /// The hub's last event number when the upsert read it (used where one writer keeps it).
    pub event_seq: i64,
    pub existing: Option<StoredContact>,
}

/// Ids handed out within one transaction: a block from the sequence on PostgreSQL, the
/// hub's counter on SQLite (whose one writer stores the counter back at the end).
#[derive(Clone, Copy, Debug)]
pub(crate) struct IdBlock {
    pub next: i64,
    pub end: i64,
}

impl IdBlock {
    /// `n` ids from the block, which must hold that many.
    pub fn take_local(&mut self, n: usize) -> StoreResult<Vec<i64>> {
        let n = n as i64;
        if self.end - self.next < n {
            return Err(StoreError::Corrupt("the id block is used up".to_owned()));
        }
        self.next += n;
        Ok((self.next - n..self.next).collect())
    }
}

impl UpsertContext {
    /// The context from the row of `upsert_context_sql`; `NotFound(channel)` without one. A
    /// block from `id_block_len` ids starts at the row's first id.
    pub fn from_row(row: Option<ContextRow>, id_block_len: i64) -> StoreResult<Self> {
        let row = row.ok_or(StoreError::NotFound(Resource::Channel))?;
        let setting = UnifySetting {
            unique_fields: match row.setting_unique {
                Some(fields) => serde_json::from_str(&fields)?,
                None => crate::model::default_unique_fields(),
            },
            keys: row
                .setting_keys
                .map(|k| serde_json::from_str(&k))
                .transpose()?
                .unwrap_or_default(),
            excluded: row
                .setting_excluded
                .map(|e| serde_json::from_str(&e))
                .transpose()?
                .unwrap_or_default(),
        };
        let existing = match (
            row.contact_id,
            row.fields,
            row.tags,
            row.custom_fields,
            row.created_at,
        ) {
            (Some(id), Some(fields), Some(tags), Some(custom_fields), Some(created_at)) => {
                Some(StoredContact {
                    id,
                    fields,
                    tags,
                    custom_fields,
                    created_at,
                })
            }
            _ => None,
        };
        Ok(Self {
            channel: ChannelInfo {
                organization_id: row.organization_id,
                channel_type: row.channel_type,
                product: row.product,
                region: row.region,
                group: row.connection_id,
                cross_product: row.cross_product != 0,
            },
            setting,
            ids: IdBlock {
                next: row.first_id,
                end: row.first_id.saturating_add(id_block_len),
            },
            event_seq: row.event_seq,
            existing,
        })
    }
}

/// What an upsert writes for the contact itself, and what it reads next.
#[derive(Debug)]
pub(crate) struct ContactPlan {
    pub contact_id: ContactId,
    pub is_new: bool,
    pub scope: String,
    /// The contact's unify-key values, `(field, value)`, in key order: the ones that tie it to
    /// profiles (excluded values left out).
    pub key_values: Vec<(String, String)>,
    /// The contact's values of the setting's unique fields, `(field, value)` (excluded values
    /// left out).
    pub unique_values: Vec<(String, String)>,
    /// The advisory lock key of each of `key_values`.
    pub value_locks: Vec<i64>,
    pub fields: BTreeMap<String, FieldValue>,
    pub tags: Vec<String>,
    pub custom_fields: BTreeMap<String, String>,
    pub invalid: Vec<InvalidField>,
    pub created_at: Millis,
    pub now: Millis,
    /// The writes so far: the contact's row and its identifiers.
    pub batch: WriteBatch,
    pub ids: IdBlock,
    /// The hub's last event number when the upsert read it.
    pub event_seq: i64,
}

/// The contact as the input leaves it at `now` (a write older than a stored field loses that
/// field), its identifiers, and the writes for its row and identifiers.
pub(crate) fn plan_contact(
    hub: HubId,
    input: &ContactInput,
    context: UpsertContext,
    now: Millis,
) -> StoreResult<ContactPlan> {
    let mut ids = context.ids;
    let keys = parse_keys(&context.setting.keys)?;
    let scope = context
        .channel
        .scope(keys.contains(&IdentifierField::LineUid));
    let normalizer = normalizer(&context.channel.region, &context.setting)?;
    // Values are stored as identifiers with the built-in blocklist only: an excluded value is
    // a value the contact carries (a lookup finds it, as it finds one stored before the
    // exclusion); it only never ties contacts (`key_values` leaves it out).
    let mut stored_normalizer = Normalizer::new(normalizer.region(), Blocklist::built_in());
    let existing = context.existing;
    let written_at = input.updated_at.unwrap_or(now);
    let (mut fields, mut tags, mut custom_fields, created_at) = match &existing {
        Some(c) => (
            serde_json::from_str::<BTreeMap<String, FieldValue>>(&c.fields)?,
            serde_json::from_str::<Vec<String>>(&c.tags)?,
            serde_json::from_str::<BTreeMap<String, String>>(&c.custom_fields)?,
            c.created_at,
        ),
        None => (BTreeMap::new(), Vec::new(), BTreeMap::new(), now),
    };
    for (name, value) in &input.fields {
        // A write older than the stored value loses, field by field.
        if fields
            .get(name)
            .is_some_and(|old| old.updated_at > written_at)
        {
            continue;
        }
        match value {
            Some(v) => {
                fields.insert(
                    name.clone(),
                    FieldValue {
                        value: v.clone(),
                        updated_at: written_at,
                    },
                );
            }
            None => {
                fields.remove(name);
            }
        }
    }
    if let Some(t) = &input.tags {
        tags = t.clone();
        tags.sort();
        tags.dedup();
    }
    if let Some(c) = &input.custom_fields {
        custom_fields = c.clone();
    }
    let (values, invalid) = identifiers_of(&mut stored_normalizer, &keys, &fields, &custom_fields);
    let key_values: Vec<(String, String)> = values
        .iter()
        .filter(|(f, v)| keys.iter().any(|k| k.name() == f) && !is_excluded(&normalizer, f, v))
        .cloned()
        .collect();
    let unique_values: Vec<(String, String)> = values
        .iter()
        .filter(|(f, v)| {
            context.setting.unique_fields.iter().any(|u| u == f) && !is_excluded(&normalizer, f, v)
        })
        .cloned()
        .collect();
    let value_locks: Vec<i64> = key_values
        .iter()
        .map(|(f, v)| value_lock_key(hub, &scope, f, v))
        .collect();

    // The writes are queued and sent at the end: no read of the upsert looks at them (the tie
    // query leaves the contact's own identifiers out).
    let mut batch = WriteBatch::default();
    let stored_json = [
        serde_json::to_string(&fields)?,
        serde_json::to_string(&tags)?,
        serde_json::to_string(&custom_fields)?,
        serde_json::to_string(&invalid)?,
    ]
    .map(Arg::from);
    let contact_id = match &existing {
        Some(c) => {
            batch.push(
                "UPDATE contacts SET scope = $3, fields = $4, tags = $5, custom_fields = $6, \
                 invalid_fields = $7, updated_at = $8 WHERE hub_id = $1 AND id = $2",
                [hub.into(), c.id.into(), scope.as_str().into()]
                    .into_iter()
                    .chain(stored_json)
                    .chain([now.into()])
                    .collect(),
            );
            batch.push(
                "DELETE FROM identifiers WHERE hub_id = $1 AND contact_id = $2",
                vec![hub.into(), c.id.into()],
            );
            c.id
        }
        None => {
            // The block the context read holds at least one id.
            let id = ContactId(ids.take_local(1)?[0]);
            batch.push(
                "INSERT INTO contacts (hub_id, id, channel_id, external_id, scope, fields, \
                 tags, custom_fields, invalid_fields, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                [
                    hub.into(),
                    id.into(),
                    input.channel_id.into(),
                    input.external_id.as_str().into(),
                    scope.as_str().into(),
                ]
                .into_iter()
                .chain(stored_json)
                .chain([now.into(), now.into()])
                .collect(),
            );
            id
        }
    };
    if !values.is_empty() {
        let rows = (0..values.len())
            .map(|i| format!("($1, $2, ${}, ${}, $3)", 4 + i * 2, 5 + i * 2))
            .collect::<Vec<_>>()
            .join(", ");
        let mut args = vec![hub.into(), contact_id.into(), scope.as_str().into()];
        for (f, v) in &values {
            args.push(f.as_str().into());
            args.push(v.as_str().into());
        }
        batch.push(
            format!(
                "INSERT INTO identifiers (hub_id, contact_id, field, value, scope) VALUES {rows}"
            ),
            args,
        );
    }
    Ok(ContactPlan {
        contact_id,
        is_new: existing.is_none(),
        scope,
        key_values,
        unique_values,
        value_locks,
        fields,
        tags,
        custom_fields,
        invalid,
        created_at,
        now,
        batch,
        ids,
        event_seq: context.event_seq,
    })
}

/// The valid identifier values of a contact and the ones that cannot merge.
pub(crate) fn identifiers_of(
    normalizer: &mut Normalizer,
    keys: &[IdentifierField],
    fields: &BTreeMap<String, FieldValue>,
    custom_fields: &BTreeMap<String, String>,
) -> (Vec<(String, String)>, Vec<InvalidField>) {
    let mut valid = Vec::new();
    let mut invalid = Vec::new();
    let custom_keys = keys
        .iter()
        .filter(|k| matches!(k, IdentifierField::Custom(_)));
    let candidates = cdh_core::field::BUILT_IN_FIELDS
        .iter()
        .map(|f| (f.clone(), fields.get(f.name()).map(|v| v.value.as_str())))
        .chain(custom_keys.map(|f| (f.clone(), custom_fields.get(f.name()).map(String::as_str))));
    for (field, raw) in candidates {
        let Some(raw) = raw else { continue };
        match normalizer.normalize(&field, raw) {
            Ok(value) => valid.push((field.name().to_owned(), value)),
            Err(Outcome::Empty) => {}
            Err(Outcome::Invalid(reason)) => invalid.push(InvalidField {
                field: field.name().to_owned(),
                reason: reason.code().to_owned(),
            }),
            Err(Outcome::Blocked(reason)) => invalid.push(InvalidField {
                field: field.name().to_owned(),
                reason: reason.code().to_owned(),
            }),
            Err(Outcome::Valid) => unreachable!("normalize returns Ok for valid values"),
        }
    }
    (valid, invalid)
}

/// Refuses a contact with a NUL character (U+0000) in any of its text: PostgreSQL cannot
/// store one in a text column, so both backends refuse it, before anything is written.
pub(crate) fn reject_nul(input: &ContactInput) -> StoreResult<()> {
    let has_nul = |s: &str| s.contains('\0');
    let culprit = if has_nul(&input.external_id) {
        Some("external_id")
    } else {
        input
            .fields
            .iter()
            .find(|(name, value)| has_nul(name) || value.as_deref().is_some_and(has_nul))
            .map(|(name, _)| name.as_str())
            .or_else(|| {
                input
                    .tags
                    .iter()
                    .flatten()
                    .any(|t| has_nul(t))
                    .then_some("tags")
            })
            .or_else(|| {
                input
                    .custom_fields
                    .iter()
                    .flatten()
                    .any(|(k, v)| has_nul(k) || has_nul(v))
                    .then_some("custom_fields")
            })
    };
    match culprit {
        Some(name) => Err(StoreError::Invalid(format!(
            "`{}` contains the NUL character (U+0000), which cannot be stored",
            name.replace('\0', "\\0")
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(existing: Option<StoredContact>, keys: &[&str]) -> UpsertContext {
        UpsertContext {
            channel: ChannelInfo {
                organization_id: OrganizationId(5),
                channel_type: "email".into(),
                product: "caac".into(),
                region: "TW".into(),
                group: None,
                cross_product: false,
            },
            setting: UnifySetting {
                unique_fields: crate::model::default_unique_fields(),
                keys: keys.iter().map(|k| (*k).to_owned()).collect(),
                excluded: Vec::new(),
            },
            ids: IdBlock {
                next: 100,
                end: 108,
            },
            event_seq: 7,
            existing,
        }
    }

    fn input(fields: &[(&str, Option<&str>)], updated_at: Option<Millis>) -> ContactInput {
        ContactInput {
            channel_id: crate::model::ChannelId(3),
            external_id: "ext".into(),
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
                .collect(),
            updated_at,
            ..ContactInput::default()
        }
    }

    #[test]
    fn a_new_contact_takes_an_id_from_the_block_and_ties_by_its_normalised_keys() {
        let plan = plan_contact(
            HubId(1),
            &input(
                &[
                    ("display_email", Some(" Amy@X.io ")),
                    ("display_mobile", Some("not a phone")),
                ],
                None,
            ),
            context(None, &["display_email", "display_mobile"]),
            1_000,
        )
        .unwrap();
        assert!(plan.is_new);
        assert_eq!(plan.contact_id, ContactId(100));
        assert_eq!(plan.ids.next, 101);
        assert_eq!(plan.scope, "o5:caac");
        assert_eq!(
            plan.key_values,
            [("display_email".to_owned(), "amy@x.io".to_owned())]
        );
        assert_eq!(plan.value_locks.len(), 1);
        assert_eq!(plan.invalid.len(), 1, "the phone is kept as invalid");
        assert_eq!(plan.invalid[0].field, "display_mobile");
        assert_eq!(plan.created_at, 1_000);
        // The contact's row, then its identifiers.
        assert_eq!(plan.batch.statements.len(), 2);
        assert!(
            plan.batch.statements[0]
                .0
                .starts_with("INSERT INTO contacts")
        );
        assert!(
            plan.batch.statements[1]
                .0
                .starts_with("INSERT INTO identifiers")
        );
    }

    #[test]
    fn an_older_write_loses_field_by_field_and_a_none_clears() {
        let stored = StoredContact {
            id: ContactId(42),
            fields: r#"{"display_name":{"value":"Amy","updated_at":500},"gender":{"value":"f","updated_at":100}}"#
                .into(),
            tags: "[]".into(),
            custom_fields: "{}".into(),
            created_at: 50,
        };
        let plan = plan_contact(
            HubId(1),
            &input(
                &[("display_name", Some("Old")), ("gender", None)],
                Some(300),
            ),
            context(Some(stored), &[]),
            1_000,
        )
        .unwrap();
        assert!(!plan.is_new);
        assert_eq!(plan.contact_id, ContactId(42));
        assert_eq!(
            plan.fields["display_name"].value, "Amy",
            "the stored value is newer"
        );
        assert!(
            !plan.fields.contains_key("gender"),
            "cleared by a newer write"
        );
        assert_eq!(plan.created_at, 50);
        assert_eq!(plan.ids.next, 100, "an update takes no id");
        // The row's update, and its identifiers deleted (none to insert).
        assert_eq!(plan.batch.statements.len(), 2);
        assert!(
            plan.batch.statements[1]
                .0
                .starts_with("DELETE FROM identifiers")
        );
    }

    #[test]
    fn text_with_nul_is_refused_naming_where_it_is() {
        let mut bad = input(&[("display_name", Some("a\0b"))], None);
        let e = reject_nul(&bad).unwrap_err();
        assert!(e.to_string().contains("display_name"), "{e}");
        bad.fields.clear();
        bad.tags = Some(vec!["x\0".into()]);
        assert!(reject_nul(&bad).unwrap_err().to_string().contains("tags"));
    }
}
