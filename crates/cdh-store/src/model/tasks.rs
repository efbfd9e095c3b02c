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

/// The most rows one chunk of a queued import holds: one write batch's worth, so the worker
/// holds one chunk's rows at a time (10,000 rows of 100 custom fields are ~150 MB typed and
/// ~30 MB as text; a chunk of 250 is ~1 MB).
pub const IMPORT_CHUNK_ROWS: usize = 250;

/// Where an import's rows come from.
#[derive(Clone, Copy, Debug)]
pub enum ImportRows<'a> {
    /// Rows at hand (the command line, tests).
    Given(&'a [ImportRow]),
    /// The rows queued with the import's task (`start_import_task`), read from the store a
    /// chunk at a time.
    Queued,
}

/// A piece of a queued import: up to [`IMPORT_CHUNK_ROWS`] rows as a JSON array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportChunk {
    /// Rows in it.
    pub n_rows: usize,
    /// The rows, a JSON array of [`ImportRow`]s.
    pub text: String,
}

impl ImportChunk {
    /// Its rows, typed.
    pub fn rows(&self) -> Result<Vec<ImportRow>, serde_json::Error> {
        serde_json::from_str(&self.text)
    }
}

/// Writes rows one at a time into the chunks an import is queued with, so that a request's
/// rows are never all held typed, and no buffer is ever the size of the whole import.
#[derive(Clone, Debug, Default)]
pub struct ImportRowsWriter {
    chunks: Vec<ImportChunk>,
    n: usize,
}

impl ImportRowsWriter {
    /// Appends a row.
    pub fn push(&mut self, row: &ImportRow) {
        let open = self
            .chunks
            .last()
            .is_some_and(|c| c.n_rows < IMPORT_CHUNK_ROWS);
        if !open {
            if let Some(full) = self.chunks.last_mut() {
                seal(full);
            }
            self.chunks.push(ImportChunk {
                n_rows: 0,
                text: String::new(),
            });
        }
        let chunk = self.chunks.last_mut().expect("a chunk is open");
        chunk.text.push(if chunk.n_rows == 0 { '[' } else { ',' });
        // Serialising plain strings and maps into a String cannot fail.
        let json = serde_json::to_string(row).expect("an import row serialises");
        chunk.text.push_str(&json);
        chunk.n_rows += 1;
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

    /// The chunks, in row order.
    pub fn finish(mut self) -> Vec<ImportChunk> {
        if let Some(last) = self.chunks.last_mut() {
            seal(last);
        }
        self.chunks
    }
}

/// Closes a chunk's array (once: when the next is opened, or at the end) and gives back the
/// room its text grew into (up to half of it).
fn seal(chunk: &mut ImportChunk) {
    chunk.text.push(']');
    chunk.text.shrink_to_fit();
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
