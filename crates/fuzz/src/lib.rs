//! A small fuzz driver that runs on stable Rust, for the `fuzz_*` tests of
//! the crates that read bytes from the network (`rpc`, `meta`, `data`).
//!
//! There is no coverage instrumentation: inputs are random bytes and, mostly,
//! mutations ([`mutate`]) of valid encoded messages each target supplies as
//! seeds, so that inputs get past the first decoding checks. A target may
//! say an input went "deep" (reached its last stage); such inputs join the
//! corpus and are mutated further. Every panic is reported with the input
//! that caused it (in hex) and the seed to reproduce the run ([`driver`]).
//!
//! Budget: by default a fixed number of inputs per target (quick, for CI);
//! `SHARDLINE_FUZZ_SECS=N` runs each target for N seconds instead
//! (`tools/fuzz`), `SHARDLINE_FUZZ_ITERS=N` for N inputs, and
//! `SHARDLINE_FUZZ_SEED=S` fixes the seed of a timed run.

pub mod driver;
pub mod mutate;
pub mod rng;

pub use driver::{run, Target};
pub use mutate::mutate;
pub use rng::Rng;
