//! The worker's library half: the built-in tools and the worker runtime.
pub mod tools;
