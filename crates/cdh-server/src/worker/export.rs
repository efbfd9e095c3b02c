//! Runs an export task: the organization's profiles, from one snapshot, streamed to a CSV
//! or JSON Lines file under `<data_dir>/exports/`, kept [`RETENTION_MS`] after it ends.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use cdh_store::model::{ChannelId, ExportRow, HubId, Millis, OrganizationId, Task, TaskId};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{TaskError, TaskOutcome};
use crate::state::AppState;
use crate::wire;

/// How long a finished export can be downloaded: 7 days.
pub const RETENTION_MS: Millis = 7 * 24 * 60 * 60 * 1000;

/// Merged fields with a column of their own in CSV exports; any other field goes to the
/// `other_fields` column as a JSON object.
pub const CSV_FIELD_COLUMNS: [&str; 8] = [
    "display_name",
    "display_email",
    "display_mobile",
    "line_uid",
    "customer_id",
    "connect_id",
    "gender",
    "birthday",
];

/// An export file's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line, shaped like `GET /v1/profiles/{id}`.
    Jsonl,
}

impl ExportFormat {
    /// The file name's extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Jsonl => "jsonl",
        }
    }

    /// The `Content-Type` of a download.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Jsonl => "application/x-ndjson",
        }
    }
}

/// What an export task is asked to do (its stored `params`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportParams {
    /// The organization exporting.
    pub organization_id: OrganizationId,
    /// The file format.
    pub format: ExportFormat,
    /// Only profiles updated at or after this time.
    pub updated_since: Option<Millis>,
}

/// What a finished export produced (its stored `result`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportResult {
    /// Profiles written.
    pub rows: u64,
    /// The file's size in bytes.
    pub bytes: u64,
}

/// Where an export's file lives.
pub fn file_path(state: &AppState, hub: HubId, task: TaskId, format: ExportFormat) -> PathBuf {
    exports_dir(state).join(format!("{hub}-{task}.{}", format.extension()))
}

/// Whether a finished export is past its retention at `now`.
pub fn is_expired(finished_at: Option<Millis>, now: Millis) -> bool {
    finished_at.is_some_and(|at| now >= at + RETENTION_MS)
}

/// Runs the export: reads one snapshot (every write committed before it began) and streams
/// it to a temporary file renamed into place when complete, so a download never sees half a
/// file and a crash leaves nothing a download could find.
pub async fn run(state: &AppState, hub: HubId, task: &Task) -> TaskOutcome {
    let params: ExportParams = serde_json::from_value(task.params.clone()).map_err(|e| {
        TaskError::Failed(format!(
            "the export's stored parameters are unreadable: {e}"
        ))
    })?;
    let path = file_path(state, hub, task.id, params.format);
    let partial = path.with_extension(format!("{}.part", params.format.extension()));
    std::fs::create_dir_all(exports_dir(state)).map_err(|e| io_failure(&exports_dir(state), &e))?;
    let file = File::create(&partial).map_err(|e| io_failure(&partial, &e))?;
    let mut writer = RowWriter::new(params.format, BufWriter::with_capacity(1 << 16, file))
        .map_err(|e| io_failure(&partial, &e))?;
    let mut sink = |row: ExportRow| writer.write(&row).map_err(|e| e.to_string());
    let rows = match state
        .store
        .export_profiles(hub, params.organization_id, params.updated_since, &mut sink)
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e.into());
        }
    };
    writer.finish().map_err(|e| io_failure(&partial, &e))?;
    std::fs::rename(&partial, &path).map_err(|e| io_failure(&path, &e))?;
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let done = i64::try_from(rows).unwrap_or(i64::MAX);
    state
        .store
        .update_task_progress(hub, task.id, done, done)
        .await?;
    Ok(Some(json!(ExportResult { rows, bytes })))
}

/// Deletes export files past their retention, by the one clock the API and the console use:
/// the task's end (`is_expired`). A file whose task is gone, or that no export task names
/// (a name this server does not write), goes too; a partial file stays while its task runs.
pub async fn remove_expired_files(state: &AppState) {
    let Ok(entries) = std::fs::read_dir(exports_dir(state)) else {
        return;
    };
    let now = state.now();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let keep = match task_of_file(&name) {
            Some((hub, task)) => match state.store.get_task(hub, task).await {
                Ok(task) => !task.status.is_finished() || !is_expired(task.finished_at, now),
                Err(cdh_store::StoreError::NotFound(_)) => false,
                // The store did not answer: try again at the next sweep.
                Err(_) => true,
            },
            None => false,
        };
        if !keep && let Err(e) = std::fs::remove_file(entry.path()) {
            tracing::warn!(path = %entry.path().display(), error = %e, "could not remove an expired export");
        }
    }
}

/// The hub and task a file of the exports folder belongs to (`{hub}-{task}.{ext}`, or with
/// `.part` after it while written).
fn task_of_file(name: &str) -> Option<(HubId, TaskId)> {
    let stem = name.split('.').next()?;
    let (hub, task) = stem.split_once('-')?;
    Some((hub.parse().ok()?, task.parse().ok()?))
}

fn exports_dir(state: &AppState) -> PathBuf {
    state.config.data_dir.join("exports")
}

fn io_failure(path: &Path, e: &std::io::Error) -> TaskError {
    tracing::error!(path = %path.display(), error = %e, "export file error");
    TaskError::Failed(format!("the export file could not be written: {e}"))
}

/// Writes rows in one format.
enum RowWriter {
    // Boxed: the CSV writer carries its own buffers and state, far larger than a BufWriter.
    Csv(Box<csv::Writer<BufWriter<File>>>),
    Jsonl(BufWriter<File>),
}

impl RowWriter {
    fn new(format: ExportFormat, out: BufWriter<File>) -> std::io::Result<Self> {
        Ok(match format {
            ExportFormat::Csv => {
                let mut w = csv::Writer::from_writer(out);
                let mut header = vec![
                    "id",
                    "created_at",
                    "updated_at",
                    "contact_ids",
                    "channel_ids",
                    "tags",
                    "identifiers",
                ];
                header.extend(CSV_FIELD_COLUMNS);
                header.push("other_fields");
                w.write_record(&header)?;
                Self::Csv(Box::new(w))
            }
            ExportFormat::Jsonl => Self::Jsonl(out),
        })
    }

    fn write(&mut self, row: &ExportRow) -> std::io::Result<()> {
        match self {
            Self::Csv(w) => w
                .write_record(
                    csv_record(row)
                        .iter()
                        .map(|cell| neutralised(cell).into_owned()),
                )
                .map_err(std::io::Error::other),
            Self::Jsonl(w) => {
                serde_json::to_writer(&mut *w, &json_record(row))?;
                w.write_all(b"\n")
            }
        }
    }

    fn finish(self) -> std::io::Result<()> {
        let mut out = match self {
            Self::Csv(w) => w
                .into_inner()
                .map_err(|e| std::io::Error::other(e.to_string()))?,
            Self::Jsonl(w) => w,
        };
        out.flush()?;
        out.get_ref().sync_all()
    }
}

/// A cell a spreadsheet will not read as a formula: one that starts with `=`, `+`, `-`, `@`,
/// a tab or a carriage return gets a leading `'`, as OWASP recommends against CSV injection
/// (a spreadsheet shows the value as text, without the quote). JSON Lines exports are not
/// changed: no spreadsheet opens them.
pub fn neutralised(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

/// A profile as one CSV record; lists are joined with `;`.
fn csv_record(row: &ExportRow) -> Vec<String> {
    let p = &row.profile;
    let join = |ids: Vec<String>| ids.join(";");
    let mut record = vec![
        wire::id(p.id),
        wire::time(p.created_at),
        wire::time(p.updated_at),
        join(p.members.iter().map(|m| wire::id(m.contact_id)).collect()),
        join({
            let mut channels: Vec<ChannelId> = p.members.iter().map(|m| m.channel_id).collect();
            channels.sort_unstable();
            channels.dedup();
            channels.into_iter().map(wire::id).collect()
        }),
        row.golden.tags.join(";"),
        // `field:value` pairs, `;`-separated, as `tags` are; a custom identifier whose value
        // holds either character is written in JSON Lines exports without ambiguity.
        row.golden
            .identifiers
            .iter()
            .map(|i| format!("{}:{}", i.field.name(), i.value))
            .collect::<Vec<_>>()
            .join(";"),
    ];
    for column in CSV_FIELD_COLUMNS {
        record.push(
            row.golden
                .fields
                .get(column)
                .map(|f| f.value.clone())
                .unwrap_or_default(),
        );
    }
    let others: serde_json::Map<String, serde_json::Value> = row
        .golden
        .fields
        .iter()
        .filter(|(name, _)| !CSV_FIELD_COLUMNS.contains(&name.as_str()))
        .map(|(name, f)| (name.clone(), json!(f.value)))
        .collect();
    record.push(if others.is_empty() {
        String::new()
    } else {
        serde_json::Value::Object(others).to_string()
    });
    record
}

/// A profile as one JSON object, shaped like `GET /v1/profiles/{id}`.
fn json_record(row: &ExportRow) -> serde_json::Value {
    let p = &row.profile;
    let fields: serde_json::Map<String, serde_json::Value> = row
        .golden
        .fields
        .iter()
        .map(|(name, f)| (name.clone(), json!(f.value)))
        .collect();
    json!({
        "id": wire::id(p.id),
        "fields": fields,
        "identifiers": row.golden.identifiers.iter().map(|i| json!({
            "field": i.field.name(),
            "value": i.value,
            "is_unify_key": i.is_unify_key,
        })).collect::<Vec<_>>(),
        "channels": p.members.iter().map(|m| json!({
            "channel_id": wire::id(m.channel_id),
            "type": m.channel_type,
            "product": m.product,
            "contact_id": wire::id(m.contact_id),
        })).collect::<Vec<_>>(),
        "contact_ids": p.members.iter().map(|m| wire::id(m.contact_id)).collect::<Vec<_>>(),
        "tags": row.golden.tags,
        "created_at": wire::time(p.created_at),
        "updated_at": wire::time(p.updated_at),
    })
}

#[cfg(test)]
mod tests {
    use super::neutralised;

    #[test]
    fn formula_cells_are_neutralised_and_others_kept() {
        for formula in [
            "=HYPERLINK(\"http://x.example\")",
            "+cmd|' /C calc'!A0",
            "-2+3",
            "@SUM(A1:A9)",
            "\t=1",
            "\r=1",
        ] {
            assert_eq!(neutralised(formula), format!("'{formula}"));
        }
        for plain in ["", "Amy", "a=b", "'quoted", " =1", "886912345678"] {
            assert_eq!(neutralised(plain), plain);
        }
    }
}
