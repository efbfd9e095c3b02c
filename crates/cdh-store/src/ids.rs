//! Ids that cannot be mixed up: each names one kind of stored thing, and a function that takes
//! a `ContactId` refuses a `ProfileId`. Every id is a 64-bit integer in the database and a
//! number in JSON; `Display` writes the number.

use serde::{Deserialize, Serialize};

/// Defines an id type: a transparent newtype over `i64`, stored and serialised as the number.
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize,
            Deserialize, sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<i64> for $name {
            fn from(id: i64) -> Self {
                Self(id)
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                text.parse().map(Self)
            }
        }

        impl From<$name> for crate::sql::Arg {
            fn from(id: $name) -> Self {
                Self::Int(id.0)
            }
        }

        impl rusqlite::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(rusqlite::types::ToSqlOutput::from(self.0))
            }
        }

        impl rusqlite::types::FromSql for $name {
            fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
                i64::column_result(value).map(Self)
            }
        }

        impl From<Option<$name>> for crate::sql::Arg {
            fn from(id: Option<$name>) -> Self {
                id.map_or(Self::NullInt, |id| Self::Int(id.0))
            }
        }
    };
}

id_type!(
    /// A hub (the tenant): every other id is scoped to one hub.
    HubId
);
id_type!(
    /// An organization of a hub.
    OrganizationId
);
id_type!(
    /// A channel of an organization.
    ChannelId
);
id_type!(
    /// A contact; ids increase with creation, so a lower id is an older contact.
    ContactId
);
id_type!(
    /// A profile.
    ProfileId
);
id_type!(
    /// A task (apply, import, export).
    TaskId
);
id_type!(
    /// An API token's public id.
    TokenId
);
id_type!(
    /// A console user (a person who signs in to the web console).
    UserId
);
id_type!(
    /// A webhook endpoint.
    WebhookId
);
id_type!(
    /// A partner connection between organizations of one hub.
    ConnectionId
);
id_type!(
    /// A stored unification preview.
    PreviewId
);
id_type!(
    /// A note or conversation record of a contact.
    TimelineEntryId
);
