//! Import and export: upload a CSV matched by an import key (followed on its task page, with
//! the failed rows and their reasons), start an export, and download finished ones.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::console::contacts::field_label;
use crate::console::forms::{CsrfForm, UploadForm};
use crate::console::page::{Layout, PageError, render_status};
use crate::console::profile::short_time;
use crate::console::session::Viewer;
use crate::error::ApiError;
use crate::routes::exports::{ExportFormatName, export_file, export_request};
use crate::routes::imports::{
    ImportKey, OnUnmatched, check_rate, import_params, queue_import, rows,
};
use crate::routes::tasks::queue_exclusive_task;
use crate::state::AppState;
use crate::wire;
use cdh_store::model::TaskKind;

/// The keys an import may match rows by, in the order the form lists them.
const IMPORT_KEYS: [&str; 5] = [
    "customer_id",
    "display_mobile",
    "display_email",
    "line_uid",
    "connect_id",
];

struct RecentTask {
    id: String,
    kind: String,
    status: String,
    at: String,
}

#[derive(Template)]
#[template(path = "console/data.html")]
struct DataPage {
    l: Layout,
    keys: Vec<(String, String)>,
    recent: Vec<RecentTask>,
}

/// `GET /data`.
pub async fn page(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    data_page(&state, &viewer, StatusCode::OK, None).await
}

async fn data_page(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    error: Option<String>,
) -> Result<Response, PageError> {
    let org = viewer.user.organization_id;
    let recent = state
        .store
        .list_tasks(viewer.hub, org, &[TaskKind::Import, TaskKind::Export], 10)
        .await?
        .into_iter()
        .map(|t| RecentTask {
            id: wire::id(t.id),
            kind: t.kind.to_string(),
            status: t.status.to_string(),
            at: short_time(t.created_at),
        })
        .collect();
    let mut l = Layout::new(viewer, "data", "Import and export");
    if let Some(error) = error {
        l = l.flash("error", error);
    }
    let page = DataPage {
        l,
        keys: IMPORT_KEYS
            .iter()
            .map(|k| ((*k).to_owned(), field_label(k).to_owned()))
            .collect(),
        recent,
    };
    Ok(render_status(status, &page))
}

/// `POST /data/imports` (multipart: `csrf`, `import_key`, `create_unmatched`, `file`).
pub async fn import(
    State(state): State<AppState>,
    viewer: Viewer,
    form: UploadForm,
) -> Result<Response, PageError> {
    let caller = viewer.caller();
    let key: Option<ImportKey> = form
        .field("import_key")
        .and_then(|k| serde_json::from_value(serde_json::Value::String(k.to_owned())).ok());
    let attempt = async {
        let key = key.ok_or_else(|| {
            ApiError::invalid_field("import_key", "Choose the field rows are matched by.")
        })?;
        let (_, bytes) = form
            .file
            .as_ref()
            .ok_or_else(|| ApiError::invalid_field("file", "Choose a CSV file to import."))?;
        check_rate(&state, &caller)?;
        let parsed = rows::read_csv(bytes.clone()).await?;
        let on_unmatched = form.field("create_unmatched").map(|_| OnUnmatched::Create);
        let import = import_params(&caller, key, on_unmatched, parsed)?;
        queue_import(&state, &caller, import).await
    };
    match attempt.await {
        Ok(task) => Ok(Redirect::to(&format!("/tasks/{task}")).into_response()),
        Err(e) if e.code.status().is_client_error() => {
            let message = format!("The import was not started: {}", e.message);
            data_page(&state, &viewer, e.code.status(), Some(message)).await
        }
        Err(e) => Err(e.into()),
    }
}

/// The export form.
#[derive(Debug, Deserialize)]
pub struct ExportForm {
    format: ExportFormatName,
}

/// `POST /data/exports`.
pub async fn export(
    State(state): State<AppState>,
    viewer: Viewer,
    CsrfForm(form): CsrfForm<ExportForm>,
) -> Result<Response, PageError> {
    let caller = viewer.caller();
    let params = export_request(&caller, form.format, None);
    match queue_exclusive_task(&state, &caller, TaskKind::Export, &params).await {
        Ok(task) => Ok(Redirect::to(&format!("/tasks/{task}")).into_response()),
        Err(e) if e.code.status().is_client_error() => {
            let message = format!("The export was not started: {}", e.message);
            data_page(&state, &viewer, e.code.status(), Some(message)).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /data/exports/{id}/download`.
pub async fn download(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    Ok(export_file(&state, &viewer.caller(), &id).await?)
}
