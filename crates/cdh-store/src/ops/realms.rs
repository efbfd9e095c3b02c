//! Realms: which organizations share a unify setting (see [`Realm`]). Every operation on
//! settings, previews, applies, tasks and events starts from the caller's organization and
//! finds its realm here, so none can reach another organization's by naming it.

use crate::error::{Resource, StoreError, StoreResult};
use crate::model::{Connection, ConnectionId, HubId, OrganizationId, Realm, RealmSettings};
use crate::sql::{Adapter, Dialect, fetch_one, query};

/// A partner connection as stored (its organizations are rows of `connection_members`).
#[derive(sqlx::FromRow)]
struct ConnectionRow {
    id: ConnectionId,
    disclosure_url: String,
    actor: String,
    created_at: i64,
    unified_at: Option<i64>,
}

/// The organization's realm, its organizations, cross-product switch and connection;
/// `NotFound(Organization)` when the hub has no such organization.
pub(crate) async fn load_realm<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    org: OrganizationId,
) -> StoreResult<RealmSettings> {
    let (_, connection): (i64, Option<ConnectionId>) = fetch_one::<B, _>(
        conn,
        query(
            "SELECT o.id, cm.connection_id FROM organizations o \
             LEFT JOIN connection_members cm \
               ON cm.hub_id = o.hub_id AND cm.organization_id = o.id \
             WHERE o.hub_id = $1 AND o.id = $2",
        )
        .bind(hub)
        .bind(org),
        Resource::Organization,
    )
    .await?;
    let connection = match connection {
        Some(id) => Some(load_connection::<B>(conn, hub, id).await?),
        None => None,
    };
    let realm = connection
        .as_ref()
        .map_or(Realm::Organization(org), |c| Realm::Connection(c.id));
    let (cross_product, cross_product_applied) = switches::<B>(conn, hub, realm).await?;
    Ok(RealmSettings {
        realm,
        organizations: connection
            .as_ref()
            .map_or_else(|| vec![org], |c| c.organization_ids.clone()),
        cross_product,
        cross_product_applied,
        connection,
    })
}

/// The realm's cross-product switch as last asked for, and as its last apply applied it (the
/// one its contacts' scopes follow, `sql::text::upsert_context_sql`); each off when never
/// set. One round trip: either row may be missing.
async fn switches<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    realm: Realm,
) -> StoreResult<(bool, bool)> {
    let (asked, applied): (Option<i64>, Option<i64>) = fetch_one::<B, _>(
        conn,
        query(
            "SELECT (SELECT r.cross_product FROM realms r WHERE r.hub_id = $1 AND r.realm = $2), \
             (SELECT s.cross_product FROM unify_settings s WHERE s.hub_id = $1 AND s.realm = $2 \
              ORDER BY s.version DESC LIMIT 1)",
        )
        .bind(hub)
        .bind(realm.key()),
        Resource::Hub,
    )
    .await?;
    Ok((
        asked.is_some_and(|on| on != 0),
        applied.is_some_and(|on| on != 0),
    ))
}

/// A partner connection with its organizations.
pub(crate) async fn load_connection<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    id: ConnectionId,
) -> StoreResult<Connection> {
    let row: ConnectionRow = fetch_one::<B, _>(
        conn,
        query(
            "SELECT id, disclosure_url, actor, created_at, unified_at FROM partner_connections \
             WHERE hub_id = $1 AND id = $2",
        )
        .bind(hub)
        .bind(id),
        Resource::Connection,
    )
    .await?;
    let members: Vec<(OrganizationId,)> = B::fetch_all(
        conn,
        query(
            "SELECT organization_id FROM connection_members \
             WHERE hub_id = $1 AND connection_id = $2 ORDER BY organization_id",
        )
        .bind(hub)
        .bind(id),
    )
    .await?;
    Ok(Connection {
        id: row.id,
        organization_ids: members.into_iter().map(|(org,)| org).collect(),
        disclosure_url: row.disclosure_url,
        actor: row.actor,
        at: row.created_at,
        unified_at: row.unified_at,
    })
}

/// The realms whose contacts an apply or a preview of `settings.realm` reads: the realm, and
/// for a connection its organizations' own realms (their contacts unify there until the
/// connection's first apply moves them).
pub(crate) fn covered_realms(settings: &RealmSettings) -> Vec<Realm> {
    let mut realms = vec![settings.realm];
    if matches!(settings.realm, Realm::Connection(_)) {
        realms.extend(
            settings
                .organizations
                .iter()
                .map(|org| Realm::Organization(*org)),
        );
    }
    realms
}

/// An expression over the hub `$1` that every contact write in `realms` changes and nothing
/// else does (`Dialect::REALM_WRITTEN` summed over the realms).
pub(crate) fn realm_written_sql<D: Dialect>(realms: &[Realm]) -> String {
    let terms: Vec<String> = realms
        .iter()
        .map(|realm| D::REALM_WRITTEN.replace("{realm}", &realm.key()))
        .collect();
    format!("({})", terms.join(" + "))
}

/// The value of [`realm_written_sql`] now.
pub(crate) async fn realm_written<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    realms: &[Realm],
) -> StoreResult<i64> {
    let (written,): (i64,) = fetch_one::<B, _>(
        conn,
        query(format!(
            "SELECT CAST({} AS BIGINT)",
            realm_written_sql::<B>(realms)
        ))
        .bind(hub),
        Resource::Hub,
    )
    .await?;
    Ok(written)
}

/// Creates a realm's row (its cross-product switch and event count) if it has none.
pub(crate) async fn ensure_realm_row<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    realm: Realm,
    cross_product: bool,
) -> StoreResult<()> {
    let found: Option<(i64,)> = B::fetch_optional(
        conn,
        query("SELECT cross_product FROM realms WHERE hub_id = $1 AND realm = $2")
            .bind(hub)
            .bind(realm.key()),
    )
    .await?;
    if found.is_none() {
        B::execute(
            conn,
            query(
                "INSERT INTO realms (hub_id, realm, cross_product, numbered_events) \
                 VALUES ($1, $2, $3, 0)",
            )
            .bind(hub)
            .bind(realm.key())
            .bind(i64::from(cross_product)),
        )
        .await?;
    }
    Ok(())
}

/// `Conflict` naming the organizations of `orgs` already in a connection.
pub(crate) async fn ensure_unconnected<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    orgs: &[OrganizationId],
) -> StoreResult<()> {
    let mut connected = Vec::new();
    for org in orgs {
        let found: Option<(ConnectionId,)> = B::fetch_optional(
            conn,
            query(
                "SELECT connection_id FROM connection_members \
                 WHERE hub_id = $1 AND organization_id = $2",
            )
            .bind(hub)
            .bind(*org),
        )
        .await?;
        if found.is_some() {
            connected.push(org.to_string());
        }
    }
    if connected.is_empty() {
        Ok(())
    } else {
        Err(StoreError::rejected(
            crate::error::Rejection::AlreadyConnected,
            format!(
                "organization {} is already in a partner connection",
                connected.join(", ")
            ),
        ))
    }
}

/// A realm as an apply queued for it finds it: its organizations and cross-product switch.
/// An organization's realm whose organization has since been unified with a connection is
/// `Invalid`: its contacts unify in the connection's scopes now, under its setting.
pub(crate) async fn settings_of_realm<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    realm: Realm,
) -> StoreResult<RealmSettings> {
    let (cross_product, cross_product_applied) = switches::<B>(conn, hub, realm).await?;
    match realm {
        Realm::Connection(id) => {
            let connection = load_connection::<B>(conn, hub, id).await?;
            Ok(RealmSettings {
                realm,
                organizations: connection.organization_ids.clone(),
                cross_product,
                cross_product_applied,
                connection: Some(connection),
            })
        }
        Realm::Organization(org) => {
            let now = load_realm::<B>(conn, hub, org).await?;
            if now
                .connection
                .as_ref()
                .is_some_and(|c| c.unified_at.is_some())
            {
                return Err(StoreError::Invalid(format!(
                    "organization {org} now unifies with its partner connection; apply the \
                     connection's setting instead"
                )));
            }
            Ok(RealmSettings {
                realm,
                organizations: vec![org],
                cross_product,
                cross_product_applied,
                connection: None,
            })
        }
    }
}
