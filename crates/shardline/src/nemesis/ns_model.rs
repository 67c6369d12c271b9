//! The sequential specification of one directory for the linearizability
//! checker (`tests/harness/linearizability.rs`): three file names
//! (create, unlink, rename among them, hard link, lookup) and two directory
//! names (mkdir, rmdir, rename between them, lookup). Directories stay
//! empty. A create or mkdir whose reply was lost makes an entry whose inode
//! number is learned when a lookup sees it.

use std::collections::{BTreeSet, HashSet};

use crate::linearizability::Model;

pub const FILES: [&str; 3] = ["a", "b", "c"];
pub const DIRS: [&str; 2] = ["d", "e"];
/// Names in the state: files first, then directories.
pub const NAMES: usize = FILES.len() + DIRS.len();

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsIn {
    /// Exclusive create of file `name` (an index into FILES); `op` is the
    /// operation's index in its history.
    Create {
        name: usize,
        op: usize,
    },
    Unlink {
        name: usize,
    },
    /// Among files, or among directories (indexes into the state).
    Rename {
        from: usize,
        to: usize,
    },
    /// Hard link to inode `ino` (learned by a lookup) as file `to`.
    Link {
        ino: u64,
        to: usize,
    },
    /// `name` indexes the state (so DIRS start at FILES.len()).
    Mkdir {
        name: usize,
        op: usize,
    },
    Rmdir {
        name: usize,
    },
    Lookup {
        name: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsOut {
    /// Create, mkdir, link or lookup: the inode number.
    Ino(u64),
    Done,
    NotFound,
    Exists,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Val {
    Ino(u64),
    /// Made by the create/mkdir with this history index, reply lost.
    Unseen(usize),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct NsState {
    pub names: [Option<Val>; NAMES],
    /// Inode numbers already bound to an unknown-outcome create.
    pub bound: BTreeSet<u64>,
}

pub struct Namespace {
    /// Inode numbers returned by creates and mkdirs that completed: an
    /// unseen entry is none of these.
    pub created: HashSet<u64>,
}

impl Model for Namespace {
    type State = NsState;
    type Input = NsIn;
    type Output = NsOut;

    fn init(&self) -> NsState {
        NsState::default()
    }

    fn step(&self, s: &NsState, input: &NsIn, out: Option<&NsOut>) -> Option<NsState> {
        let mut n = s.clone();
        match *input {
            NsIn::Create { name, op } | NsIn::Mkdir { name, op } => match (&s.names[name], out) {
                (Some(_), None | Some(NsOut::Exists)) => {}
                (None, None) => n.names[name] = Some(Val::Unseen(op)),
                (None, Some(NsOut::Ino(ino))) if !s.bound.contains(ino) => n.names[name] = Some(Val::Ino(*ino)),
                _ => return None,
            },
            NsIn::Unlink { name } | NsIn::Rmdir { name } => match (&s.names[name], out) {
                (Some(_), None | Some(NsOut::Done)) => n.names[name] = None,
                (None, None | Some(NsOut::NotFound)) => {}
                _ => return None,
            },
            NsIn::Rename { from, to } => match (&s.names[from], out) {
                (Some(_), None | Some(NsOut::Done)) => {
                    // The same inode under both names (a hard link): nothing happens.
                    if from != to && s.names[from] != s.names[to] {
                        n.names[to] = n.names[from].take();
                    }
                }
                (None, None | Some(NsOut::NotFound)) => {}
                _ => return None,
            },
            NsIn::Link { ino, to } => {
                let alive = s.names[..FILES.len()].contains(&Some(Val::Ino(ino)));
                match (alive, &s.names[to], out) {
                    (false, _, None | Some(NsOut::NotFound)) => {}
                    (true, Some(_), None | Some(NsOut::Exists)) => {}
                    (true, None, None) => n.names[to] = Some(Val::Ino(ino)),
                    (true, None, Some(NsOut::Ino(got))) if *got == ino => n.names[to] = Some(Val::Ino(ino)),
                    _ => return None,
                }
            }
            NsIn::Lookup { name } => match (&s.names[name], out) {
                (_, None) => {}
                (None, Some(NsOut::NotFound)) => {}
                (Some(Val::Ino(a)), Some(NsOut::Ino(b))) if a == b => {}
                (Some(Val::Unseen(_)), Some(NsOut::Ino(b))) if !self.created.contains(b) && !s.bound.contains(b) => {
                    n.names[name] = Some(Val::Ino(*b));
                    n.bound.insert(*b);
                }
                _ => return None,
            },
        }
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linearizability::{check, Operation};

    fn op(client: usize, input: NsIn, output: Option<NsOut>, call: u64, ret: Option<u64>) -> Operation<NsIn, NsOut> {
        Operation { client, input, output, call, ret }
    }

    fn model(created: &[u64]) -> Namespace {
        Namespace { created: created.iter().copied().collect() }
    }

    #[test]
    fn hard_links_share_an_inode_and_survive_an_unlink() {
        let h = vec![
            op(0, NsIn::Create { name: 0, op: 0 }, Some(NsOut::Ino(10)), 0, Some(1)),
            op(0, NsIn::Link { ino: 10, to: 1 }, Some(NsOut::Ino(10)), 2, Some(3)),
            op(0, NsIn::Unlink { name: 0 }, Some(NsOut::Done), 4, Some(5)),
            op(1, NsIn::Lookup { name: 1 }, Some(NsOut::Ino(10)), 6, Some(7)),
            // Renaming a name onto another link of the same inode changes nothing.
            op(0, NsIn::Link { ino: 10, to: 2 }, Some(NsOut::Ino(10)), 8, Some(9)),
            op(0, NsIn::Rename { from: 1, to: 2 }, Some(NsOut::Done), 10, Some(11)),
            op(1, NsIn::Lookup { name: 1 }, Some(NsOut::Ino(10)), 12, Some(13)),
        ];
        assert!(check(&model(&[10]), &h, 100_000).is_linearizable());
        let mut bad = h.clone();
        bad.push(op(1, NsIn::Lookup { name: 0 }, Some(NsOut::Ino(10)), 14, Some(15)));
        assert!(!check(&model(&[10]), &bad, 100_000).is_linearizable());
    }

    #[test]
    fn directories_replace_empty_directories_and_lost_mkdirs_show_up_late() {
        let (d, e) = (FILES.len(), FILES.len() + 1);
        let h = vec![
            op(0, NsIn::Mkdir { name: d, op: 0 }, None, 0, None),
            op(1, NsIn::Lookup { name: d }, Some(NsOut::NotFound), 1, Some(2)),
            op(1, NsIn::Lookup { name: d }, Some(NsOut::Ino(7)), 3, Some(4)),
            op(1, NsIn::Mkdir { name: e, op: 3 }, Some(NsOut::Ino(8)), 5, Some(6)),
            op(1, NsIn::Rename { from: d, to: e }, Some(NsOut::Done), 7, Some(8)),
            op(1, NsIn::Lookup { name: e }, Some(NsOut::Ino(7)), 9, Some(10)),
            op(1, NsIn::Rmdir { name: d }, Some(NsOut::NotFound), 11, Some(12)),
        ];
        assert!(check(&model(&[8]), &h, 100_000).is_linearizable());
        // An acknowledged rmdir that is not reflected later is caught.
        let mut bad = h.clone();
        bad.push(op(0, NsIn::Rmdir { name: e }, Some(NsOut::Done), 13, Some(14)));
        bad.push(op(1, NsIn::Lookup { name: e }, Some(NsOut::Ino(7)), 15, Some(16)));
        assert!(!check(&model(&[8]), &bad, 100_000).is_linearizable());
    }
}
