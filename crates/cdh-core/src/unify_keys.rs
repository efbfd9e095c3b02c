//! `UnifyKeys`: the one to three distinct identifier fields a brand merges contacts on.

use std::fmt;

use crate::field::IdentifierField;

/// The most unify keys a setting may hold.
pub const MAX_UNIFY_KEYS: usize = 3;

/// One to three distinct identifier fields. Two contacts in one scope belong to one profile
/// when they share a normalised value of any of them, directly or through a chain.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UnifyKeys(Vec<IdentifierField>);

/// Why a list of fields is not a valid set of unify keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnifyKeysError {
    /// No field was given.
    Empty,
    /// More than [`MAX_UNIFY_KEYS`] fields were given.
    TooMany(usize),
    /// A field was given twice.
    Duplicate(IdentifierField),
}

impl fmt::Display for UnifyKeysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "choose at least one unify key"),
            Self::TooMany(n) => {
                write!(
                    f,
                    "at most {MAX_UNIFY_KEYS} unify keys may be chosen, got {n}"
                )
            }
            Self::Duplicate(field) => write!(f, "unify key `{field}` is listed twice"),
        }
    }
}

impl std::error::Error for UnifyKeysError {}

impl UnifyKeys {
    /// Checks that `fields` holds one to three distinct fields; keeps their order.
    pub fn new(fields: Vec<IdentifierField>) -> Result<Self, UnifyKeysError> {
        if fields.is_empty() {
            return Err(UnifyKeysError::Empty);
        }
        if fields.len() > MAX_UNIFY_KEYS {
            return Err(UnifyKeysError::TooMany(fields.len()));
        }
        for (i, field) in fields.iter().enumerate() {
            if fields[..i].contains(field) {
                return Err(UnifyKeysError::Duplicate(field.clone()));
            }
        }
        Ok(Self(fields))
    }

    /// The fields, in the order the admin chose them.
    pub fn fields(&self) -> &[IdentifierField] {
        &self.0
    }

    /// Whether `field` is one of the keys.
    pub fn contains(&self, field: &IdentifierField) -> bool {
        self.0.contains(field)
    }

    /// The position of `field` among the keys.
    pub fn slot(&self, field: &IdentifierField) -> Option<usize> {
        self.0.iter().position(|f| f == field)
    }
}

impl fmt::Display for UnifyKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(IdentifierField::name).collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use IdentifierField::*;

    #[test]
    fn one_to_three_distinct_fields() {
        assert!(UnifyKeys::new(vec![LineUid]).is_ok());
        let keys = UnifyKeys::new(vec![DisplayMobile, DisplayEmail, LineUid]).unwrap();
        assert_eq!(keys.to_string(), "display_mobile,display_email,line_uid");
        assert_eq!(keys.slot(&LineUid), Some(2));
        assert!(!keys.contains(&CustomerId));
    }

    #[test]
    fn rejects_empty_too_many_and_duplicates() {
        assert_eq!(UnifyKeys::new(vec![]), Err(UnifyKeysError::Empty));
        assert_eq!(
            UnifyKeys::new(vec![LineUid, DisplayMobile, DisplayEmail, CustomerId]),
            Err(UnifyKeysError::TooMany(4))
        );
        assert_eq!(
            UnifyKeys::new(vec![DisplayEmail, DisplayEmail]),
            Err(UnifyKeysError::Duplicate(DisplayEmail))
        );
        assert_eq!(
            UnifyKeys::new(vec![Custom("a".into()), Custom("a".into())]),
            Err(UnifyKeysError::Duplicate(Custom("a".into())))
        );
    }
}
