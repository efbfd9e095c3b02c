//! The core's one integration-test binary: property tests against naive oracles.

mod constrained;
mod normalize;
mod phone;
mod resolution;
