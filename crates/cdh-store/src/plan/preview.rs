//! What a unify setting would do, computed without IO from one snapshot of the hub: the
//! core's preview over the stored identifiers, on top of the current profiles (merges are
//! permanent), turned into a report in stored ids and field names.

use std::collections::HashMap;

use cdh_core::{IdentifierField, KeyGraph, Normalizer, Partition, Slot, UnionFind};

use crate::error::{Resource, StoreError, StoreResult};
use crate::model::{
    ChainLink, ChannelId, ContactId, PreviewConflict, PreviewProfile, PreviewReport, PreviewSample,
    ProfileId, SuspiciousValue, UnifySetting,
};
use crate::plan::apply::ScopedChannelRow;
use crate::plan::conflicts::reason_code;
use crate::rules::{is_excluded, normalizer, parse_keys, parse_unique_fields};

/// How many contacts of a large profile a preview lists.
const LISTED_CONTACTS: usize = 20;

/// One snapshot of the hub, as a preview reads it.
#[derive(Debug)]
pub(crate) struct PreviewInput {
    pub cross_product: bool,
    pub channels: Vec<ScopedChannelRow>,
    /// `(contact, channel)`, in contact order.
    pub contacts: Vec<(ContactId, ChannelId)>,
    /// `(contact, field, value)`, in contact order.
    pub identifiers: Vec<(ContactId, String, String)>,
    /// `(contact, live profile)`.
    pub members: Vec<(ContactId, ProfileId)>,
}

/// The report of applying `setting` (its keys already checked) over `input`; values shared
/// by more than `suspicious_threshold` contacts are flagged.
pub(crate) fn preview_report(
    setting: &UnifySetting,
    suspicious_threshold: u32,
    input: PreviewInput,
) -> StoreResult<PreviewReport> {
    let keys = parse_keys(&setting.keys)
        .map_err(|e| StoreError::rejected(crate::error::Rejection::UnknownField, e.to_string()))?;
    let line_is_key = keys.contains(&IdentifierField::LineUid);
    let mut channel_scope: HashMap<ChannelId, (String, String)> = HashMap::new();
    let mut normalizers: HashMap<String, Normalizer> = HashMap::new();
    for channel in &input.channels {
        if !normalizers.contains_key(&channel.region) {
            normalizers.insert(
                channel.region.clone(),
                normalizer(&channel.region, setting)?,
            );
        }
        channel_scope.insert(
            channel.id,
            (
                channel.scope(input.cross_product, line_is_key),
                channel.region.clone(),
            ),
        );
    }
    // Keys merge; each unique field is a slot of its own that refuses merges (a key that is
    // also unique has both).
    let unique_fields = parse_unique_fields(&setting.unique_fields)?;
    let slots: Vec<Slot> = keys
        .iter()
        .map(|f| Slot {
            field: f.clone(),
            merges: true,
            unique: false,
        })
        .chain(unique_fields.iter().map(|f| Slot {
            field: f.clone(),
            merges: false,
            unique: true,
        }))
        .collect();
    let slot_index: Vec<(String, u8)> = slots
        .iter()
        .enumerate()
        .map(|(i, s)| (s.field.name().to_owned(), i as u8))
        .collect();
    let mut graph =
        KeyGraph::with_capacity(slots.clone(), input.contacts.len(), input.identifiers.len());
    let mut scope_ids: HashMap<String, u32> = HashMap::new();
    let mut ids = input.identifiers.iter().peekable();
    let contact_ids: Vec<ContactId> = input.contacts.iter().map(|c| c.0).collect();
    for (contact, channel) in &input.contacts {
        let (scope, region) = channel_scope
            .get(channel)
            .ok_or(StoreError::NotFound(Resource::Channel))?;
        let next_scope = scope_ids.len() as u32;
        let scope_id = *scope_ids.entry(scope.clone()).or_insert(next_scope);
        let normalizer = &normalizers[region];
        let mut values: Vec<(u8, &str)> = Vec::new();
        while let Some((c, field, value)) = ids.peek() {
            if c != contact {
                break;
            }
            if !is_excluded(normalizer, field, value) {
                for (_, slot) in slot_index.iter().filter(|(f, _)| f == field) {
                    values.push((*slot, value.as_str()));
                }
            }
            ids.next();
        }
        graph.add_contact(scope_id, values);
    }
    let index_of: HashMap<ContactId, u32> = contact_ids
        .iter()
        .enumerate()
        .map(|(i, c)| (*c, i as u32))
        .collect();
    let mut prior_uf = UnionFind::new(input.contacts.len());
    let mut first_of_profile: HashMap<ProfileId, u32> = HashMap::new();
    for (contact, profile) in &input.members {
        if let Some(&i) = index_of.get(contact) {
            let first = *first_of_profile.entry(*profile).or_insert(i);
            prior_uf.union(first, i);
        }
    }
    let prior = Partition::from_union_find(&mut prior_uf);
    let options = cdh_core::PreviewOptions {
        suspicious_threshold,
        ..cdh_core::PreviewOptions::default()
    };
    let preview = cdh_core::preview(&graph, Some(&prior), &options);
    let after_members = preview.after.members();
    Ok(PreviewReport {
        profiles_before: preview.profiles_before as u64,
        profiles_after: preview.profiles_after as u64,
        contacts_merged: preview.contacts_merged as u64,
        largest_profiles: preview
            .largest_profiles
            .iter()
            .map(|p| PreviewProfile {
                n_contacts: p.n_contacts,
                contact_ids: after_members
                    .of(preview.after.profile_of(p.root))
                    .iter()
                    .take(LISTED_CONTACTS)
                    .map(|&c| contact_ids[c as usize])
                    .collect(),
            })
            .collect(),
        suspicious_values: preview
            .suspicious_values
            .iter()
            .map(|s| {
                let (slot, value) = graph.value(s.value);
                SuspiciousValue {
                    field: slot.field.name().to_owned(),
                    value: value.to_owned(),
                    n_contacts: s.n_contacts,
                }
            })
            .collect(),
        samples: preview
            .samples
            .iter()
            .map(|s| PreviewSample {
                contact_ids: s
                    .contacts
                    .iter()
                    .map(|&c| contact_ids[c as usize])
                    .collect(),
                chain: chain_links(&s.chain, &graph, &contact_ids),
            })
            .collect(),
        n_conflicts: preview.n_refused as u64,
        conflicts: preview
            .refused
            .iter()
            .map(|r| {
                let clash = r.refusal.clash;
                let field = slots[clash.slot as usize].field.name();
                PreviewConflict {
                    reason: reason_code(field),
                    field: field.to_owned(),
                    values: vec![
                        graph.value(clash.ours).1.to_owned(),
                        graph.value(clash.theirs).1.to_owned(),
                    ],
                    contact_ids: r
                        .chain
                        .contacts()
                        .iter()
                        .map(|&i| contact_ids[i as usize])
                        .collect(),
                    chain: chain_links(&r.chain, &graph, &contact_ids),
                }
            })
            .collect(),
        notes: preview_notes(input.cross_product, line_is_key, &preview),
    })
}

/// A core chain in stored ids and field names.
fn chain_links(chain: &cdh_core::Chain, graph: &KeyGraph, ids: &[ContactId]) -> Vec<ChainLink> {
    let mut links = vec![ChainLink {
        contact_id: ids[chain.start as usize],
        tie: "start".to_owned(),
        field: None,
        value: None,
    }];
    for &(tie, contact) in &chain.hops {
        let (tie, field, value) = match tie {
            cdh_core::Tie::Value(v) => {
                let (slot, value) = graph.value(v);
                (
                    "value",
                    Some(slot.field.name().to_owned()),
                    Some(value.to_owned()),
                )
            }
            cdh_core::Tie::Prior => ("profile", None, None),
        };
        links.push(ChainLink {
            contact_id: ids[contact as usize],
            tie: tie.to_owned(),
            field,
            value,
        });
    }
    links
}

/// Remarks a preview carries for the admin.
fn preview_notes(
    cross_product: bool,
    line_is_key: bool,
    preview: &cdh_core::Preview,
) -> Vec<String> {
    let mut notes = Vec::new();
    if cross_product && !line_is_key {
        notes.push(
            "cross-product is on but line_uid is not a unify key: LINE contacts unify only \
             within their product"
                .to_owned(),
        );
    }
    if preview.n_suspicious_values > preview.suspicious_values.len() {
        notes.push(format!(
            "{} suspicious values in all; the most shared are listed",
            preview.n_suspicious_values
        ));
    }
    if preview.n_refused > preview.refused.len() {
        notes.push(format!(
            "{} merges refused in all (unique fields); some are listed",
            preview.n_refused
        ));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(id: i64, channel_type: &str) -> ScopedChannelRow {
        ScopedChannelRow {
            id: ChannelId(id),
            organization_id: crate::model::OrganizationId(1),
            channel_type: channel_type.into(),
            product: "caac".into(),
            region: "TW".into(),
            connection_id: None,
        }
    }

    #[test]
    fn a_shared_phone_merges_and_two_line_uids_do_not_refuse_it() {
        let uid = |n: u8| format!("U{}", format!("{n:x}").repeat(32));
        let input = PreviewInput {
            cross_product: false,
            channels: vec![channel(1, "line"), channel(2, "sms")],
            contacts: [(10, 1), (11, 1), (12, 2)]
                .map(|(c, ch)| (ContactId(c), ChannelId(ch)))
                .to_vec(),
            identifiers: [
                (10, "display_mobile", "+886912345678".to_owned()),
                (10, "line_uid", uid(1)),
                (11, "display_mobile", "+886912345678".to_owned()),
                (11, "line_uid", uid(2)),
                (12, "display_mobile", "+886987654321".to_owned()),
            ]
            .map(|(c, f, v)| (ContactId(c), f.to_owned(), v))
            .to_vec(),
            members: [(10, 100), (11, 101), (12, 102)]
                .map(|(c, p)| (ContactId(c), ProfileId(p)))
                .to_vec(),
        };
        let setting = UnifySetting {
            unique_fields: crate::model::default_unique_fields(),
            keys: vec!["display_mobile".into()],
            excluded: Vec::new(),
        };
        let report = preview_report(&setting, 20, input).unwrap();
        assert_eq!((report.profiles_before, report.profiles_after), (3, 2));
        assert_eq!(report.contacts_merged, 2);
        assert_eq!(
            report.largest_profiles[0].contact_ids,
            [ContactId(10), ContactId(11)]
        );
        assert!(report.conflicts.is_empty(), "line_uid is not unique");
        let sample = &report.samples[0];
        assert_eq!(sample.chain[0].tie, "start");
        assert_eq!(sample.chain[1].field.as_deref(), Some("display_mobile"));
        assert!(report.notes.is_empty());
    }
}
