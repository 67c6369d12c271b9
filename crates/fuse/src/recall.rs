//! The kernel's side of the coherent metadata cache (docs/metadata-cache.md):
//! when the leader recalls inodes, the kernel drops its attributes of them
//! (`inval_inode`) and the names the mount told it under them
//! (`inval_entry`), before the client acknowledges the recall.
//!
//! The notifications are sent from a thread of their own, never from a FUSE
//! request handler: the kernel may need locks a pending request holds. A
//! second pass a moment later catches an answer to a lookup that was on its
//! way to the kernel while the first pass ran (the kernel has no entry to
//! drop until it installs it). Were a notification to hang, the client
//! acknowledges after a bounded wait anyway: the kernel was told nothing
//! covered for longer than the lease.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use foldhash::{HashMap, HashSet};
use fuser::{INodeNo, Notifier};
use shardline_client::meta_cache_watch::RecallHook;

/// Names remembered at most; past it, entries are told to the kernel uncached.
const MAX_NAMES: usize = 1 << 20;
/// When the second pass runs.
const SECOND_PASS: Duration = Duration::from_millis(30);

/// Names per directory, and how many in all.
type NamesByDir = (HashMap<u64, HashSet<Vec<u8>>>, usize);

/// Names the kernel was told, with a nonzero entry TTL, per directory.
#[derive(Default)]
pub struct KernelNames {
    map: Mutex<NamesByDir>,
}

impl KernelNames {
    /// Remember `parent/name`; false when full (tell the kernel TTL 0).
    pub fn told(&self, parent: u64, name: &[u8]) -> bool {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if m.1 >= MAX_NAMES {
            return m.0.get(&parent).is_some_and(|s| s.contains(name));
        }
        if m.0.entry(parent).or_default().insert(name.to_vec()) {
            m.1 += 1;
        }
        true
    }

    /// [`KernelNames::told`] for each of `names` under `parent`, under one lock.
    pub fn told_all<'a>(&self, parent: u64, names: impl Iterator<Item = &'a [u8]>) -> Vec<bool> {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let (by_dir, count) = &mut *m;
        let known = by_dir.entry(parent).or_default();
        let told = names
            .map(|name| {
                if *count >= MAX_NAMES {
                    return known.contains(name);
                }
                if !known.contains(name) {
                    known.insert(name.to_vec());
                    *count += 1;
                }
                true
            })
            .collect();
        if known.is_empty() {
            by_dir.remove(&parent);
        }
        told
    }

    fn take(&self, dir: u64) -> Vec<Vec<u8>> {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let names: Vec<Vec<u8>> = m.0.remove(&dir).map(|s| s.into_iter().collect()).unwrap_or_default();
        m.1 -= names.len();
        names
    }
}

type Job = (Vec<u64>, tokio::sync::oneshot::Sender<()>);
/// When, and the inodes and names to drop again.
type SecondPass = (Instant, Vec<u64>, Vec<(u64, Vec<u8>)>);

/// The hook the client calls on each recall, and the thread serving it.
pub fn hook(notifier: Arc<OnceLock<Notifier>>, names: Arc<KernelNames>) -> std::io::Result<RecallHook> {
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new().name("fuse-recall".into()).spawn(move || {
        // Second passes due, oldest first.
        let mut later: VecDeque<SecondPass> = VecDeque::new();
        loop {
            let job = match later.front() {
                Some((due, ..)) => rx.recv_timeout(due.saturating_duration_since(Instant::now())),
                None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            };
            match job {
                Ok((inos, done)) => {
                    let Some(n) = notifier.get() else {
                        let _ = done.send(());
                        continue;
                    };
                    let mut entries = Vec::new();
                    for &ino in &inos {
                        entries.extend(names.take(ino).into_iter().map(|name| (ino, name)));
                    }
                    invalidate(n, &inos, &entries);
                    let _ = done.send(());
                    later.push_back((Instant::now() + SECOND_PASS, inos, entries));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            while later.front().is_some_and(|(due, ..)| *due <= Instant::now()) {
                if let (Some((_, inos, entries)), Some(n)) = (later.pop_front(), notifier.get()) {
                    invalidate(n, &inos, &entries);
                }
            }
        }
    })?;
    let tx = Mutex::new(tx);
    Ok(Arc::new(move |inos, done| {
        let _ = tx.lock().unwrap_or_else(|e| e.into_inner()).send((inos, done));
    }))
}

/// Errors are expected (the kernel may not know an inode or name) and ignored.
fn invalidate(n: &Notifier, inos: &[u64], entries: &[(u64, Vec<u8>)]) {
    for (dir, name) in entries {
        let _ = n.inval_entry(INodeNo(*dir), OsStr::from_bytes(name));
    }
    // Attributes only (offset -1): file data stays close-to-open, as before.
    for &ino in inos {
        let _ = n.inval_inode(INodeNo(ino), -1, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_taken_once_per_directory() {
        let k = KernelNames::default();
        assert!(k.told(1, b"a"));
        assert!(k.told(1, b"b"));
        assert!(k.told(2, b"a"));
        let mut got = k.take(1);
        got.sort();
        assert_eq!(got, vec![b"a".to_vec(), b"b".to_vec()]);
        assert!(k.take(1).is_empty());
        assert_eq!(k.take(2), vec![b"a".to_vec()]);
    }

    #[test]
    fn names_told_in_a_batch_are_noted_as_one_by_one() {
        let k = KernelNames::default();
        assert!(k.told(1, b"a"));
        let names: [&[u8]; 3] = [b"a", b"b", b"c"];
        assert_eq!(k.told_all(1, names.into_iter()), vec![true; 3]);
        let mut got = k.take(1);
        got.sort();
        assert_eq!(got, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()], "each name once");
        assert!(k.told_all(2, std::iter::empty()).is_empty());
        assert!(k.take(2).is_empty());
    }
}
