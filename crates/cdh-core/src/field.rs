//! Identifier fields: the fields a brand may choose as unify keys, and their names.

use std::fmt;

/// A field that identifies a person and may be chosen as a unify key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdentifierField {
    /// A LINE user id: `U` followed by 32 hex digits, compared exactly.
    LineUid,
    /// A phone number, compared in E.164 form.
    DisplayMobile,
    /// An email address, compared trimmed and lower-cased.
    DisplayEmail,
    /// The brand's own member id, compared trimmed and exact.
    CustomerId,
    /// An id a connector assigns to tie records together, trimmed and exact.
    ConnectId,
    /// A custom field an admin marked as an identifier, trimmed and exact.
    Custom(String),
}

/// The built-in identifier fields, in the order they are listed to people.
pub const BUILT_IN_FIELDS: [IdentifierField; 5] = [
    IdentifierField::LineUid,
    IdentifierField::DisplayMobile,
    IdentifierField::DisplayEmail,
    IdentifierField::CustomerId,
    IdentifierField::ConnectId,
];

/// How a field's values are normalised before they are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldKind {
    /// `U` + 32 hex digits, exact.
    LineUid,
    /// E.164 via the organization's default region.
    Phone,
    /// Trimmed, lower-cased, must parse as an address.
    Email,
    /// Trimmed, exact.
    Exact,
}

/// A name that is not a known identifier field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownField {
    /// The name as given.
    pub name: String,
    /// Every name that would have been accepted.
    pub valid: Vec<String>,
}

impl fmt::Display for UnknownField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown identifier field `{}`; valid fields are: {}",
            self.name,
            self.valid.join(", ")
        )
    }
}

impl std::error::Error for UnknownField {}

impl IdentifierField {
    /// The field's name as it appears in the API, files and settings.
    pub fn name(&self) -> &str {
        match self {
            Self::LineUid => "line_uid",
            Self::DisplayMobile => "display_mobile",
            Self::DisplayEmail => "display_email",
            Self::CustomerId => "customer_id",
            Self::ConnectId => "connect_id",
            Self::Custom(name) => name,
        }
    }

    /// How values of this field are normalised.
    pub fn kind(&self) -> FieldKind {
        match self {
            Self::LineUid => FieldKind::LineUid,
            Self::DisplayMobile => FieldKind::Phone,
            Self::DisplayEmail => FieldKind::Email,
            Self::CustomerId | Self::ConnectId | Self::Custom(_) => FieldKind::Exact,
        }
    }

    /// A built-in field by name.
    pub fn built_in(name: &str) -> Option<Self> {
        BUILT_IN_FIELDS.iter().find(|f| f.name() == name).cloned()
    }

    /// A field by name: a built-in one, or one of `custom_identifiers` (the custom fields an
    /// admin marked as identifiers). Anything else is an error that lists the valid names.
    pub fn parse(name: &str, custom_identifiers: &[String]) -> Result<Self, UnknownField> {
        let name = name.trim();
        if let Some(field) = Self::built_in(name) {
            return Ok(field);
        }
        if custom_identifiers.iter().any(|c| c == name) {
            return Ok(Self::Custom(name.to_owned()));
        }
        let valid = BUILT_IN_FIELDS
            .iter()
            .map(|f| f.name().to_owned())
            .chain(custom_identifiers.iter().cloned())
            .collect();
        Err(UnknownField {
            name: name.to_owned(),
            valid,
        })
    }
}

impl fmt::Display for IdentifierField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_names_round_trip() {
        for field in BUILT_IN_FIELDS {
            assert_eq!(IdentifierField::parse(field.name(), &[]), Ok(field.clone()));
        }
    }

    #[test]
    fn custom_identifier_is_accepted_only_when_declared() {
        let custom = vec!["member_no".to_owned()];
        assert_eq!(
            IdentifierField::parse("member_no", &custom),
            Ok(IdentifierField::Custom("member_no".into()))
        );
        let err = IdentifierField::parse("member_no", &[]).unwrap_err();
        assert_eq!(err.name, "member_no");
        assert!(err.to_string().contains("display_mobile"), "{err}");
    }

    #[test]
    fn unknown_field_lists_valid_names() {
        let err = IdentifierField::parse("phone", &["vip_no".into()]).unwrap_err();
        assert_eq!(
            err.valid,
            [
                "line_uid",
                "display_mobile",
                "display_email",
                "customer_id",
                "connect_id",
                "vip_no"
            ]
        );
    }
}
