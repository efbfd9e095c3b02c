//! What applying a unify setting does, decided without IO from one snapshot of a realm's
//! contacts.
//!
//! The contacts are resolved with the core on top of the stored partition (merges are
//! permanent): each resolved profile that holds more than one stored profile is a merge into
//! the oldest. The plan lists the rows an apply stages (profile changes, and contacts whose
//! scope changes) and the ledger rows its swap writes; `ops::apply` reads the snapshot, and
//! each adapter writes the plan (`sqlite::apply_write`, `postgres::apply`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;

use cdh_core::{
    IdentifierField, KeyGraph, Normalizer, Partition, Resolved, Slot, UnionFind, resolve_refusing,
};

use crate::error::{Resource, StoreError, StoreResult};
use crate::model::{
    ChannelId, ConnectionId, ContactId, OrganizationId, ProfileId, Realm, UnifySetting,
};
use crate::plan::apply_unique::{UniqueInput, UniqueWrites, unique_writes};
use crate::rules::{is_excluded, normalizer, parse_keys, parse_unique_fields, scope_name};

/// A channel with what decides its contacts' scope (`sql::text::CHANNEL_SCOPES_SQL`).
#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct ScopedChannelRow {
    pub id: ChannelId,
    pub organization_id: OrganizationId,
    pub channel_type: String,
    pub product: String,
    pub region: String,
    pub connection_id: Option<ConnectionId>,
}

impl ScopedChannelRow {
    /// The channel's scope under a setting.
    pub fn scope(&self, cross_product: bool, line_uid_is_key: bool) -> String {
        scope_name(
            self.organization_id,
            self.connection_id,
            cross_product,
            &self.product,
            self.channel_type == "line",
            line_uid_is_key,
        )
    }
}

/// A contact with its channel and stored scope, and its live profile (`APPLY_CONTACTS_SQL`,
/// read by position: it is a million rows).
#[derive(Clone, Debug)]
pub(crate) struct ContactProfileRow {
    pub contact_id: ContactId,
    pub channel_id: ChannelId,
    pub scope: String,
    /// `None` only in a corrupt store: a contact in no profile.
    pub profile_id: Option<ProfileId>,
    pub oldest_contact: Option<ContactId>,
}

/// A contact's values of the (up to three) unify keys, in the keys' order (`APPLY_KEYS_SQL`,
/// read by position).
#[derive(Clone, Debug)]
pub(crate) struct KeyValuesRow {
    pub contact_id: ContactId,
    pub values: [Option<String>; 3],
}

impl<'r, R: sqlx::Row> sqlx::FromRow<'r, R> for ContactProfileRow
where
    usize: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(Self {
            contact_id: ContactId(row.try_get(0)?),
            channel_id: ChannelId(row.try_get(1)?),
            scope: row.try_get(2)?,
            profile_id: row.try_get::<Option<i64>, _>(3)?.map(ProfileId),
            oldest_contact: row.try_get::<Option<i64>, _>(4)?.map(ContactId),
        })
    }
}

impl<'r, R: sqlx::Row> sqlx::FromRow<'r, R> for KeyValuesRow
where
    usize: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(Self {
            contact_id: ContactId(row.try_get(0)?),
            values: [row.try_get(1)?, row.try_get(2)?, row.try_get(3)?],
        })
    }
}

/// One snapshot of a realm's contacts, as the apply reads it.
#[derive(Debug)]
pub(crate) struct ApplyInput {
    /// The realm applied to.
    pub realm: Realm,
    /// The realms whose writes make the apply stale (`ops::realms::covered_realms`).
    pub covered: Vec<Realm>,
    /// Their written events when the snapshot was read (see `Dialect::REALM_WRITTEN`).
    pub marker: i64,
    pub cross_product: bool,
    pub channels: Vec<ScopedChannelRow>,
    /// Every contact, in id order.
    pub contacts: Vec<ContactProfileRow>,
    /// The contacts that hold a key value, in id order.
    pub key_values: Vec<KeyValuesRow>,
    /// The unique fields' values and what profiles hold.
    pub unique: UniqueInput,
}

/// A contact whose scope the apply changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StagedRow {
    pub contact_id: ContactId,
    pub scope: String,
}

/// A profile the apply changes: a survivor takes its new member count and oldest contact
/// (`merged_into` `None`), an absorbed profile its survivor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProfileChange {
    pub profile_id: ProfileId,
    pub member_count: Option<i64>,
    pub oldest_contact: Option<ContactId>,
    pub merged_into: Option<ProfileId>,
}

/// One merge the apply performs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PlannedMerge {
    pub survivor: ProfileId,
    /// Absorbed profiles grouped by the (field, value) that ties them in.
    pub by_value: BTreeMap<(String, String), Vec<ProfileId>>,
}

/// What the resolution decided.
#[derive(Debug)]
pub(crate) struct ApplyPlan {
    /// The realm applied to: its setting and its events get the swap's rows.
    pub realm: Realm,
    /// The cross-product switch the plan scoped contacts by: recorded with the setting, it is
    /// the switch upserts unify by from then on.
    pub cross_product: bool,
    /// The realms whose writes make the plan stale.
    pub covered: Vec<Realm>,
    /// The snapshot's marker over `covered`: the swap checks nothing was written since.
    pub marker: i64,
    /// Contacts whose scope changes, by contact id.
    pub staged: Vec<StagedRow>,
    /// Each merge's survivor, then the profiles it absorbs.
    pub profile_changes: Vec<ProfileChange>,
    pub merges: Vec<PlannedMerge>,
    /// Contacts that end in another profile than they were in.
    pub contacts_moved: usize,
    pub profiles_before: usize,
    pub profiles_after: usize,
    /// The setting's unique fields as stored, what profiles hold, the conflicts.
    pub unique_fields: String,
    pub unique: UniqueWrites,
}

/// A stored profile as the apply sees it.
#[derive(Clone, Copy)]
struct StoredProfile {
    id: ProfileId,
    oldest: ContactId,
}

/// The channels of a realm's organizations (`organizations`), each with the connection its
/// contacts unify in under the realm: the realm's own for a connection (the apply moves every
/// contact there), none for an organization on its own.
pub(crate) fn realm_channels(
    channels: Vec<ScopedChannelRow>,
    realm: Realm,
    organizations: &[OrganizationId],
) -> Vec<ScopedChannelRow> {
    let connection = match realm {
        Realm::Connection(id) => Some(id),
        Realm::Organization(_) => None,
    };
    channels
        .into_iter()
        .filter(|c| organizations.contains(&c.organization_id))
        .map(|c| ScopedChannelRow {
            connection_id: connection,
            ..c
        })
        .collect()
}

/// Keeps the contacts of `channels` and their key values (both lists in contact order).
pub(crate) fn retain_realm_contacts(
    contacts: &mut Vec<ContactProfileRow>,
    key_values: &mut Vec<KeyValuesRow>,
    channels: &[ScopedChannelRow],
) {
    let ids: HashSet<ChannelId> = channels.iter().map(|c| c.id).collect();
    contacts.retain(|c| ids.contains(&c.channel_id));
    let mut kept = contacts.iter().map(|c| c.contact_id).peekable();
    key_values.retain(|row| {
        while kept.next_if(|id| *id < row.contact_id).is_some() {}
        kept.peek() == Some(&row.contact_id)
    });
}

/// The plan for applying `setting` over the snapshot `input`.
pub(crate) fn plan_apply(setting: &UnifySetting, input: ApplyInput) -> StoreResult<ApplyPlan> {
    let keys = parse_keys(&setting.keys)?;
    let unique_fields = parse_unique_fields(&setting.unique_fields)?;
    let line_is_key = keys.contains(&IdentifierField::LineUid);
    // Per channel: its scope's name and number, and its region's normalizer.
    let mut channel_scope: HashMap<ChannelId, (String, u32, usize)> = HashMap::new();
    let mut scope_ids: HashMap<String, u32> = HashMap::new();
    let mut regions: Vec<(String, Normalizer)> = Vec::new();
    for channel in &input.channels {
        let scope = channel.scope(input.cross_product, line_is_key);
        let next_scope = scope_ids.len() as u32;
        let scope_id = *scope_ids.entry(scope.clone()).or_insert(next_scope);
        let region = match regions.iter().position(|(r, _)| *r == channel.region) {
            Some(i) => i,
            None => {
                regions.push((
                    channel.region.clone(),
                    normalizer(&channel.region, setting)?,
                ));
                regions.len() - 1
            }
        };
        channel_scope.insert(channel.id, (scope, scope_id, region));
    }
    let mut key_names: Vec<&str> = keys.iter().map(|k| k.name()).collect();
    // Up to three keys; the rest are padded with a name no field has.
    key_names.resize(3, "");

    let mut stored: Vec<StoredProfile> = Vec::with_capacity(input.contacts.len());
    for (i, row) in input.contacts.iter().enumerate() {
        let (Some(id), Some(oldest)) = (row.profile_id, row.oldest_contact) else {
            return Err(StoreError::Corrupt(format!(
                "contact {} has no profile",
                row.contact_id
            )));
        };
        if i > 0 && input.contacts[i - 1].contact_id == row.contact_id {
            return Err(StoreError::Corrupt(format!(
                "contact {} is in two live profiles",
                row.contact_id
            )));
        }
        stored.push(StoredProfile { id, oldest });
    }

    // The key graph over contacts in age order, on top of the stored partition.
    // Keys merge; unique fields refuse merges (a unique field that is no key is carried for
    // that alone, after the keys).
    let mut slots: Vec<Slot> = keys
        .iter()
        .map(|f| Slot {
            field: f.clone(),
            merges: true,
            unique: unique_fields.contains(f),
        })
        .collect();
    slots.extend(
        unique_fields
            .iter()
            .filter(|f| !keys.contains(f))
            .map(|f| Slot {
                field: f.clone(),
                merges: false,
                unique: true,
            }),
    );
    let unique_slot = |field: &str| {
        slots
            .iter()
            .position(|s| !s.merges && s.field.name() == field)
            .map(|s| s as u8)
    };
    let unique_slots: Vec<(String, u8)> = unique_fields
        .iter()
        .filter_map(|f| unique_slot(f.name()).map(|s| (f.name().to_owned(), s)))
        .collect();
    let mut unique_values = input.unique.values.iter().peekable();
    let mut graph = KeyGraph::with_capacity(
        slots,
        input.contacts.len(),
        input.key_values.len() * keys.len(),
    );
    let mut ids = input.key_values.iter().peekable();
    let mut staged = Vec::new();
    let mut values: Vec<(u8, &str)> = Vec::with_capacity(3);
    // Contacts come in runs of one channel: look the channel up once per run.
    let mut last: Option<(ChannelId, &(String, u32, usize))> = None;
    for contact in &input.contacts {
        let (scope, scope_id, region) = match last {
            Some((id, found)) if id == contact.channel_id => found,
            _ => {
                let found = channel_scope
                    .get(&contact.channel_id)
                    .ok_or(StoreError::NotFound(Resource::Channel))?;
                last = Some((contact.channel_id, found));
                found
            }
        };
        let normalizer = &regions[*region].1;
        values.clear();
        if let Some(row) = ids.next_if(|row| row.contact_id == contact.contact_id) {
            for (slot, value) in row.values.iter().enumerate() {
                if let Some(value) = value
                    && !is_excluded(normalizer, key_names[slot], value)
                {
                    values.push((slot as u8, value.as_str()));
                }
            }
        }
        while let Some((_, field, value)) =
            unique_values.next_if(|(c, _, _)| *c <= contact.contact_id)
        {
            if let Some((_, slot)) = unique_slots.iter().find(|(f, _)| f == field)
                && !is_excluded(normalizer, field, value)
            {
                values.push((*slot, value.as_str()));
            }
        }
        graph.add_contact(*scope_id, values.iter().copied());
        if *scope != contact.scope {
            staged.push(StagedRow {
                contact_id: contact.contact_id,
                scope: scope.clone(),
            });
        }
    }
    let mut prior_uf = UnionFind::new(input.contacts.len());
    let mut first_of_profile: HashMap<ProfileId, u32> = HashMap::new();
    for (i, p) in stored.iter().enumerate() {
        let first = *first_of_profile.entry(p.id).or_insert(i as u32);
        prior_uf.union(first, i as u32);
    }
    let prior = Partition::from_union_find(&mut prior_uf);
    let Resolved {
        partition: resolved,
        refusals,
    } = resolve_refusing(&graph, Some(&prior));

    // Group contacts of each resolved profile; more than one stored profile means a merge.
    let members = resolved.members();
    let mut merges = Vec::new();
    let mut profile_changes = Vec::new();
    let mut contacts_moved = 0;
    for p in 0..members.n_profiles() as u32 {
        let group = members.of(p);
        let mut profiles: Vec<StoredProfile> = group.iter().map(|&c| stored[c as usize]).collect();
        profiles.sort_by_key(|s| s.id);
        profiles.dedup_by_key(|s| s.id);
        if profiles.len() < 2 {
            continue;
        }
        let survivor = *profiles
            .iter()
            .min_by_key(|s| (s.oldest, s.id))
            .expect("two profiles");
        let by_value = tying_values(&graph, &stored, group, &profiles, survivor.id);
        contacts_moved += group
            .iter()
            .filter(|&&c| stored[c as usize].id != survivor.id)
            .count();
        profile_changes.push(ProfileChange {
            profile_id: survivor.id,
            member_count: Some(group.len() as i64),
            oldest_contact: Some(
                input.contacts[group[0] as usize]
                    .contact_id
                    .min(survivor.oldest),
            ),
            merged_into: None,
        });
        profile_changes.extend(profiles.iter().filter(|s| s.id != survivor.id).map(|s| {
            ProfileChange {
                profile_id: s.id,
                member_count: None,
                oldest_contact: None,
                merged_into: Some(survivor.id),
            }
        }));
        merges.push(PlannedMerge {
            survivor: survivor.id,
            by_value,
        });
    }
    // A resolved profile keeps the id of its oldest stored profile (a merge's survivor).
    let mut survivor_of: Vec<ProfileId> = Vec::with_capacity(members.n_profiles());
    for p in 0..members.n_profiles() as u32 {
        let group = members.of(p);
        let survivor = group
            .iter()
            .map(|&c| stored[c as usize])
            .min_by_key(|s| (s.oldest, s.id))
            .expect("a profile has a member");
        survivor_of.push(survivor.id);
    }
    let staged_scope: HashMap<ContactId, &str> = staged
        .iter()
        .map(|s| (s.contact_id, s.scope.as_str()))
        .collect();
    let unique = unique_writes(
        &graph,
        &resolved,
        &refusals,
        &input.unique,
        |c| survivor_of[resolved.profile_of(c) as usize],
        |c| input.contacts[c as usize].contact_id,
        |c| {
            let row = &input.contacts[c as usize];
            staged_scope
                .get(&row.contact_id)
                .map_or_else(|| row.scope.clone(), |s| (*s).to_owned())
        },
    )?;
    Ok(ApplyPlan {
        realm: input.realm,
        cross_product: input.cross_product,
        covered: input.covered,
        marker: input.marker,
        staged,
        profile_changes,
        merges,
        contacts_moved,
        profiles_before: prior.n_profiles(),
        profiles_after: resolved.n_profiles(),
        unique_fields: serde_json::to_string(&setting.unique_fields)?,
        unique,
    })
}

/// The absorbed profiles of one merge grouped by the value that ties each in: the first
/// value (in the graph's order) that a stored profile shares with another.
fn tying_values(
    graph: &KeyGraph,
    stored: &[StoredProfile],
    group: &[u32],
    profiles: &[StoredProfile],
    survivor: ProfileId,
) -> BTreeMap<(String, String), Vec<ProfileId>> {
    // (value, profile) pairs, sorted, so each value's holders are a run.
    let mut holders: Vec<(u32, ProfileId)> = group
        .iter()
        .flat_map(|&c| {
            let id = stored[c as usize].id;
            graph.values_of(c).iter().map(move |&v| (v, id))
        })
        .collect();
    holders.sort_unstable();
    holders.dedup();
    let mut shared: Vec<&[(u32, ProfileId)]> = holders
        .chunk_by(|a, b| a.0 == b.0)
        .filter(|run| run.len() > 1)
        .collect();
    shared.sort_by_key(|run| run[0].0);
    let mut by_value: BTreeMap<(String, String), Vec<ProfileId>> = BTreeMap::new();
    for s in profiles.iter().filter(|s| s.id != survivor) {
        let via = shared
            .iter()
            .find(|run| run.iter().any(|h| h.1 == s.id))
            .map(|run| {
                let (slot, value) = graph.value(run[0].0);
                (slot.field.name().to_owned(), value.to_owned())
            })
            .unwrap_or_default();
        by_value.entry(via).or_default().push(s.id);
    }
    by_value
}

impl ApplyPlan {
    /// The rows the apply stages: its contacts whose scope changes, then its profile changes.
    pub fn n_rows(&self) -> usize {
        self.staged.len() + self.profile_changes.len()
    }

    /// Rows `rows` of the staged rows (numbered as in `n_rows`): the contacts and the profile
    /// changes among them.
    pub fn rows(&self, rows: Range<usize>) -> (&[StagedRow], &[ProfileChange]) {
        let n = self.staged.len();
        let contacts = &self.staged[rows.start.min(n)..rows.end.min(n)];
        let profiles = &self.profile_changes[rows.start.max(n) - n..rows.end.max(n) - n];
        (contacts, profiles)
    }

    /// The staged columns the swap moves into their tables, as (table, column, the table's
    /// contact column): none when no contact changes scope, since each statement reads every
    /// staged row.
    pub fn staged_columns(&self) -> Vec<(&'static str, &'static str, &'static str)> {
        if self.staged.is_empty() {
            return Vec::new();
        }
        vec![
            ("contacts", "scope", "id"),
            ("identifiers", "scope", "contact_id"),
        ]
    }

    /// The merges' ledger rows (survivor, absorbed, field, value), one per merge and value
    /// that ties profiles in; each also makes one `profile.merged` event.
    pub fn merge_records(&self) -> impl Iterator<Item = (ProfileId, &Vec<ProfileId>, &str, &str)> {
        self.merges.iter().flat_map(|m| {
            m.by_value.iter().map(|((field, value), merged)| {
                (m.survivor, merged, field.as_str(), value.as_str())
            })
        })
    }

    /// The task's result once the swap is in.
    pub fn result(&self, version: i64) -> serde_json::Value {
        serde_json::json!({
            "version": version,
            "merges": self.merges.len(),
            "contacts_moved": self.contacts_moved,
            "profiles_before": self.profiles_before,
            "profiles_after": self.profiles_after,
            "conflicts": self.unique.conflicts.len(),
        })
    }
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;
