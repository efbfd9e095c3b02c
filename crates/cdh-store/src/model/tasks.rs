//! Long-running tasks (apply, import, export) and the rows and outcomes of imports and exports.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::profiles::Profile;
use super::{Millis, OrganizationId, Realm, TaskId};

/// What a task does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TaskKind {
    /// Applies a unify setting over every contact of the hub.
    Apply,
    /// Imports rows into an organization.
    Import,
    /// Exports an organization's profiles to a file.
    Export,
}
impl TaskKind {
    /// The kind as stored and shown (`apply`, `import`, `export`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "apply",
            Self::Import => "import",
            Self::Export => "export",
        }
    }

    /// `apply`, `import` or `export`, exactly; anything else is `None`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "apply" => Some(Self::Apply),
            "import" => Some(Self::Import),
            "export" => Some(Self::Export),
            _ => None,
        }
    }
}
impl std::fmt::Display for TaskKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a task is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TaskStatus {
    /// Waiting for the worker.
    Queued,
    /// Under way.
    Running,
    /// Done, with a result.
    Succeeded,
    /// Ended with an error.
    Failed,
}
impl TaskStatus {
    /// The status as stored and shown (`queued`, `running`, `succeeded`, `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    /// A stored status, exactly; anything else is `None`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "queued" => Some(Self::Queued),
            "running" => Some(Self::Running),
            "succeeded" => Some(Self::Succeeded),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }

    /// Whether the task has ended (succeeded or failed).
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}
impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A long-running operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    /// The task's id.
    pub id: TaskId,
    /// What it does.
    pub kind: TaskKind,
    /// Where it is.
    pub status: TaskStatus,
    /// Units done.
    pub done: i64,
    /// Units in all.
    pub total: i64,
    /// What it was asked to do.
    pub params: serde_json::Value,
    /// What it produced.
    pub result: Option<serde_json::Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// Creation time.
    pub created_at: Millis,
    /// Start time.
    pub started_at: Option<Millis>,
    /// End time.
    pub finished_at: Option<Millis>,
    /// The organization an import or export is for (`None` for an apply: it belongs to its
    /// realm).
    pub organization_id: Option<OrganizationId>,
    /// The realm an apply works on (`None` for imports and exports).
    pub realm: Option<Realm>,
}

/// One row of an import: `fields` absent stay unchanged, `None` clears.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRow {
    /// The row's number in the request (0-based or 1-based, as the caller counts).
    pub row: usize,
    /// Fields by name, including the import key.
    pub fields: BTreeMap<String, Option<String>>,
    /// Tags; `None` keeps the stored ones.
    pub tags: Option<Vec<String>>,
    /// Custom fields; `None` keeps the stored ones.
    pub custom_fields: Option<BTreeMap<String, String>>,
}

/// Where an import's rows come from, read a few at a time: the store checks every row one
/// by one and then reads each batch again to write it, so an import never holds all its
/// rows parsed at once (10,000 rows of 100 custom fields are ~150 MB typed, ~30 MB as text).
pub trait ImportSource: Send + Sync {
    /// How many rows.
    fn len(&self) -> usize;
    /// Whether there is none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Row `i` (0-based position, not the caller's row number).
    fn row(&self, i: usize) -> Result<ImportRow, serde_json::Error>;
}

impl ImportSource for Vec<ImportRow> {
    fn len(&self) -> usize {
        self.as_slice().len()
    }

    fn row(&self, i: usize) -> Result<ImportRow, serde_json::Error> {
        Ok(self[i].clone())
    }
}

/// An import's rows as kept with its task until it ends: a JSON array of [`ImportRow`]s,
/// indexed once (a pointer per row) and parsed row by row.
pub struct ImportRowsText<'a> {
    rows: Vec<&'a serde_json::value::RawValue>,
}

impl<'a> ImportRowsText<'a> {
    /// Indexes `text`, a JSON array as [`ImportRowsWriter`] writes it.
    pub fn parse(text: &'a str) -> Result<Self, serde_json::Error> {
        Ok(Self {
            rows: serde_json::from_str(text)?,
        })
    }
}

impl ImportSource for ImportRowsText<'_> {
    fn len(&self) -> usize {
        self.rows.len()
    }

    fn row(&self, i: usize) -> Result<ImportRow, serde_json::Error> {
        serde_json::from_str(self.rows[i].get())
    }
}

/// Writes rows one at a time into the text [`ImportRowsText`] reads, so that a request's rows
/// are never all held typed at once either.
#[derive(Clone, Debug, Default)]
pub struct ImportRowsWriter {
    text: String,
    n: usize,
}

impl ImportRowsWriter {
    /// Appends a row.
    pub fn push(&mut self, row: &ImportRow) {
        self.text.push(if self.n == 0 { '[' } else { ',' });
        // Serialising plain strings and maps into a String cannot fail.
        let json = serde_json::to_string(row).expect("an import row serialises");
        self.text.push_str(&json);
        self.n += 1;
    }

    /// Rows written so far.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether no row was written.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The JSON array.
    pub fn finish(mut self) -> String {
        if self.n == 0 {
            self.text.push('[');
        }
        self.text.push(']');
        self.text
    }
}

/// A row that failed, alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedRow {
    /// The row's number as given.
    pub row: usize,
    /// A stable code (`missing_import_key`, `invalid_import_key`, `invalid_field`, ...).
    pub code: String,
    /// A human sentence.
    pub message: String,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportOutcome {
    /// Rows given.
    pub total: u64,
    /// Rows that matched at least one contact (all matched contacts were overwritten).
    pub matched: u64,
    /// Rows created as contacts of the organization's `api` channel.
    pub created: u64,
    /// Rows that matched nothing and were not created.
    pub unmatched: u64,
    /// Rows that failed.
    pub failed_rows: Vec<FailedRow>,
}

/// One profile of an export with its merged record.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportRow {
    /// The profile.
    pub profile: Profile,
    /// Its merged fields, tags, identifiers and timeline.
    pub golden: cdh_core::GoldenRecord,
}
