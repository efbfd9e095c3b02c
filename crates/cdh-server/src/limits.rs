//! The limits every contact write (API upsert, import row) is held to, so that no request
//! can make the server keep or index more than a brand's real data needs. Each limit has a
//! stable error code; `docs/security.md` and the contract list them.

use std::collections::BTreeMap;

/// Characters in one field value, tag or custom field value.
pub const MAX_VALUE_CHARS: usize = 1024;
/// Characters in a custom field's name.
pub const MAX_FIELD_NAME_CHARS: usize = 64;
/// Custom fields on one contact.
pub const MAX_CUSTOM_FIELDS: usize = 100;
/// Tags on one contact.
pub const MAX_TAGS: usize = 100;
/// Columns in a CSV import: every profile field, `tags`, and the custom fields.
pub const MAX_COLUMNS: usize = 16 + MAX_CUSTOM_FIELDS;

pub use cdh_core::normalize::has_hidden_chars;

/// A limit a write went past.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exceeded {
    /// `value_too_long`, `field_name_too_long`, `too_many_custom_fields` or `too_many_tags`.
    pub code: &'static str,
    /// What went past which limit (names the field, never its value).
    pub message: String,
    /// The field at fault.
    pub field: String,
}

/// Checks a contact's fields, tags and custom fields against the limits.
pub fn check_contact(
    fields: &BTreeMap<String, Option<String>>,
    tags: Option<&[String]>,
    custom_fields: Option<&BTreeMap<String, String>>,
) -> Result<(), Exceeded> {
    for (name, value) in fields {
        if let Some(value) = value {
            check_value(name, value)?;
        }
    }
    if let Some(tags) = tags {
        if tags.len() > MAX_TAGS {
            return Err(Exceeded {
                code: "too_many_tags",
                message: format!("at most {MAX_TAGS} tags ({} given)", tags.len()),
                field: "tags".into(),
            });
        }
        for tag in tags {
            check_value("tags", tag)?;
        }
    }
    if let Some(custom) = custom_fields {
        if custom.len() > MAX_CUSTOM_FIELDS {
            return Err(Exceeded {
                code: "too_many_custom_fields",
                message: format!(
                    "at most {MAX_CUSTOM_FIELDS} custom fields ({} given)",
                    custom.len()
                ),
                field: "custom_fields".into(),
            });
        }
        for (name, value) in custom {
            check_field_name(name)?;
            check_value(&format!("custom_fields.{name}"), value)?;
        }
    }
    Ok(())
}

/// Checks a custom field's name.
pub fn check_field_name(name: &str) -> Result<(), Exceeded> {
    let n = name.chars().count();
    if n > MAX_FIELD_NAME_CHARS {
        return Err(Exceeded {
            code: "field_name_too_long",
            message: format!(
                "a custom field's name is at most {MAX_FIELD_NAME_CHARS} characters ({n} given)"
            ),
            field: "custom_fields".into(),
        });
    }
    Ok(())
}

fn check_value(field: &str, value: &str) -> Result<(), Exceeded> {
    // Bytes bound characters from above: count characters only when the bytes are many.
    if value.len() > MAX_VALUE_CHARS && value.chars().count() > MAX_VALUE_CHARS {
        return Err(Exceeded {
            code: "value_too_long",
            message: format!("`{field}` is at most {MAX_VALUE_CHARS} characters"),
            field: field.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_limit_has_its_code_and_the_limit_itself_passes() {
        let fields = |v: &str| BTreeMap::from([("display_name".to_owned(), Some(v.to_owned()))]);
        let at = "é".repeat(MAX_VALUE_CHARS);
        assert_eq!(check_contact(&fields(&at), None, None), Ok(()));
        let over = format!("{at}x");
        assert_eq!(
            check_contact(&fields(&over), None, None).unwrap_err().code,
            "value_too_long"
        );
        let tags: Vec<String> = (0..=MAX_TAGS).map(|i| i.to_string()).collect();
        assert_eq!(
            check_contact(&BTreeMap::new(), Some(&tags[..MAX_TAGS]), None),
            Ok(())
        );
        assert_eq!(
            check_contact(&BTreeMap::new(), Some(&tags), None)
                .unwrap_err()
                .code,
            "too_many_tags"
        );
        let custom: BTreeMap<String, String> = (0..=MAX_CUSTOM_FIELDS)
            .map(|i| (format!("f{i}"), "v".to_owned()))
            .collect();
        assert_eq!(
            check_contact(&BTreeMap::new(), None, Some(&custom))
                .unwrap_err()
                .code,
            "too_many_custom_fields"
        );
        let long_name = BTreeMap::from([("n".repeat(MAX_FIELD_NAME_CHARS + 1), "v".to_owned())]);
        let err = check_contact(&BTreeMap::new(), None, Some(&long_name)).unwrap_err();
        assert_eq!(err.code, "field_name_too_long");
        assert!(!err.message.contains("nnnn"), "{}", err.message);
    }
}
