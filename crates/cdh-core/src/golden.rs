//! The golden record: one merged view of a profile's contacts.
//!
//! Survivorship, per field: a non-empty value beats an empty one; among non-empty values the
//! latest `updated_at` wins; equal times go to the greater contact id (then the greater value),
//! so the result never depends on the order the members are given in.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::field::IdentifierField;
use crate::unify_keys::UnifyKeys;

/// Milliseconds since the Unix epoch, UTC.
pub type Timestamp = i64;

/// One candidate value of a field, as survivorship sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// The value (empty means "no value").
    pub value: &'a str,
    /// When the value was last updated on its contact.
    pub updated_at: Timestamp,
    /// The contact it comes from.
    pub contact_id: &'a str,
}

/// Orders candidates by the survivorship rule: the greatest one wins.
pub fn survivorship(a: &Candidate<'_>, b: &Candidate<'_>) -> Ordering {
    (!a.value.is_empty())
        .cmp(&!b.value.is_empty())
        .then(a.updated_at.cmp(&b.updated_at))
        .then_with(|| a.contact_id.cmp(b.contact_id))
        .then_with(|| a.value.cmp(b.value))
}

/// Whether `candidate` should replace `current` as a field's merged value.
pub fn beats(candidate: &Candidate<'_>, current: &Candidate<'_>) -> bool {
    survivorship(candidate, current) == Ordering::Greater
}

/// What kind of timeline entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimelineKind {
    /// A note an agent wrote.
    Note,
    /// A message in a conversation.
    Conversation,
}

/// A note or a conversation record of one contact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineItem {
    /// Note or conversation.
    pub kind: TimelineKind,
    /// The contact it belongs to (notes stay attached to their channel contact).
    pub contact_id: String,
    /// The text.
    pub text: String,
    /// When it was written or sent.
    pub at: Timestamp,
}

/// An identifier value of one contact, as given and (when valid) normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentifierValue {
    /// The field.
    pub field: IdentifierField,
    /// The canonical value, or the raw value when it is invalid.
    pub value: String,
    /// Whether the value is valid (invalid values are kept but never merge).
    pub valid: bool,
}

/// One contact as the golden record needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberRecord {
    /// The contact's id.
    pub contact_id: String,
    /// Profile fields (name, gender, birthday, custom fields...) with when each was updated.
    pub fields: BTreeMap<String, (String, Timestamp)>,
    /// Tags.
    pub tags: Vec<String>,
    /// Identifier values.
    pub identifiers: Vec<IdentifierValue>,
    /// Notes and conversation records.
    pub timeline: Vec<TimelineItem>,
}

/// A merged field value and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergedField {
    /// The winning value.
    pub value: String,
    /// When it was updated.
    pub updated_at: Timestamp,
    /// The contact it came from.
    pub source: String,
}

/// A distinct identifier value of the profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergedIdentifier {
    /// The field.
    pub field: IdentifierField,
    /// The value.
    pub value: String,
    /// Whether it is valid.
    pub valid: bool,
    /// Whether its field is a unify key (shown with a key symbol).
    pub is_unify_key: bool,
    /// The contacts that carry it, sorted.
    pub sources: Vec<String>,
}

/// A profile's merged view.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GoldenRecord {
    /// Merged fields by name; fields every member left empty are absent.
    pub fields: BTreeMap<String, MergedField>,
    /// The union of tags, sorted, without duplicates.
    pub tags: Vec<String>,
    /// Every distinct identifier value of every member, sorted by field then value.
    pub identifiers: Vec<MergedIdentifier>,
    /// Notes and conversations of all members, newest first.
    pub timeline: Vec<TimelineItem>,
}

/// Merges the members of one profile.
pub fn golden_record(members: &[&MemberRecord], keys: Option<&UnifyKeys>) -> GoldenRecord {
    let mut record = GoldenRecord::default();
    for member in members {
        for (name, (value, updated_at)) in &member.fields {
            let candidate = Candidate {
                value,
                updated_at: *updated_at,
                contact_id: &member.contact_id,
            };
            let replace = match record.fields.get(name) {
                None => !value.is_empty(),
                Some(current) => beats(
                    &candidate,
                    &Candidate {
                        value: &current.value,
                        updated_at: current.updated_at,
                        contact_id: &current.source,
                    },
                ),
            };
            if replace {
                record.fields.insert(
                    name.clone(),
                    MergedField {
                        value: value.clone(),
                        updated_at: *updated_at,
                        source: member.contact_id.clone(),
                    },
                );
            }
        }
        record.tags.extend(member.tags.iter().cloned());
        record.timeline.extend(member.timeline.iter().cloned());
    }
    record.tags.sort_unstable();
    record.tags.dedup();
    record.timeline.sort_by(|a, b| {
        b.at.cmp(&a.at)
            .then_with(|| a.contact_id.cmp(&b.contact_id))
            .then(a.kind.cmp(&b.kind))
            .then_with(|| a.text.cmp(&b.text))
    });
    record.identifiers = merge_identifiers(members, keys);
    record
}

fn merge_identifiers(members: &[&MemberRecord], keys: Option<&UnifyKeys>) -> Vec<MergedIdentifier> {
    let mut by_value: BTreeMap<(&IdentifierField, &str, bool), Vec<String>> = BTreeMap::new();
    for member in members {
        for id in &member.identifiers {
            by_value
                .entry((&id.field, &id.value, id.valid))
                .or_default()
                .push(member.contact_id.clone());
        }
    }
    by_value
        .into_iter()
        .map(|((field, value, valid), mut sources)| {
            sources.sort_unstable();
            sources.dedup();
            MergedIdentifier {
                field: field.clone(),
                value: value.to_owned(),
                valid,
                is_unify_key: keys.is_some_and(|k| k.contains(field)),
                sources,
            }
        })
        .collect()
}

#[cfg(test)]
#[path = "golden_tests.rs"]
mod tests;
