// The invariants checker, shared by both adapters: reads one snapshot of a hub and reports
// every rule the stored state breaks.

/// A profile row as the checker reads it: id, origin contact, oldest contact, member count,
/// merged into.
type CheckedProfile = (i64, i64, i64, i64, Option<i64>);

impl ThisStore {
    async fn check_impl(&self, hub: HubId) -> StoreResult<Vec<String>> {
        let mut tx = self.begin_snapshot().await?;
        let contacts: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT c.id, c.scope, o.default_region FROM contacts c \
             JOIN channels ch ON ch.hub_id = c.hub_id AND ch.id = c.channel_id \
             JOIN organizations o ON o.hub_id = ch.hub_id AND o.id = ch.organization_id \
             WHERE c.hub_id = $1 ORDER BY c.id",
        )
        .bind(hub)
        .fetch_all(&mut *tx)
        .await?;
        let memberships: Vec<(i64, i64)> =
            sqlx::query_as("SELECT contact_id, bucket_id FROM memberships WHERE hub_id = $1")
                .bind(hub)
                .fetch_all(&mut *tx)
                .await?;
        let profiles: Vec<CheckedProfile> = sqlx::query_as(
            "SELECT id, origin_contact, oldest_contact, member_count, merged_into \
             FROM profiles WHERE hub_id = $1",
        )
        .bind(hub)
        .fetch_all(&mut *tx)
        .await?;
        let identifiers: Vec<(i64, String, String, String)> = sqlx::query_as(
            "SELECT contact_id, field, value, scope FROM identifiers WHERE hub_id = $1 ORDER BY contact_id",
        )
        .bind(hub)
        .fetch_all(&mut *tx)
        .await?;
        let ledger: Vec<(i64, String)> = sqlx::query_as(
            "SELECT survivor_id, absorbed_ids FROM merge_ledger WHERE hub_id = $1 ORDER BY seq",
        )
        .bind(hub)
        .fetch_all(&mut *tx)
        .await?;
        let setting = load_setting(&mut tx, hub).await?;
        let history: Vec<(String,)> =
            sqlx::query_as("SELECT keys FROM unify_settings WHERE hub_id = $1")
                .bind(hub)
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;

        let mut problems = Vec::new();
        let contact_scope: HashMap<i64, &str> =
            contacts.iter().map(|c| (c.0, c.1.as_str())).collect();
        let profile_by_id: HashMap<i64, &CheckedProfile> =
            profiles.iter().map(|p| (p.0, p)).collect();

        // Every contact is in exactly one live profile: the one its bucket names, or the live
        // profile that one was merged into.
        let mut profile_of: HashMap<i64, i64> = HashMap::new();
        let mut members_of: HashMap<i64, Vec<i64>> = HashMap::new();
        for (contact, bucket) in &memberships {
            match profile_by_id.get(bucket) {
                Some(owner) => {
                    let live = owner.4.unwrap_or(owner.0);
                    profile_of.insert(*contact, live);
                    members_of.entry(live).or_default().push(*contact);
                }
                None => problems.push(format!(
                    "contact {contact}: bucket {bucket} names no profile"
                )),
            }
        }
        for (id, ..) in &contacts {
            if !profile_of.contains_key(id) {
                problems.push(format!("contact {id} is in no profile"));
            }
        }
        for (id, _, oldest, count, merged_into) in &profiles {
            match merged_into {
                None => {
                    let members = members_of.get(id).map_or(&[][..], Vec::as_slice);
                    if members.len() as i64 != *count {
                        problems.push(format!(
                            "profile {id}: member_count {count}, actual {}",
                            members.len()
                        ));
                    }
                    if members.iter().min() != Some(oldest) {
                        problems.push(format!(
                            "profile {id}: oldest_contact {oldest} is not its oldest member"
                        ));
                    }
                }
                Some(target) => {
                    if profile_by_id.get(target).is_none_or(|t| t.4.is_some()) {
                        problems.push(format!(
                            "profile {id} is merged into {target}, which is not live"
                        ));
                    }
                }
            }
        }
        for (contact, field, _, scope) in &identifiers {
            if contact_scope.get(contact) != Some(&scope.as_str()) {
                problems.push(format!(
                    "contact {contact}: {field} indexed in scope {scope}, not the contact's"
                ));
            }
        }

        // Every unify-key value maps to exactly one profile within a scope.
        let keys = parse_keys(&setting.setting.keys)?;
        let regions: HashMap<i64, &str> = contacts.iter().map(|c| (c.0, c.2.as_str())).collect();
        let mut normalizers: HashMap<&str, Normalizer> = HashMap::new();
        for region in regions.values() {
            if !normalizers.contains_key(region) {
                normalizers.insert(region, normalizer(region, &setting.setting)?);
            }
        }
        let excluded = |contact: &i64, field: &str, value: &str| {
            regions
                .get(contact)
                .is_some_and(|r| is_excluded(&normalizers[r], field, value))
        };
        let mut owners: HashMap<(&str, &str, &str), BTreeSet<i64>> = HashMap::new();
        for (contact, field, value, scope) in &identifiers {
            if keys.iter().any(|k| k.name() == field) && !excluded(contact, field, value)
                && let Some(p) = profile_of.get(contact) {
                    owners
                        .entry((scope.as_str(), field.as_str(), value.as_str()))
                        .or_default()
                        .insert(*p);
                }
        }
        for ((scope, field, value), ps) in &owners {
            if ps.len() > 1 {
                problems.push(format!(
                    "{field}={value} in scope {scope} is in profiles {ps:?}"
                ));
            }
        }

        // The ledger explains every merged-away profile.
        let mut explained: HashSet<i64> = HashSet::new();
        let mut ledger_pairs = Vec::new();
        for (survivor, absorbed) in &ledger {
            let absorbed: Vec<i64> = serde_json::from_str(absorbed)?;
            for a in absorbed {
                explained.insert(a);
                ledger_pairs.push((*survivor, a));
            }
        }
        for (id, .., merged_into) in &profiles {
            if merged_into.is_some() && !explained.contains(id) {
                problems.push(format!(
                    "profile {id} was merged away but no ledger row says so"
                ));
            }
        }

        // Membership equals the core's resolution from scratch over the stored identifiers,
        // on top of the merges the ledger records. Keys of earlier settings count too: the
        // joins they made are permanent.
        let mut fields: Vec<IdentifierField> = keys.clone();
        for (names,) in &history {
            let names: Vec<String> = serde_json::from_str(names)?;
            for f in parse_keys(&names)? {
                if !fields.contains(&f) {
                    fields.push(f);
                }
            }
        }
        let slots: Vec<Slot> = fields
            .iter()
            .map(|f| Slot {
                field: f.clone(),
                merges: true,
                unique: false,
            })
            .collect();
        let index_of: HashMap<i64, u32> = contacts
            .iter()
            .enumerate()
            .map(|(i, c)| (c.0, i as u32))
            .collect();
        let mut graph = KeyGraph::new(slots);
        let mut scope_ids: HashMap<&str, u32> = HashMap::new();
        let mut ids = identifiers.iter().peekable();
        for (contact, scope, _) in &contacts {
            let next = scope_ids.len() as u32;
            let scope_id = *scope_ids.entry(scope.as_str()).or_insert(next);
            let mut values = Vec::new();
            while let Some((c, field, value, _)) = ids.peek() {
                if c != contact {
                    break;
                }
                if let Some(slot) = fields.iter().position(|f| f.name() == field)
                    && !excluded(contact, field, value)
                {
                    values.push((slot as u8, value.as_str()));
                }
                ids.next();
            }
            graph.add_contact(scope_id, values);
        }
        let mut prior = UnionFind::new(contacts.len());
        let origin = |p: i64| {
            profile_by_id
                .get(&p)
                .and_then(|r| index_of.get(&r.1))
                .copied()
        };
        for (survivor, absorbed) in ledger_pairs {
            match (origin(survivor), origin(absorbed)) {
                (Some(a), Some(b)) => {
                    prior.union(a, b);
                }
                _ => problems.push(format!(
                    "ledger names unknown profiles {survivor} <- {absorbed}"
                )),
            }
        }
        let resolved = resolve(&graph, Some(&Partition::from_union_find(&mut prior)));
        let mut stored_of_resolved: HashMap<u32, i64> = HashMap::new();
        let mut resolved_of_stored: HashMap<i64, u32> = HashMap::new();
        for (i, (contact, ..)) in contacts.iter().enumerate() {
            let (Some(&stored), r) = (profile_of.get(contact), resolved.profile_of(i as u32))
            else {
                continue;
            };
            let a = *stored_of_resolved.entry(r).or_insert(stored);
            let b = *resolved_of_stored.entry(stored).or_insert(r);
            if a != stored || b != r {
                problems.push(format!(
                    "contact {contact}: stored profile {stored} differs from the core's resolution"
                ));
            }
        }
        Ok(problems)
    }
}
