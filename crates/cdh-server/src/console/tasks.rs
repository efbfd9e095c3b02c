//! A task's page (apply, import, export): a live progress bar that htmx refreshes every
//! second while the task runs (a plain page refreshes itself without JavaScript), then a
//! summary in words: the merge counts, the import's failed rows, or the export's download.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use cdh_store::model::{ImportOutcome, Millis, Task, TaskKind, TaskStatus as StoredStatus};

use crate::console::page::{Layout, PageError, render};
use crate::console::profile::short_time;
use crate::console::session::Viewer;
use crate::routes::tasks::load_task;
use crate::state::AppState;
use crate::wire;
use crate::worker::export;

/// What the status block shows.
pub struct TaskStatus {
    id: String,
    kind: String,
    status: String,
    done: i64,
    total: i64,
    percent: i64,
    finished: bool,
    error: Option<String>,
    summary: Vec<String>,
    failed_rows: Vec<(u64, String, String)>,
    download: Option<String>,
    created_at: String,
}

impl TaskStatus {
    /// The block of `task` at `now` (an export's download shows until its file expires).
    fn of(task: &Task, now: Millis) -> Self {
        let finished = task.status.is_finished();
        let percent = if task.status == StoredStatus::Succeeded {
            100
        } else if task.total > 0 {
            (task.done * 100 / task.total).clamp(0, 100)
        } else {
            0
        };
        let mut summary = Vec::new();
        let mut failed_rows = Vec::new();
        let mut download = None;
        if let Some(result) = &task.result {
            let n = |k: &str| {
                result
                    .get(k)
                    .and_then(serde_json::Value::as_i64)
                    .unwrap_or(0)
            };
            match task.kind.as_str() {
                "apply" => {
                    summary.push(format!("Unify setting v{} is in force.", n("version")));
                    summary.push(format!(
                        "{} profiles became {}.",
                        n("profiles_before"),
                        n("profiles_after")
                    ));
                    summary.push(format!(
                        "{} merges; {} contacts moved into another profile.",
                        n("merges"),
                        n("contacts_moved")
                    ));
                }
                "import" => {
                    if let Ok(outcome) = serde_json::from_value::<ImportOutcome>(result.clone()) {
                        summary.push(format!(
                            "{} rows: {} matched, {} created, {} matched nothing, {} failed.",
                            outcome.total,
                            outcome.matched,
                            outcome.created,
                            outcome.unmatched,
                            outcome.failed_rows.len()
                        ));
                        failed_rows = outcome
                            .failed_rows
                            .into_iter()
                            .map(|f| (f.row as u64, f.code, f.message))
                            .collect();
                    }
                }
                "export" => {
                    summary.push(format!("{} profiles exported.", n("rows")));
                    if task.status == StoredStatus::Succeeded {
                        if export::is_expired(task.finished_at, now) {
                            summary.push(
                                "The file was kept 7 days and is gone; start a new export."
                                    .to_owned(),
                            );
                        } else {
                            download = Some(format!("/data/exports/{}/download", task.id));
                        }
                    }
                }
                _ => {}
            }
        }
        Self {
            id: wire::id(task.id),
            kind: task.kind.to_string(),
            status: task.status.to_string(),
            done: task.done,
            total: task.total,
            percent,
            finished,
            error: task.error.clone(),
            summary,
            failed_rows,
            download,
            created_at: short_time(task.created_at),
        }
    }

    fn title(&self) -> &'static str {
        match self.kind.as_str() {
            "apply" => "Applying unify keys",
            "import" => "Import",
            "export" => "Export",
            _ => "Task",
        }
    }
}

#[derive(Template)]
#[template(path = "console/task.html")]
struct TaskPage {
    l: Layout,
    t: TaskStatus,
}

#[derive(Template)]
#[template(path = "console/task_status.html")]
struct TaskFragment {
    t: TaskStatus,
}

/// `GET /tasks/{id}`.
pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let (_, task) = load_task(&state, &viewer.caller(), &id, None).await?;
    let t = TaskStatus::of(&task, state.now());
    let nav = if task.kind == TaskKind::Apply {
        "unification"
    } else {
        "data"
    };
    let l = Layout::new(&viewer, nav, t.title());
    Ok(render(&TaskPage { l, t }))
}

/// `GET /tasks/{id}/status`: the status block alone, for htmx to swap in.
pub async fn fragment(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let (_, task) = load_task(&state, &viewer.caller(), &id, None).await?;
    Ok(render(&TaskFragment {
        t: TaskStatus::of(&task, state.now()),
    }))
}
