//! The core's one integration-test binary: property tests against naive oracles.

mod phone;
mod resolution;
