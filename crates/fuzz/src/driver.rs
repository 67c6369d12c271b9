//! Runs one fuzz target: picks inputs (random bytes, or mutations of the
//! corpus), calls the target on each, reports how many ran, and turns a
//! panic into a test failure naming the input and the seed.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crate::{mutate, Rng};

/// Largest corpus kept (seeds plus inputs that went deep).
const MAX_CORPUS: usize = 1024;

/// One fuzz target: a name (as `tools/fuzz` reports it) and how many inputs
/// a default (CI) run feeds it.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub name: &'static str,
    pub default_inputs: u64,
}

/// How long a run lasts.
enum Budget {
    Inputs(u64),
    Until(Instant),
}

impl Budget {
    fn from_env(default_inputs: u64) -> Budget {
        let var = |k: &str| std::env::var(k).ok().and_then(|v| v.trim().parse::<u64>().ok());
        match (var("SHARDLINE_FUZZ_SECS"), var("SHARDLINE_FUZZ_ITERS")) {
            (Some(secs), _) => Budget::Until(Instant::now() + Duration::from_secs(secs)),
            (None, Some(n)) => Budget::Inputs(n),
            (None, None) => Budget::Inputs(default_inputs),
        }
    }

    fn more(&self, done: u64) -> bool {
        match self {
            Budget::Inputs(n) => done < *n,
            // The clock is read every 16 inputs.
            Budget::Until(t) => !done.is_multiple_of(16) || Instant::now() < *t,
        }
    }
}

/// Feed `target` inputs until the budget is spent; returns how many ran.
///
/// `target` returns whether the input reached its last stage (then it joins
/// the corpus). A panic fails the calling test with the input in hex.
pub fn run(t: Target, seeds: Vec<Vec<u8>>, mut target: impl FnMut(&[u8]) -> bool) -> u64 {
    let seed =
        std::env::var("SHARDLINE_FUZZ_SEED").ok().and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or_else(|| {
            match std::env::var("SHARDLINE_FUZZ_SECS") {
                // Timed runs explore; default runs repeat exactly.
                Ok(_) => std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1),
                Err(_) => 0x5EED ^ t.name.len() as u64,
            }
        });
    let budget = Budget::from_env(t.default_inputs);
    let mut rng = Rng::new(seed);
    let mut corpus = seeds;
    let n_seeds = corpus.len();
    let (mut done, mut deep) = (0u64, 0u64);
    while budget.more(done) {
        // Seeds themselves first, then mostly mutations, sometimes noise.
        let input = if (done as usize) < corpus.len() {
            corpus[done as usize].clone()
        } else if corpus.is_empty() || rng.one_in(10) {
            let n = rng.below(256);
            rng.bytes(n)
        } else {
            let a = rng.below(corpus.len());
            let b = rng.below(corpus.len());
            mutate(&mut rng, &corpus[a], &corpus[b])
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| target(&input)));
        match outcome {
            Ok(true) => {
                deep += 1;
                if corpus.len() < MAX_CORPUS {
                    corpus.push(input);
                } else if n_seeds < MAX_CORPUS {
                    let slot = n_seeds + rng.below(MAX_CORPUS - n_seeds);
                    corpus[slot] = input;
                }
            }
            Ok(false) => {}
            Err(_) => panic!(
                "fuzz target {} panicked on input #{done} (SHARDLINE_FUZZ_SEED={seed}), {} bytes: {}",
                t.name,
                input.len(),
                hex(&input)
            ),
        }
        done += 1;
    }
    println!("fuzz target {}: {done} inputs ({deep} reached the last stage), seed {seed}", t.name);
    done
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes from a hex string (a reported input, replayed in a regression
/// test).
pub fn unhex(s: &str) -> Vec<u8> {
    let s: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    s.chunks(2)
        .filter(|p| p.len() == 2)
        .filter_map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_the_default_number_of_inputs_and_grows_the_corpus() {
        let t = Target { name: "probe", default_inputs: 500 };
        let mut seen_seed = false;
        let mut calls = 0;
        let n = run(t, vec![b"seed".to_vec()], |input| {
            calls += 1;
            seen_seed |= input == b"seed";
            input.starts_with(b"se")
        });
        if std::env::var("SHARDLINE_FUZZ_SECS").is_err() && std::env::var("SHARDLINE_FUZZ_ITERS").is_err() {
            assert_eq!(n, 500);
        }
        assert_eq!(calls, n);
        assert!(seen_seed, "seeds are fed as they are first");
    }

    #[test]
    #[should_panic(expected = "fuzz target boom panicked")]
    fn a_panic_names_the_target_and_input() {
        let t = Target { name: "boom", default_inputs: 100 };
        run(t, vec![b"x".to_vec()], |input| {
            assert!(input != b"x", "found it");
            false
        });
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(unhex(&hex(&[0, 1, 0xab, 0xff])), vec![0, 1, 0xab, 0xff]);
    }
}
