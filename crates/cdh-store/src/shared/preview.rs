// Unification previews: what a setting would do, computed with the core's preview over the
// hub's stored identifiers on top of the current profiles (merges are permanent), stored
// with a fingerprint of the hub so that applying it later can tell it went stale.
// Included by both adapters.

/// How many contacts of a large profile a preview lists.
const LISTED_CONTACTS: usize = 20;

/// The state of the hub a preview depends on: every contact write appends an event, an apply
/// bumps the setting version, and scope changes show in cross-product and connections.
async fn hub_fingerprint(conn: &mut Conn, hub: HubId) -> StoreResult<String> {
    let row: Option<(i64, i64, i64, i64)> = sqlx::query_as(&format!(
        "SELECT {WRITTEN_EVENTS}, h.cross_product, \
         (SELECT COUNT(*) FROM connection_members cm WHERE cm.hub_id = h.hub_id), \
         (SELECT COALESCE(MAX(version), 0) FROM unify_settings u WHERE u.hub_id = h.hub_id) \
         FROM hubs h WHERE h.hub_id = $1"
    ))
    .bind(hub)
    .fetch_optional(&mut *conn)
    .await?;
    let (events, cross, connected, version) = row.ok_or(StoreError::NotFound("hub"))?;
    Ok(format!("e{events}.c{cross}.m{connected}.v{version}"))
}

/// Checks a setting's keys with stable codes: at most 3, no duplicates, each a built-in
/// identifier or a custom field some contact of the hub carries.
async fn check_preview_setting(
    conn: &mut Conn,
    hub: HubId,
    setting: &UnifySetting,
) -> StoreResult<()> {
    if setting.keys.len() > 3 {
        return Err(StoreError::rejected(
            "too_many_keys",
            format!("at most 3 unify keys, not {}", setting.keys.len()),
        ));
    }
    let mut seen = BTreeSet::new();
    for key in &setting.keys {
        if !seen.insert(key.trim()) {
            return Err(StoreError::rejected(
                "duplicate_key",
                format!("unify key `{key}` is listed twice"),
            ));
        }
    }
    let names = setting
        .keys
        .iter()
        .map(|k| (k, "keys"))
        .chain(setting.excluded.iter().map(|(f, _)| (f, "excluded_values")));
    for (name, place) in names {
        let name = name.trim();
        if IdentifierField::built_in(name).is_some()
            || (place == "excluded_values" && setting.keys.iter().any(|k| k.trim() == name))
        {
            continue;
        }
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        let carried = valid_name && {
            let pattern = format!("%\"{name}\":%");
            let found: Option<(i64,)> = sqlx::query_as(
                "SELECT id FROM contacts WHERE hub_id = $1 AND custom_fields LIKE $2 LIMIT 1",
            )
            .bind(hub)
            .bind(pattern)
            .fetch_optional(&mut *conn)
            .await?;
            found.is_some()
        };
        if !carried {
            let valid: Vec<&str> = cdh_core::field::BUILT_IN_FIELDS
                .iter()
                .map(|f| f.name())
                .collect();
            return Err(StoreError::rejected(
                "unknown_field",
                format!(
                    "unknown identifier field `{name}` in {place}; valid fields are {} or a custom field your contacts carry",
                    valid.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

async fn load_preview(conn: &mut Conn, hub: HubId, id: i64) -> StoreResult<StoredPreview> {
    let row: Option<(String, String, String, String, i64)> = sqlx::query_as(
        "SELECT keys, excluded, report, fingerprint, created_at FROM unify_previews \
         WHERE hub_id = $1 AND id = $2",
    )
    .bind(hub)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let (keys, excluded, report, fingerprint, created_at) =
        row.ok_or(StoreError::NotFound("preview"))?;
    Ok(StoredPreview {
        id,
        keys: serde_json::from_str(&keys)?,
        excluded: serde_json::from_str(&excluded)?,
        report: serde_json::from_str(&report)?,
        fingerprint,
        created_at,
    })
}

/// A core chain in stored ids and field names.
fn chain_links(chain: &cdh_core::Chain, graph: &KeyGraph, ids: &[i64]) -> Vec<ChainLink> {
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

impl ThisStore {
    async fn create_preview_impl(
        &self,
        hub: HubId,
        setting: &UnifySetting,
        suspicious_threshold: u32,
    ) -> StoreResult<StoredPreview> {
        let mut tx = self.begin_snapshot().await?;
        let fingerprint = hub_fingerprint(&mut tx, hub).await?;
        check_preview_setting(&mut tx, hub, setting).await?;
        let setting = UnifySetting {
            keys: setting.keys.iter().map(|k| k.trim().to_owned()).collect(),
            excluded: setting.excluded.clone(),
        };
        let keys = parse_keys(&setting.keys)
            .map_err(|e| StoreError::rejected("unknown_field", e.to_string()))?;
        let line_is_key = keys.contains(&IdentifierField::LineUid);
        let (cross,): (i64,) = sqlx::query_as("SELECT cross_product FROM hubs WHERE hub_id = $1")
            .bind(hub)
            .fetch_one(&mut *tx)
            .await?;
        let channels: Vec<(i64, i64, String, String, String, Option<i64>)> = sqlx::query_as(
            "SELECT ch.id, ch.organization_id, ch.channel_type, ch.product, o.default_region, cm.connection_id \
             FROM channels ch JOIN organizations o ON o.hub_id = ch.hub_id AND o.id = ch.organization_id \
             LEFT JOIN connection_members cm ON cm.hub_id = ch.hub_id AND cm.organization_id = ch.organization_id \
             WHERE ch.hub_id = $1",
        )
        .bind(hub)
        .fetch_all(&mut *tx)
        .await?;
        let contacts: Vec<(i64, i64)> =
            sqlx::query_as("SELECT id, channel_id FROM contacts WHERE hub_id = $1 ORDER BY id")
                .bind(hub)
                .fetch_all(&mut *tx)
                .await?;
        let identifiers: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT contact_id, field, value FROM identifiers WHERE hub_id = $1 ORDER BY contact_id",
        )
        .bind(hub)
        .fetch_all(&mut *tx)
        .await?;
        let members: Vec<(i64, i64)> = sqlx::query_as(&format!(
            "SELECT m.contact_id, p.id FROM memberships m {} WHERE m.hub_id = $1",
            to_live_profile()
        ))
        .bind(hub)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;

        let mut channel_scope: HashMap<i64, (String, String)> = HashMap::new();
        let mut normalizers: HashMap<String, Normalizer> = HashMap::new();
        for (id, org, kind, product, region, group) in channels {
            let scope = scope_name(
                org,
                group,
                cross != 0,
                &product,
                kind == "line",
                line_is_key,
            );
            if !normalizers.contains_key(&region) {
                normalizers.insert(region.clone(), normalizer(&region, &setting)?);
            }
            channel_scope.insert(id, (scope, region));
        }
        // line_uid is unique per person: a profile with two is reported as a conflict, and
        // it is carried (without merging) when it is not a key.
        let mut slots: Vec<Slot> = keys
            .iter()
            .map(|f| Slot {
                field: f.clone(),
                merges: true,
                unique: *f == IdentifierField::LineUid,
            })
            .collect();
        if !line_is_key {
            slots.push(Slot {
                field: IdentifierField::LineUid,
                merges: false,
                unique: true,
            });
        }
        let slot_of = |field: &str| slots.iter().position(|s| s.field.name() == field);
        let slot_index: Vec<(String, u8)> = slots
            .iter()
            .map(|s| {
                (
                    s.field.name().to_owned(),
                    slot_of(s.field.name()).unwrap_or(0) as u8,
                )
            })
            .collect();
        let mut graph = KeyGraph::with_capacity(slots.clone(), contacts.len(), identifiers.len());
        let mut scope_ids: HashMap<String, u32> = HashMap::new();
        let mut ids = identifiers.iter().peekable();
        let contact_ids: Vec<i64> = contacts.iter().map(|c| c.0).collect();
        for (contact, channel) in &contacts {
            let (scope, region) = channel_scope
                .get(channel)
                .ok_or(StoreError::NotFound("channel"))?;
            let next_scope = scope_ids.len() as u32;
            let scope_id = *scope_ids.entry(scope.clone()).or_insert(next_scope);
            let normalizer = &normalizers[region];
            let mut values: Vec<(u8, &str)> = Vec::new();
            while let Some((c, field, value)) = ids.peek() {
                if c != contact {
                    break;
                }
                if let Some((_, slot)) = slot_index.iter().find(|(f, _)| f == field)
                    && !is_excluded(normalizer, field, value)
                {
                    values.push((*slot, value.as_str()));
                }
                ids.next();
            }
            graph.add_contact(scope_id, values);
        }
        let index_of: HashMap<i64, u32> = contact_ids
            .iter()
            .enumerate()
            .map(|(i, c)| (*c, i as u32))
            .collect();
        let mut prior_uf = UnionFind::new(contacts.len());
        let mut first_of_profile: HashMap<i64, u32> = HashMap::new();
        for (contact, profile) in members {
            if let Some(&i) = index_of.get(&contact) {
                let first = *first_of_profile.entry(profile).or_insert(i);
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
        let report = PreviewReport {
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
                    crate::model::SuspiciousValue {
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
            conflicts: preview
                .conflicts
                .iter()
                .map(|c| PreviewConflict {
                    field: slots[c.slot as usize].field.name().to_owned(),
                    values: c
                        .values
                        .iter()
                        .map(|&v| graph.value(v).1.to_owned())
                        .collect(),
                    contact_ids: c
                        .chain
                        .contacts()
                        .iter()
                        .map(|&i| contact_ids[i as usize])
                        .collect(),
                    chain: chain_links(&c.chain, &graph, &contact_ids),
                })
                .collect(),
            notes: preview_notes(cross != 0, line_is_key, &preview),
        };

        let mut tx = self.begin_write().await?;
        let id = next_id(&mut tx, hub).await?;
        let created_at = now_ms();
        sqlx::query(
            "INSERT INTO unify_previews (hub_id, id, keys, excluded, report, fingerprint, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(hub)
        .bind(id)
        .bind(serde_json::to_string(&setting.keys)?)
        .bind(serde_json::to_string(&setting.excluded)?)
        .bind(serde_json::to_string(&report)?)
        .bind(fingerprint.clone())
        .bind(created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(StoredPreview {
            id,
            keys: setting.keys,
            excluded: setting.excluded,
            report,
            fingerprint,
            created_at,
        })
    }

    async fn apply_preview_impl(&self, hub: HubId, id: i64, actor: &str) -> StoreResult<TaskId> {
        let mut tx = self.begin_write().await?;
        let preview = load_preview(&mut tx, hub, id).await?;
        let now = hub_fingerprint(&mut tx, hub).await?;
        tx.commit().await?;
        if now != preview.fingerprint {
            return Err(StoreError::PreviewStale { preview_id: id });
        }
        let setting = UnifySetting {
            keys: preview.keys,
            excluded: preview.excluded,
        };
        self.start_apply_impl(hub, &setting, actor).await
    }
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
    if preview.n_conflicts > preview.conflicts.len() {
        notes.push(format!(
            "{} profiles would hold conflicting values in all; some are listed",
            preview.n_conflicts
        ));
    }
    notes
}
