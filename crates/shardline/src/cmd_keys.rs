//! `shardline admin keys rotate | status`: key-encryption key rotation.
//!
//! The KEK only ever lives in clients (the metadata service stores wrapped
//! DEKs, never a KEK), so this command, holding the key file, does the work:
//!
//! 1. `rotate` adds a new version to the keyring file (written atomically,
//!    keeping the old versions) and makes it current;
//! 2. it pages through every file's wrapped DEK (`ListFileKeys`), unwraps
//!    each one still under an older version and re-wraps the same DEK under
//!    the new one — no data is rewritten — and stores it with `RewrapKey`,
//!    a compare-and-set through the Raft log, refused if the file's key
//!    changed meanwhile (such a file is looked at again in the next pass);
//! 3. `rotate --retire` finishes any re-wrapping left, then drops from the
//!    keyring file every old version that no file uses any more.
//!
//! Resumable: the new version is saved before any file is re-wrapped, so a
//! `rotate` that finds files under older versions of its key (a rotation cut
//! short, or files created by clients still holding the old current version)
//! finishes re-wrapping them instead of adding yet another version.
//! `status` shows how many files each version wraps (`CountFileKeys`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use shardline_crypto::{Keyring, WrapFormat};
use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_proto::v1::meta_response::Body as RBody;
use shardline_rpc::{MetaCallError, MetaClient, Role};
use shardline_types::ErrorCode;

use crate::cluster_file::ClusterFile;

/// Files asked for per `ListFileKeys` page.
const PAGE: u32 = 1000;
/// Re-wraps in flight at once.
const IN_FLIGHT: usize = 16;
/// Passes over the namespace before giving up on files whose keys keep
/// changing (or that clients keep creating under an old version).
const MAX_PASSES: usize = 5;

#[derive(Subcommand)]
pub enum KeysCmd {
    /// Make a new KEK version and re-wrap every file's data key under it,
    /// online (no data rewritten). Run it again to finish an interrupted
    /// rotation. With --retire: finish re-wrapping, then drop every old
    /// version no file uses from the key file (without a new version).
    Rotate {
        /// The keyring file (default: the cluster file's key_file).
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// Drop old versions that wrap no file, instead of making a new one.
        #[arg(long)]
        retire: bool,
        #[arg(long)]
        json: bool,
    },
    /// Which KEK versions wrap how many files.
    Status {
        /// The keyring file (default: the cluster file's key_file; its
        /// versions are shown when it is readable).
        #[arg(long)]
        key_file: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(file: &ClusterFile, cmd: KeysCmd) -> Result<()> {
    let meta = MetaClient::new(file.meta_addrs(), Duration::from_secs(15), file.identity(Role::Admin)?);
    match cmd {
        KeysCmd::Rotate { key_file, retire, json } => {
            let path = key_file.unwrap_or_else(|| file.key_file.clone());
            rotate(&Arc::new(meta), &path, retire, json).await
        }
        KeysCmd::Status { key_file, json } => {
            let ring = match key_file {
                Some(path) => Some(load(&path)?),
                None => Keyring::load(&file.key_file).ok(),
            };
            let counts = counts(&meta).await?;
            if json {
                println!("{}", status_json(ring.as_ref(), &counts));
            } else {
                print_table(ring.as_ref(), &counts);
            }
            Ok(())
        }
    }
}

fn load(path: &Path) -> Result<Keyring> {
    Keyring::load(path).with_context(|| format!("load the keyring {}", path.display()))
}

/// Files per (KEK id, version), from the metadata service.
async fn counts(meta: &MetaClient) -> Result<BTreeMap<(String, u32), u64>> {
    let resp = meta.call(Body::CountFileKeys(pb::CountFileKeys {})).await.context("count files per key version")?;
    let Some(RBody::FileKeyCounts(c)) = resp.body else { bail!("the metadata service sent no key counts") };
    Ok(c.counts.into_iter().map(|c| ((c.kek_id, c.kek_version), c.files)).collect())
}

/// Files of `ring`'s id under a version other than its current one.
fn pending(ring: &Keyring, counts: &BTreeMap<(String, u32), u64>) -> u64 {
    counts.iter().filter(|((id, v), _)| id == ring.id() && *v != ring.current_version()).map(|(_, n)| n).sum()
}

/// What one rotation did.
#[derive(Default)]
struct Pass {
    rewrapped: u64,
    changed_meanwhile: u64,
    deleted_meanwhile: u64,
}

async fn rotate(meta: &Arc<MetaClient>, path: &Path, retire: bool, json: bool) -> Result<()> {
    let mut ring = load(path)?;
    let mut counts = counts(meta).await?;
    let unheld: Vec<u32> =
        counts.keys().filter(|(id, v)| id == ring.id() && !ring.holds(*v)).map(|(_, v)| *v).collect();
    if !unheld.is_empty() {
        bail!(
            "files are wrapped under version(s) {unheld:?} of key {}, which {} does not hold: rotate with the key file that wrapped them",
            ring.id(),
            path.display()
        );
    }
    let resumed = pending(&ring, &counts) > 0;
    let mut new_version = None;
    if !retire && !resumed {
        let v = ring.add_version().context("add a key version")?;
        ring.save(path).with_context(|| format!("save the keyring {}", path.display()))?;
        new_version = Some(v);
    }
    let ring = Arc::new(ring);
    let mut done = Pass::default();
    for _ in 0..MAX_PASSES {
        if pending(&ring, &counts) == 0 {
            break;
        }
        rewrap_pass(meta, &ring, &mut done).await?;
        counts = self::counts(meta).await?;
    }
    let left = pending(&ring, &counts);
    if left > 0 {
        bail!(
            "{left} file(s) are still wrapped under old versions of key {} after {MAX_PASSES} passes (their keys keep changing, or clients holding an older key file create them): run rotate again",
            ring.id()
        );
    }
    let mut retired = Vec::new();
    if retire {
        let mut ring_mut = load(path)?;
        for v in ring_mut.versions() {
            let used = counts.get(&(ring_mut.id().to_string(), v)).copied().unwrap_or(0);
            if v != ring_mut.current_version() && used == 0 {
                ring_mut.retire(v)?;
                retired.push(v);
            }
        }
        if !retired.is_empty() {
            ring_mut.save(path).with_context(|| format!("save the keyring {}", path.display()))?;
        }
    }
    let ring = load(path)?;
    if json {
        let mut v = status_json(Some(&ring), &counts);
        v["new_version"] = serde_json::json!(new_version);
        v["resumed"] = serde_json::json!(resumed);
        v["rewrapped"] = serde_json::json!(done.rewrapped);
        v["changed_meanwhile"] = serde_json::json!(done.changed_meanwhile);
        v["deleted_meanwhile"] = serde_json::json!(done.deleted_meanwhile);
        v["retired"] = serde_json::json!(retired);
        println!("{v}");
    } else {
        match (new_version, resumed) {
            (Some(v), _) => println!("key {}: version {v} made current", ring.id()),
            (None, true) => println!("key {}: finishing the rotation to version {}", ring.id(), ring.current_version()),
            (None, false) => {}
        }
        println!(
            "re-wrapped {} file key(s) under version {} (no data rewritten)",
            done.rewrapped,
            ring.current_version()
        );
        if retired.is_empty() && retire {
            println!("no version to retire");
        } else if !retired.is_empty() {
            println!("retired version(s) {retired:?}: dropped from {}", path.display());
        }
        print_table(Some(&ring), &counts);
    }
    Ok(())
}

/// One pass over every file: re-wrap those under an older version of
/// `ring`'s key, up to [`IN_FLIGHT`] at once.
async fn rewrap_pass(meta: &Arc<MetaClient>, ring: &Arc<Keyring>, done: &mut Pass) -> Result<()> {
    let mut after = 0;
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let list = Body::ListFileKeys(pb::ListFileKeys { after_ino: after, limit: PAGE });
        let resp = meta.call(list).await.context("list the files' wrapped keys")?;
        let Some(RBody::FileKeys(page)) = resp.body else { bail!("the metadata service sent no file keys") };
        for entry in &page.files {
            after = after.max(entry.ino);
            let Some(key) = entry.key.clone() else { continue };
            if key.kek_id != ring.id() || key.kek_version == ring.current_version() {
                continue;
            }
            while tasks.len() >= IN_FLIGHT {
                tally(tasks.join_next().await, done)?;
            }
            let (meta, ring, ino) = (meta.clone(), ring.clone(), entry.ino);
            tasks.spawn(async move { rewrap_one(&meta, &ring, ino, key).await });
        }
        if !page.more || page.files.is_empty() {
            break;
        }
    }
    while let Some(r) = tasks.join_next().await {
        tally(Some(r), done)?;
    }
    Ok(())
}

enum Outcome {
    Rewrapped,
    Changed,
    Deleted,
}

fn tally(r: Option<Result<Result<Outcome>, tokio::task::JoinError>>, done: &mut Pass) -> Result<()> {
    match r {
        None => Ok(()),
        Some(Err(e)) => bail!("a re-wrap task failed: {e}"),
        Some(Ok(Err(e))) => Err(e),
        Some(Ok(Ok(o))) => {
            match o {
                Outcome::Rewrapped => done.rewrapped += 1,
                Outcome::Changed => done.changed_meanwhile += 1,
                Outcome::Deleted => done.deleted_meanwhile += 1,
            }
            Ok(())
        }
    }
}

/// Unwrap file `ino`'s DEK under its version, wrap it under the current
/// one, and store it if the file's key is still `old`.
async fn rewrap_one(meta: &MetaClient, ring: &Keyring, ino: u64, old: pb::WrappedKey) -> Result<Outcome> {
    // The wrap format (whether the file needs a manifest) is bound into the
    // wrapping: unwrapped in it and wrapped again in it, so rotation keeps it.
    let format = WrapFormat::from_wire(old.format).with_context(|| format!("the data key of inode {ino}"))?;
    let dek = ring
        .unwrap(&old.kek_id, old.kek_version, &old.wrapped, format)
        .with_context(|| format!("unwrap the data key of inode {ino}"))?;
    let (kek_version, wrapped) = ring.wrap(&dek, format);
    drop(dek);
    let key = pb::WrappedKey { kek_id: old.kek_id.clone(), kek_version, suite: old.suite, wrapped, format: old.format };
    let body = Body::RewrapKey(pb::RewrapKey { ino, expected: Some(old), key: Some(key) });
    match meta.call(body).await {
        Ok(_) => Ok(Outcome::Rewrapped),
        Err(MetaCallError::Service { code: ErrorCode::StaleEpoch, .. }) => Ok(Outcome::Changed),
        Err(MetaCallError::Service { code: ErrorCode::NotFound, .. }) => Ok(Outcome::Deleted),
        Err(e) => Err(e).with_context(|| format!("store the re-wrapped key of inode {ino}")),
    }
}

/// Every (id, version) counted or held, with files, whether the key file
/// holds it and whether it is current.
fn rows(ring: Option<&Keyring>, counts: &BTreeMap<(String, u32), u64>) -> Vec<(String, u32, u64, Option<bool>, bool)> {
    let mut all: BTreeMap<(String, u32), u64> = counts.clone();
    if let Some(r) = ring {
        for v in r.versions() {
            all.entry((r.id().to_string(), v)).or_insert(0);
        }
    }
    all.into_iter()
        .map(|((id, v), files)| {
            let held = ring.map(|r| r.id() == id && r.holds(v));
            let current = ring.is_some_and(|r| r.id() == id && r.current_version() == v);
            (id, v, files, held, current)
        })
        .collect()
}

fn status_json(ring: Option<&Keyring>, counts: &BTreeMap<(String, u32), u64>) -> serde_json::Value {
    let versions: Vec<serde_json::Value> = rows(ring, counts)
        .into_iter()
        .map(|(id, v, files, held, current)| {
            serde_json::json!({"kek_id": id, "version": v, "files": files, "in_key_file": held, "current": current})
        })
        .collect();
    serde_json::json!({
        "kek_id": ring.map(|r| r.id()),
        "current": ring.map(|r| r.current_version()),
        "files": counts.values().sum::<u64>(),
        "versions": versions,
    })
}

fn print_table(ring: Option<&Keyring>, counts: &BTreeMap<(String, u32), u64>) {
    println!("{:<24} {:>8} {:>10}  KEY FILE", "KEY ID", "VERSION", "FILES");
    for (id, v, files, held, current) in rows(ring, counts) {
        let state = match (held, current) {
            (_, true) => "held, current",
            (Some(true), false) => "held",
            (Some(false), _) => "not held",
            (None, _) => "-",
        };
        println!("{id:<24} {v:>8} {files:>10}  {state}");
    }
    if ring.is_none() {
        println!("(key file not readable: pass --key-file to see which versions it holds)");
    }
}
