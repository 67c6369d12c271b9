//! The docs stay true to the tree: ARCHITECTURE.md's code map names every
//! source file and its test list every black-box test target, and CI runs
//! the README's test command (issue 9 item 15: stale text).

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())).flatten() {
        let p = entry.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn the_code_map_names_every_source_file() {
    let arch = read("ARCHITECTURE.md");
    let mut files = Vec::new();
    for krate in std::fs::read_dir(root().join("crates")).expect("crates").flatten() {
        let src = krate.path().join("src");
        if src.is_dir() {
            rust_files(&src, &mut files);
        }
    }
    assert!(files.len() > 50, "found only {} source files", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
        .filter(|name| {
            // Entry points, error enums and test files are found by convention.
            !(matches!(name.as_str(), "lib.rs" | "main.rs" | "error.rs" | "mod.rs")
                || name.ends_with("_tests.rs")
                || name.starts_with("tests"))
        })
        .filter(|name| !arch.contains(name.as_str()))
        .collect();
    assert!(missing.is_empty(), "ARCHITECTURE.md does not mention: {missing:?}");
}

#[test]
fn the_test_list_names_every_black_box_test() {
    let arch = read("ARCHITECTURE.md");
    let manifest = read("crates/shardline/Cargo.toml");
    let targets: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.trim().strip_prefix("path = \"../../tests/"))
        .filter_map(|l| l.strip_suffix('"'))
        .collect();
    assert!(targets.len() >= 8, "found only {targets:?}");
    let missing: Vec<&&str> = targets.iter().filter(|t| !arch.contains(&format!("tests/{t}"))).collect();
    assert!(missing.is_empty(), "ARCHITECTURE.md's test list lacks: {missing:?}");
}

#[test]
fn ci_runs_the_readmes_test_command() {
    let readme = read("README.md");
    let ci = read(".ci/run");
    assert!(readme.contains("\ntools/test\n"), "the README no longer shows `tools/test` as the test command");
    assert!(ci.lines().any(|l| l.trim() == "exec tools/test"), ".ci/run does not end by running tools/test");
}

/// The README's first command is `cargo run --release -- demo`: with more
/// than one binary in the package (`shardline-nemesis`), `cargo run` picks
/// one only through `default-run`.
#[test]
fn the_readmes_cargo_run_picks_the_shardline_binary() {
    let readme = read("README.md");
    assert!(readme.contains("cargo run --release -- demo"), "the README's first command changed");
    let manifest: toml::Value = toml::from_str(&read("crates/shardline/Cargo.toml")).expect("parse Cargo.toml");
    let bins = manifest.get("bin").and_then(|b| b.as_array()).map_or(0, |b| b.len());
    if bins > 1 {
        assert_eq!(
            manifest["package"].get("default-run").and_then(|v| v.as_str()),
            Some("shardline"),
            "{bins} binaries and no default-run: `cargo run -- demo` cannot choose"
        );
    }
}
