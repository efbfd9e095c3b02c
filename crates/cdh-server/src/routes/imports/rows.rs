//! Turns an import's rows, JSON objects or CSV records, into the store's `ImportRow`s. A row
//! that cannot be read (an unknown field, a number where text belongs) is set aside as a
//! failed row with its number; the rest go on. Rows are numbered from 1 in the order given
//! (for CSV, the header is not a row).

use std::collections::{BTreeMap, HashSet};

use cdh_store::model::{FailedRow, ImportRow, ImportRowsWriter};
use serde::de::{Deserialize, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ErrorCode};
use crate::limits::{self, MAX_COLUMNS};

/// Profile and identifier fields an import row may carry, besides `tags` and `custom_fields`.
pub const IMPORT_FIELDS: [&str; 9] = [
    "display_name",
    "display_email",
    "display_mobile",
    "original_mobile",
    "line_uid",
    "customer_id",
    "connect_id",
    "gender",
    "birthday",
];

/// The most rows one request may carry.
pub const MAX_ROWS: usize = 10_000;

/// CSV columns named `custom_fields.<name>` carry custom field `<name>`.
const CUSTOM_PREFIX: &str = "custom_fields.";

/// Rows read, and rows refused with their reasons. Rows read are kept as the text the
/// import task stores, written one by one, so a request never holds them all typed.
#[derive(Debug, Default)]
pub struct ParsedRows {
    /// Rows to import.
    pub rows: ImportRowsWriter,
    /// Rows refused.
    pub rejected: Vec<FailedRow>,
}

impl ParsedRows {
    /// Rows in all.
    pub fn total(&self) -> usize {
        self.rows.len() + self.rejected.len()
    }

    /// Keeps a row read, or sets it aside with its reason; a row past a limit is set aside
    /// too (`value_too_long`, `too_many_custom_fields`, ...).
    fn push(&mut self, row: Result<ImportRow, FailedRow>) {
        let row = row.and_then(|row| {
            match limits::check_contact(
                &row.fields,
                row.tags.as_deref(),
                row.custom_fields.as_ref(),
            ) {
                Ok(()) => Ok(row),
                Err(exceeded) => Err(failed(row.row, exceeded.code, &exceeded.message)),
            }
        });
        match row {
            Ok(row) => self.rows.push(&row),
            Err(failed) => self.rejected.push(failed),
        }
    }
}

/// `413 batch_too_large`.
pub fn batch_too_large(n: usize) -> ApiError {
    ApiError::new(
        ErrorCode::BatchTooLarge,
        format!("an import takes at most {MAX_ROWS} profiles; this one has {n}; split it"),
    )
    .with_details(json!({ "limit": MAX_ROWS, "rows": n }))
}

/// The `profiles` of a JSON import, read as the body is parsed: each profile becomes a row
/// (or a failed row) at once, so a large import never exists as a tree of JSON values, nor as
/// a list of them. Past [`MAX_ROWS`], profiles are only counted. A field left out stays
/// unchanged, `null` clears it.
#[derive(Debug, Default)]
pub struct JsonProfiles {
    /// The rows read.
    pub parsed: ParsedRows,
    /// Profiles given.
    pub given: usize,
}

impl<'de> Deserialize<'de> for JsonProfiles {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(ProfilesVisitor)
    }
}

struct ProfilesVisitor;

impl<'de> Visitor<'de> for ProfilesVisitor {
    type Value = JsonProfiles;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of profiles")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonProfiles, A::Error> {
        let mut out = JsonProfiles::default();
        loop {
            if out.given < MAX_ROWS {
                let Some(profile) = seq.next_element::<Value>()? else {
                    break;
                };
                out.given += 1;
                out.parsed.push(json_row(out.given, profile));
            } else {
                if seq.next_element::<IgnoredAny>()?.is_none() {
                    break;
                }
                out.given += 1;
            }
        }
        Ok(out)
    }
}

fn json_row(row: usize, profile: Value) -> Result<ImportRow, FailedRow> {
    let Value::Object(object) = profile else {
        return Err(failed(
            row,
            "invalid_row",
            "a profile must be a JSON object",
        ));
    };
    let mut out = ImportRow {
        row,
        ..ImportRow::default()
    };
    for (name, value) in object {
        match name.as_str() {
            "tags" => out.tags = Some(json_tags(row, value)?),
            "custom_fields" => out.custom_fields = Some(json_custom_fields(row, value)?),
            field if IMPORT_FIELDS.contains(&field) => {
                let value = match value {
                    Value::String(s) => Some(s),
                    Value::Null => None,
                    _ => {
                        return Err(failed(
                            row,
                            "invalid_field",
                            &format!("`{field}` must be a string or null"),
                        ));
                    }
                };
                out.fields.insert(name, value);
            }
            _ => return Err(unknown_field(row, &name)),
        }
    }
    Ok(out)
}

fn json_tags(row: usize, value: Value) -> Result<Vec<String>, FailedRow> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .into_iter()
            .map(|t| match t {
                Value::String(s) => Ok(s),
                _ => Err(failed(
                    row,
                    "invalid_field",
                    "`tags` must be a list of strings",
                )),
            })
            .collect(),
        _ => Err(failed(
            row,
            "invalid_field",
            "`tags` must be a list of strings or null",
        )),
    }
}

fn json_custom_fields(row: usize, value: Value) -> Result<BTreeMap<String, String>, FailedRow> {
    let object: Map<String, Value> = match value {
        Value::Null => return Ok(BTreeMap::new()),
        Value::Object(o) => o,
        _ => {
            return Err(failed(
                row,
                "invalid_field",
                "`custom_fields` must be an object of strings or null",
            ));
        }
    };
    object
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            _ => Err(failed(
                row,
                "invalid_field",
                &format!("`custom_fields.{k}` must be a string"),
            )),
        })
        .collect()
}

/// [`from_csv`] off the async workers (reading megabytes is CPU work).
pub async fn read_csv(body: axum::body::Bytes) -> Result<ParsedRows, ApiError> {
    tokio::task::spawn_blocking(move || from_csv(&body[..]))
        .await
        .map_err(|e| ApiError::internal(format!("the import could not be read: {e}")))?
}

/// What a CSV column holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Column {
    Field(String),
    Tags,
    Custom(String),
}

/// Reads a CSV import: a header row naming the fields, then one profile per record. An empty
/// cell leaves the field unchanged (CSV cannot tell empty from absent; send JSON with `null`
/// to clear a field); `tags` are separated by `;`; a `custom_fields.<name>` column sets that
/// custom field (the row's custom fields are replaced by those given). A file that is not
/// CSV (ragged records, bad UTF-8, an unknown column) is refused whole, naming the line.
pub fn from_csv(body: impl std::io::Read) -> Result<ParsedRows, ApiError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .trim(csv::Trim::Headers)
        .from_reader(body);
    let header = reader.headers().map_err(|e| csv_error(&e))?.clone();
    if header.is_empty() || header.iter().all(str::is_empty) {
        return Err(invalid_csv(
            1,
            "the CSV has no header row naming the fields",
        ));
    }
    if header.len() > MAX_COLUMNS {
        return Err(ApiError::new(
            ErrorCode::Rejected("too_many_columns"),
            format!(
                "line 1: a CSV import has at most {MAX_COLUMNS} columns ({} given)",
                header.len()
            ),
        )
        .with_details(json!({ "line": 1, "limit": MAX_COLUMNS, "columns": header.len() })));
    }
    let columns = header
        .iter()
        .map(|name| {
            if name == "tags" {
                Ok(Column::Tags)
            } else if let Some(custom) = name.strip_prefix(CUSTOM_PREFIX).filter(|c| !c.is_empty())
            {
                limits::check_field_name(custom).map_err(|exceeded| {
                    ApiError::new(
                        ErrorCode::Rejected(exceeded.code),
                        format!("line 1: {}", exceeded.message),
                    )
                    .with_details(json!({ "line": 1, "field": "custom_fields" }))
                })?;
                Ok(Column::Custom(custom.to_owned()))
            } else if IMPORT_FIELDS.contains(&name) {
                Ok(Column::Field(name.to_owned()))
            } else {
                Err(ApiError::new(
                    ErrorCode::UnknownField,
                    format!("line 1: unknown column `{name}`; check its spelling"),
                )
                .with_details(json!({ "field": name, "line": 1 })))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = HashSet::with_capacity(columns.len());
    for (i, column) in columns.iter().enumerate() {
        if !seen.insert(column) {
            return Err(invalid_csv(
                1,
                &format!("column `{}` appears twice", &header[i]),
            ));
        }
    }
    let mut parsed = ParsedRows::default();
    let mut record = csv::StringRecord::new();
    let mut n = 0;
    while reader.read_record(&mut record).map_err(|e| csv_error(&e))? {
        n += 1;
        if n > MAX_ROWS {
            // Count the rest without keeping them, to say how many there were.
            let rest = reader.records().count();
            return Err(batch_too_large(n + rest));
        }
        parsed.push(Ok(csv_row(n, &columns, &record)));
    }
    Ok(parsed)
}

fn csv_row(row: usize, columns: &[Column], record: &csv::StringRecord) -> ImportRow {
    let mut out = ImportRow {
        row,
        ..ImportRow::default()
    };
    let mut custom = BTreeMap::new();
    for (column, cell) in columns.iter().zip(record.iter()) {
        if cell.is_empty() {
            continue;
        }
        match column {
            Column::Field(name) => {
                out.fields.insert(name.clone(), Some(cell.to_owned()));
            }
            Column::Tags => {
                out.tags = Some(
                    cell.split(';')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned)
                        .collect(),
                );
            }
            Column::Custom(name) => {
                custom.insert(name.clone(), cell.to_owned());
            }
        }
    }
    if !custom.is_empty() {
        out.custom_fields = Some(custom);
    }
    out
}

fn csv_error(e: &csv::Error) -> ApiError {
    let line = e.position().map_or(1, csv::Position::line);
    let why = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("it has {len} fields where the header has {expected_len}"),
        csv::ErrorKind::Utf8 { .. } => "it is not valid UTF-8".to_owned(),
        _ => format!("it could not be read: {e}"),
    };
    invalid_csv(line, &why)
}

fn invalid_csv(line: u64, why: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Rejected("invalid_csv"),
        format!("CSV line {line}: {why}"),
    )
    .with_details(json!({ "line": line }))
}

fn failed(row: usize, code: &str, message: &str) -> FailedRow {
    FailedRow {
        row,
        code: code.to_owned(),
        message: message.to_owned(),
    }
}

fn unknown_field(row: usize, name: &str) -> FailedRow {
    failed(
        row,
        "unknown_field",
        &format!("unknown field `{name}`; check its spelling"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_json(values: Vec<Value>) -> ParsedRows {
        let text = Value::Array(values).to_string();
        serde_json::from_str::<JsonProfiles>(&text).unwrap().parsed
    }

    /// The rows kept, typed again as the import task reads them.
    fn kept(parsed: &ParsedRows) -> Vec<ImportRow> {
        let chunks = parsed.rows.clone().finish();
        chunks.iter().flat_map(|c| c.rows().unwrap()).collect()
    }

    #[test]
    fn json_rows_keep_absent_and_null_apart() {
        let parsed = from_json(vec![
            json!({"customer_id": "c1", "display_name": null, "tags": ["a"]}),
        ]);
        let row = &kept(&parsed)[0];
        assert_eq!(row.row, 1);
        assert_eq!(row.fields["customer_id"], Some("c1".to_owned()));
        assert_eq!(row.fields["display_name"], None);
        assert!(!row.fields.contains_key("gender"));
        assert_eq!(row.tags, Some(vec!["a".to_owned()]));
        assert_eq!(row.custom_fields, None);
    }

    #[test]
    fn a_bad_json_row_fails_alone_with_its_number() {
        let parsed = from_json(vec![
            json!({"customer_id": "c1"}),
            json!({"customer_id": "c2", "nmae": "x"}),
            json!({"customer_id": 3}),
            json!("c4"),
        ]);
        assert_eq!(parsed.rows.len(), 1);
        let codes: Vec<_> = parsed
            .rejected
            .iter()
            .map(|f| (f.row, f.code.as_str()))
            .collect();
        assert_eq!(
            codes,
            [
                (2, "unknown_field"),
                (3, "invalid_field"),
                (4, "invalid_row")
            ]
        );
        assert!(parsed.rejected[0].message.contains("nmae"));
    }

    #[test]
    fn csv_rows_read_tags_and_custom_fields() {
        let parsed = from_csv(
            b"customer_id,display_name,tags,custom_fields.tier\nc1,Ann,vip; new ,gold\nc2,,,\n"
                .as_slice(),
        )
        .unwrap();
        assert_eq!(parsed.rows.len(), 2);
        assert_eq!(
            kept(&parsed)[0].tags,
            Some(vec!["vip".into(), "new".into()])
        );
        assert_eq!(
            kept(&parsed)[0].custom_fields.as_ref().unwrap()["tier"],
            "gold"
        );
        assert_eq!(kept(&parsed)[1].row, 2);
        assert!(!kept(&parsed)[1].fields.contains_key("display_name"));
    }

    #[test]
    fn malformed_csv_names_the_line() {
        let e =
            from_csv(b"customer_id,display_name\nc1,Ann\nc2,Bob,extra\n".as_slice()).unwrap_err();
        assert_eq!(e.code, ErrorCode::Rejected("invalid_csv"));
        assert_eq!(e.details["line"], 3);
        assert!(e.message.contains("line 3"), "{}", e.message);
        let e = from_csv(b"customer_id,nmae\nc1,Ann\n".as_slice()).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnknownField);
        assert_eq!(e.details["field"], "nmae");
        let e = from_csv(b"customer_id\nc1\n\xff\xfe\n".as_slice()).unwrap_err();
        assert_eq!(e.details["line"], 3);
        let e =
            from_csv(b"customer_id,display_name,customer_id\nc1,Ann,c2\n".as_slice()).unwrap_err();
        assert!(e.message.contains("appears twice"), "{}", e.message);
    }

    #[test]
    fn csv_limits_refuse_the_file_or_the_row() {
        let wide: Vec<String> = (0..=MAX_COLUMNS)
            .map(|i| format!("custom_fields.f{i}"))
            .collect();
        let e = from_csv(format!("{}\n", wide.join(",")).as_bytes()).unwrap_err();
        assert_eq!(e.code, ErrorCode::Rejected("too_many_columns"));
        let long_name = format!("customer_id,custom_fields.{}\nc1,v\n", "n".repeat(65));
        let e = from_csv(long_name.as_bytes()).unwrap_err();
        assert_eq!(e.code, ErrorCode::Rejected("field_name_too_long"));
        let long_value = format!(
            "customer_id,display_name\nc1,{}\nc2,Bob\n",
            "x".repeat(limits::MAX_VALUE_CHARS + 1)
        );
        let parsed = from_csv(long_value.as_bytes()).unwrap();
        assert_eq!(parsed.rows.len(), 1);
        assert_eq!(parsed.rejected[0].row, 1);
        assert_eq!(parsed.rejected[0].code, "value_too_long");
    }
}
