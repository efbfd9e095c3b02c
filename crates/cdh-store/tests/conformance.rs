//! One conformance suite, run against both adapters: SQLite (a temporary file) and
//! PostgreSQL (a fresh schema per test on 127.0.0.1:5432, or `CDH_TEST_PG_URL`).

mod support;

mod apply;
mod batches;
mod catalog;
mod checker;
mod concurrency;
mod conflicts;
mod connections;
mod crash;
mod exports;
mod import_crash;
mod imports;
mod lookups;
mod migrations;
mod model;
mod name_search;
mod previews;
mod profiles_api;
mod realms;
mod unification;
mod users;
mod wal;
mod webhooks;
