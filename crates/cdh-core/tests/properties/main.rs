//! The core's one integration-test binary: property tests against naive oracles.

mod normalize;
mod phone;
mod resolution;
