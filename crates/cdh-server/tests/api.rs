//! The API end to end: the app spawned on port 0 against SQLite, and again against
//! PostgreSQL (a fresh schema per test on 127.0.0.1:5432, or `CDH_TEST_PG_URL`).
//! Modules live in `tests/api/`.

#[path = "api/support.rs"]
mod support;

#[path = "api/ops.rs"]
mod ops;

#[path = "api/browser.rs"]
mod browser;

#[path = "api/bootstrap.rs"]
mod bootstrap;
#[path = "api/conflicts.rs"]
mod conflicts;
#[path = "api/console.rs"]
mod console;
#[path = "api/console_browser.rs"]
mod console_browser;
#[path = "api/console_sign_in.rs"]
mod console_sign_in;
#[path = "api/console_smoke.rs"]
mod console_smoke;
#[path = "api/console_tutorial.rs"]
mod console_tutorial;
#[path = "api/contacts.rs"]
mod contacts;
#[path = "api/exports.rs"]
mod exports;
#[path = "api/fuzz.rs"]
mod fuzz;
#[path = "api/imports.rs"]
mod imports;
#[path = "api/isolation.rs"]
mod isolation;
#[path = "api/isolation_console.rs"]
mod isolation_console;
#[path = "api/organizations.rs"]
mod organizations;
#[path = "api/profiles.rs"]
mod profiles;
#[path = "api/scenarios.rs"]
mod scenarios;
#[path = "api/scope.rs"]
mod scope;
#[path = "api/tasks.rs"]
mod tasks;
#[path = "api/unification.rs"]
mod unification;
#[path = "api/users.rs"]
mod users;
#[path = "api/webhooks.rs"]
mod webhooks;
