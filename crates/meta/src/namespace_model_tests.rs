//! Model-based tests: random operation sequences applied to [`Namespace`]
//! and to a deliberately simple model (a map from full path to node id, with
//! link counts derived rather than maintained) must give the same result
//! codes, release the same chunks and leave identical trees.
//!
//! Seeded with a small PRNG so failures reproduce: the panic names the seed
//! and step.

use std::collections::{BTreeMap, BTreeSet};

use shardline_types::{ErrorCode, Ino, Layout, ROOT_INO};

use super::*;

const CHUNK: u64 = 4096;

/// splitmix64: tiny, seedable, good enough to drive tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

type Path = Vec<Vec<u8>>;
/// path → (kind, size, nlink, xattr names, first path of the same node).
type Tree = BTreeMap<Path, (Kind, u64, u32, Vec<Vec<u8>>, Path)>;

#[derive(Debug, Clone)]
enum Op {
    Create(Path, bool),
    Mkdir(Path),
    Unlink(Path),
    Rmdir(Path),
    Rename(Path, Path),
    Link(Path, Path),
    Symlink(Path, Vec<u8>),
    Truncate(Path, u64),
    Write(Path, u64, u64),
    SetXattr(Path, Vec<u8>, XattrMode),
    RemoveXattr(Path, Vec<u8>),
    Open(Path),
    Release(usize),
    /// A special file (or, now and then, a kind mknod must refuse).
    Mknod(Path, Kind),
}

fn random_path(rng: &mut Rng) -> Path {
    let depth = 1 + rng.below(3);
    // Names are bytes: one of them is not UTF-8 (Latin-1 "é").
    let mut p: Path = (0..depth).map(|_| rng.pick(&[&b"a"[..], b"b", b"caf\xe9"]).to_vec()).collect();
    if rng.below(60) == 0 {
        // Now and then a name the namespace must refuse.
        let bad = if rng.below(2) == 0 { vec![b'x'; MAX_NAME_LEN + 1] } else { b"..".to_vec() };
        if let Some(last) = p.last_mut() {
            *last = bad;
        }
    }
    p
}

fn random_op(rng: &mut Rng, handles: usize) -> Op {
    let p = random_path(rng);
    match rng.below(18) {
        0 | 1 => Op::Create(p, rng.below(2) == 0),
        2 | 3 => Op::Mkdir(p),
        4 => Op::Unlink(p),
        5 => Op::Rmdir(p),
        6 | 7 => Op::Rename(p, random_path(rng)),
        8 => Op::Link(p, random_path(rng)),
        9 => Op::Symlink(p, vec![b't'; 1 + rng.below(20) as usize]),
        10 => Op::Truncate(p, rng.below(6 * CHUNK)),
        11 | 12 => {
            let index = rng.below(5);
            Op::Write(p, index, index * CHUNK + 1 + rng.below(CHUNK))
        }
        13 => {
            let mode = *rng.pick(&[XattrMode::Any, XattrMode::Create, XattrMode::Replace]);
            Op::SetXattr(p, rng.pick(&[&b"user.x"[..], b"user.\xff"]).to_vec(), mode)
        }
        14 => Op::RemoveXattr(p, rng.pick(&[&b"user.x"[..], b"user.\xff"]).to_vec()),
        15 => Op::Open(p),
        16 => {
            let kinds = [Kind::Fifo, Kind::Socket, Kind::CharDevice, Kind::BlockDevice, Kind::Regular];
            Op::Mknod(p, *rng.pick(&kinds))
        }
        _ if handles > 0 => Op::Release(rng.below(handles as u64) as usize),
        _ => Op::Open(p),
    }
}

/// What an operation did, comparable between the namespace and the model:
/// the error code, or the sorted chunk indexes it released.
type Outcome = Result<Vec<u64>, ErrorCode>;

fn err<T>(code: ErrorCode) -> Result<T, ErrorCode> {
    Err(code)
}

// ---- the model ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MKind {
    File,
    Dir,
    Link,
    /// A fifo, socket or device: a file without data.
    Special(Kind),
}

#[derive(Debug, Clone)]
struct MNode {
    kind: MKind,
    size: u64,
    /// chunk index → version
    chunks: BTreeMap<u64, u64>,
    xattrs: BTreeSet<Vec<u8>>,
    opens: u32,
}

impl MNode {
    fn new(kind: MKind, size: u64) -> Self {
        MNode { kind, size, chunks: BTreeMap::new(), xattrs: BTreeSet::new(), opens: 0 }
    }
}

/// Every path (but the root, the empty path) names a node id.
struct Model {
    paths: BTreeMap<Path, u64>,
    nodes: BTreeMap<u64, MNode>,
    next: u64,
}

const MROOT: u64 = 0;

fn name_ok(name: &[u8]) -> Result<(), ErrorCode> {
    if name == b".." {
        return err(ErrorCode::InvalidArgument);
    }
    if name.len() > MAX_NAME_LEN {
        return err(ErrorCode::NameTooLong);
    }
    Ok(())
}

impl Model {
    fn new() -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(MROOT, MNode::new(MKind::Dir, 0));
        Model { paths: BTreeMap::new(), nodes, next: 1 }
    }

    fn id(&self, path: &[Vec<u8>]) -> Option<u64> {
        if path.is_empty() {
            Some(MROOT)
        } else {
            self.paths.get(path).copied()
        }
    }

    fn kind(&self, id: u64) -> MKind {
        self.nodes[&id].kind
    }

    /// Walk a path the way a client does: every step must be a directory
    /// (NotADirectory) holding the next name (NotFound).
    fn walk(&self, path: &[Vec<u8>]) -> Result<u64, ErrorCode> {
        let mut cur = MROOT;
        for i in 0..path.len() {
            if self.kind(cur) != MKind::Dir {
                return err(ErrorCode::NotADirectory);
            }
            cur = self.id(&path[..=i]).ok_or(ErrorCode::NotFound)?;
        }
        Ok(cur)
    }

    fn walk_parent(&self, path: &[Vec<u8>]) -> Result<u64, ErrorCode> {
        self.walk(&path[..path.len() - 1])
    }

    fn is_dir(&self, id: u64) -> Result<(), ErrorCode> {
        if self.kind(id) != MKind::Dir {
            return err(ErrorCode::NotADirectory);
        }
        Ok(())
    }

    /// Resolve a path's parent to a directory.
    fn parent_dir(&self, path: &[Vec<u8>]) -> Result<(), ErrorCode> {
        self.is_dir(self.walk_parent(path)?)
    }

    /// Creating `path`: parent walked, then the name checked, then the
    /// parent must be a directory.
    fn creatable(&self, path: &[Vec<u8>]) -> Result<(), ErrorCode> {
        let parent = self.walk_parent(path)?;
        name_ok(&path[path.len() - 1])?;
        self.is_dir(parent)
    }

    fn children(&self, dir: &[Vec<u8>]) -> Vec<Path> {
        self.paths.keys().filter(|p| p.len() == dir.len() + 1 && p.starts_with(dir)).cloned().collect()
    }

    fn add(&mut self, path: Path, node: MNode) {
        let id = self.next;
        self.next += 1;
        self.nodes.insert(id, node);
        self.paths.insert(path, id);
    }

    /// Remove a name; a node with no name and no open goes, releasing its chunks.
    fn drop_name(&mut self, path: &[Vec<u8>]) -> Vec<u64> {
        let Some(id) = self.paths.remove(path) else { return Vec::new() };
        self.collect(id)
    }

    fn collect(&mut self, id: u64) -> Vec<u64> {
        let named = self.paths.values().any(|&v| v == id);
        if named || self.nodes[&id].opens > 0 {
            return Vec::new();
        }
        self.nodes.remove(&id).map(|n| n.chunks.into_keys().collect()).unwrap_or_default()
    }

    fn apply(&mut self, op: &Op, handles: &mut Vec<u64>) -> Outcome {
        match op {
            Op::Create(p, exclusive) => {
                self.creatable(p)?;
                match self.id(p) {
                    Some(_) if *exclusive => err(ErrorCode::AlreadyExists),
                    Some(id) if self.kind(id) == MKind::Dir => err(ErrorCode::IsADirectory),
                    Some(_) => Ok(vec![]),
                    None => {
                        self.add(p.clone(), MNode::new(MKind::File, 0));
                        Ok(vec![])
                    }
                }
            }
            Op::Mkdir(p) => {
                self.creatable(p)?;
                if self.id(p).is_some() {
                    return err(ErrorCode::AlreadyExists);
                }
                self.add(p.clone(), MNode::new(MKind::Dir, 0));
                Ok(vec![])
            }
            Op::Symlink(p, target) => {
                self.creatable(p)?;
                if self.id(p).is_some() {
                    return err(ErrorCode::AlreadyExists);
                }
                self.add(p.clone(), MNode::new(MKind::Link, target.len() as u64));
                Ok(vec![])
            }
            Op::Mknod(p, kind) => {
                self.walk_parent(p)?;
                if !kind.is_special() {
                    return err(ErrorCode::InvalidArgument);
                }
                self.creatable(p)?;
                if self.id(p).is_some() {
                    return err(ErrorCode::AlreadyExists);
                }
                self.add(p.clone(), MNode::new(MKind::Special(*kind), 0));
                Ok(vec![])
            }
            Op::Unlink(p) => {
                self.parent_dir(p)?;
                let id = self.id(p).ok_or(ErrorCode::NotFound)?;
                if self.kind(id) == MKind::Dir {
                    return err(ErrorCode::IsADirectory);
                }
                Ok(self.drop_name(p))
            }
            Op::Rmdir(p) => {
                self.parent_dir(p)?;
                let id = self.id(p).ok_or(ErrorCode::NotFound)?;
                if self.kind(id) != MKind::Dir {
                    return err(ErrorCode::NotADirectory);
                }
                if !self.children(p).is_empty() {
                    return err(ErrorCode::NotEmpty);
                }
                self.drop_name(p);
                Ok(vec![])
            }
            Op::Rename(from, to) => {
                let parent = self.walk_parent(from)?;
                let new_parent = self.walk_parent(to)?;
                name_ok(&to[to.len() - 1])?;
                self.is_dir(parent)?;
                let id = self.id(from).ok_or(ErrorCode::NotFound)?;
                self.is_dir(new_parent)?;
                let is_dir = self.kind(id) == MKind::Dir;
                if is_dir && to.len() > from.len() && to.starts_with(from) {
                    return err(ErrorCode::InvalidArgument);
                }
                let mut released = vec![];
                if let Some(target) = self.id(to) {
                    if target == id {
                        return Ok(vec![]);
                    }
                    match (is_dir, self.kind(target) == MKind::Dir) {
                        (true, false) => return err(ErrorCode::NotADirectory),
                        (false, true) => return err(ErrorCode::IsADirectory),
                        (true, true) if !self.children(to).is_empty() => return err(ErrorCode::NotEmpty),
                        _ => released = self.drop_name(to),
                    }
                }
                let moved: Vec<(Path, u64)> =
                    self.paths.iter().filter(|(p, _)| p.starts_with(from)).map(|(p, id)| (p.clone(), *id)).collect();
                for (p, id) in moved {
                    self.paths.remove(&p);
                    let mut q = to.clone();
                    q.extend_from_slice(&p[from.len()..]);
                    self.paths.insert(q, id);
                }
                Ok(released)
            }
            Op::Link(src, dst) => {
                let id = self.walk(src)?;
                self.walk(&dst[..dst.len() - 1])?;
                name_ok(&dst[dst.len() - 1])?;
                if self.kind(id) == MKind::Dir {
                    return err(ErrorCode::PermissionDenied);
                }
                self.parent_dir(dst)?;
                if self.id(dst).is_some() {
                    return err(ErrorCode::AlreadyExists);
                }
                self.paths.insert(dst.clone(), id);
                Ok(vec![])
            }
            Op::Truncate(p, size) => {
                let id = self.walk(p)?;
                let node = self.nodes.get_mut(&id).ok_or(ErrorCode::Internal)?;
                match node.kind {
                    MKind::Dir => err(ErrorCode::IsADirectory),
                    MKind::Link | MKind::Special(_) => err(ErrorCode::InvalidArgument),
                    MKind::File => {
                        node.size = *size;
                        // A chunk goes when it starts at or past the new size.
                        let gone: Vec<u64> = node.chunks.keys().copied().filter(|i| i * CHUNK >= *size).collect();
                        for i in &gone {
                            node.chunks.remove(i);
                        }
                        Ok(gone)
                    }
                }
            }
            Op::Write(p, index, new_size) => {
                let id = self.walk(p)?;
                let node = self.nodes.get_mut(&id).ok_or(ErrorCode::Internal)?;
                if node.kind != MKind::File {
                    return err(ErrorCode::IsADirectory);
                }
                let old = node.chunks.insert(*index, 1);
                node.size = node.size.max(*new_size);
                Ok(old.map(|_| vec![*index]).unwrap_or_default())
            }
            Op::SetXattr(p, name, mode) => {
                let id = self.walk(p)?;
                let node = self.nodes.get_mut(&id).ok_or(ErrorCode::Internal)?;
                match (mode, node.xattrs.contains(name)) {
                    (XattrMode::Create, true) => err(ErrorCode::AlreadyExists),
                    (XattrMode::Replace, false) => err(ErrorCode::NotFound),
                    _ => {
                        node.xattrs.insert(name.clone());
                        Ok(vec![])
                    }
                }
            }
            Op::RemoveXattr(p, name) => {
                let id = self.walk(p)?;
                let node = self.nodes.get_mut(&id).ok_or(ErrorCode::Internal)?;
                if node.xattrs.remove(name) {
                    Ok(vec![])
                } else {
                    err(ErrorCode::NotFound)
                }
            }
            Op::Open(p) => {
                let id = self.walk(p)?;
                let node = self.nodes.get_mut(&id).ok_or(ErrorCode::Internal)?;
                if node.kind == MKind::Dir {
                    return err(ErrorCode::IsADirectory);
                }
                node.opens += 1;
                handles.push(id);
                Ok(vec![])
            }
            Op::Release(h) => {
                let id = handles.remove(*h);
                let node = self.nodes.get_mut(&id).ok_or(ErrorCode::Internal)?;
                node.opens -= 1;
                Ok(self.collect(id))
            }
        }
    }

    /// path → (kind, size, nlink, xattr names, first path of the same node).
    fn tree(&self) -> Tree {
        let mut first: BTreeMap<u64, Path> = BTreeMap::new();
        for (p, id) in &self.paths {
            first.entry(*id).or_insert_with(|| p.clone());
        }
        let mut out = BTreeMap::new();
        for (p, id) in &self.paths {
            let node = &self.nodes[id];
            let (kind, nlink) = match node.kind {
                MKind::Dir => {
                    let subdirs = self.children(p).iter().filter(|c| self.kind(self.paths[*c]) == MKind::Dir).count();
                    (Kind::Directory, 2 + subdirs as u32)
                }
                MKind::File => (Kind::Regular, self.paths.values().filter(|&&v| v == *id).count() as u32),
                MKind::Link => (Kind::Symlink, self.paths.values().filter(|&&v| v == *id).count() as u32),
                MKind::Special(k) => (k, self.paths.values().filter(|&&v| v == *id).count() as u32),
            };
            let xattrs = node.xattrs.iter().cloned().collect();
            out.insert(p.clone(), (kind, node.size, nlink, xattrs, first[id].clone()));
        }
        out
    }
}

// ---- driving the namespace the way a client does: by parent inode and name ----

fn walk(ns: &Namespace, path: &[Vec<u8>]) -> OpResult<Ino> {
    let mut cur = ROOT_INO;
    for name in path {
        cur = ns.lookup(cur, name)?.ino;
    }
    Ok(cur)
}

fn key() -> NewInode {
    NewInode {
        manifest: None,
        mode: 0o644,
        uid: 0,
        gid: 0,
        key: Some(FileKey { kek_id: "k".into(), kek_version: 1, suite: 1, wrapped: vec![7], format: 0 }),
    }
}

fn released(r: Released) -> Vec<u64> {
    let mut v: Vec<u64> = r.chunks.iter().map(|c| c.index).collect();
    v.sort_unstable();
    v
}

fn apply_ns(ns: &mut Namespace, op: &Op, now: i64, handles: &mut Vec<Ino>) -> OpResult<Vec<u64>> {
    let last = |p: &Path| p[p.len() - 1].clone();
    Ok(match op {
        Op::Create(p, exclusive) => {
            ns.create(walk(ns, &p[..p.len() - 1])?, &last(p), key(), *exclusive, now)?;
            vec![]
        }
        Op::Mkdir(p) => {
            ns.mkdir(walk(ns, &p[..p.len() - 1])?, &last(p), key(), now)?;
            vec![]
        }
        Op::Symlink(p, target) => {
            ns.symlink(walk(ns, &p[..p.len() - 1])?, &last(p), target, key(), now)?;
            vec![]
        }
        Op::Mknod(p, kind) => {
            ns.mknod(walk(ns, &p[..p.len() - 1])?, &last(p), *kind, key(), 0x0801, now)?;
            vec![]
        }
        Op::Unlink(p) => released(ns.unlink(walk(ns, &p[..p.len() - 1])?, &last(p), now)?),
        Op::Rmdir(p) => {
            ns.rmdir(walk(ns, &p[..p.len() - 1])?, &last(p), now)?;
            vec![]
        }
        Op::Rename(from, to) => {
            let parent = walk(ns, &from[..from.len() - 1])?;
            let new_parent = walk(ns, &to[..to.len() - 1])?;
            released(ns.rename(parent, &last(from), new_parent, &last(to), now)?)
        }
        Op::Link(src, dst) => {
            let ino = walk(ns, src)?;
            ns.link(ino, walk(ns, &dst[..dst.len() - 1])?, &last(dst), now)?;
            vec![]
        }
        Op::Truncate(p, size) => {
            let attrs = SetAttrs { size: Some(*size), ..Default::default() };
            released(ns.set_attr(walk(ns, p)?, &attrs, now)?.1)
        }
        Op::Write(p, index, new_size) => {
            let c = ChunkRef { index: *index, version: now as u64, sealed_len: 1, pg: 0, format: 2, data_shards: 0 };
            released(ns.commit_chunk(walk(ns, p)?, c, *new_size, None, now)?)
        }
        Op::SetXattr(p, name, mode) => {
            ns.set_xattr(walk(ns, p)?, name, b"v", *mode, now)?;
            vec![]
        }
        Op::RemoveXattr(p, name) => {
            ns.remove_xattr(walk(ns, p)?, name, now)?;
            vec![]
        }
        Op::Open(p) => {
            let ino = walk(ns, p)?;
            ns.open(ino, 1)?;
            handles.push(ino);
            vec![]
        }
        Op::Release(h) => {
            let ino = handles.remove(*h);
            released(ns.release(ino, 1)?)
        }
    })
}

fn ns_tree(ns: &Namespace) -> Tree {
    let mut out = BTreeMap::new();
    let mut first: BTreeMap<Ino, Path> = BTreeMap::new();
    let mut stack: Vec<(Ino, Path)> = vec![(ROOT_INO, vec![])];
    let mut all = Vec::new();
    while let Some((dir, path)) = stack.pop() {
        let mut after = Vec::new();
        loop {
            let (page, more) = ns.readdir(dir, &after, 7).unwrap_or_else(|e| panic!("readdir: {e:?}"));
            for (name, ino, kind) in page {
                let mut p = path.clone();
                p.push(name.clone());
                if kind == Kind::Directory {
                    stack.push((ino, p.clone()));
                }
                all.push((p, ino));
                after = name;
            }
            if !more {
                break;
            }
        }
    }
    all.sort();
    for (p, ino) in all {
        let inode = ns.get(ino).unwrap_or_else(|e| panic!("dangling entry: {e:?}"));
        let xattrs = ns.list_xattr(ino).unwrap_or_default();
        let first_path = first.entry(ino).or_insert_with(|| p.clone()).clone();
        out.insert(p, (inode.kind, inode.size, inode.nlink, xattrs, first_path));
    }
    out
}

/// Which operations succeeded and failed, by name (to show the runs reach
/// both outcomes of every operation).
type Coverage = BTreeMap<String, (usize, usize)>;

fn op_name(op: &Op) -> String {
    format!("{op:?}").split('(').next().unwrap_or_default().to_string()
}

fn run(seed: u64, steps: usize) -> Coverage {
    let mut coverage = Coverage::new();
    let mut rng = Rng(seed);
    let mut ns = Namespace::new(Layout { chunk_size: CHUNK as u32, data_shards: 4, parity_shards: 2 });
    let mut model = Model::new();
    let (mut ns_handles, mut model_handles) = (Vec::new(), Vec::new());
    for step in 0..steps {
        let op = random_op(&mut rng, model_handles.len());
        let got = apply_ns(&mut ns, &op, step as i64 + 1, &mut ns_handles).map_err(|e| e.code);
        let want = model.apply(&op, &mut model_handles);
        assert_eq!(got, want, "seed {seed} step {step}: {op:?}");
        let c = coverage.entry(op_name(&op)).or_default();
        if got.is_ok() {
            c.0 += 1;
        } else {
            c.1 += 1;
        }
        assert_eq!(ns_handles.len(), model_handles.len());
        if step % 10 == 0 || step + 1 == steps {
            assert_eq!(ns_tree(&ns), model.tree(), "seed {seed} step {step}: trees differ after {op:?}");
            // Orphans (open but unlinked) count in both.
            assert_eq!(ns.inode_count(), model.nodes.len(), "seed {seed} step {step}: inode counts differ");
            assert_eq!(ns.get(ROOT_INO).map(|r| r.nlink).ok(), Some(2 + count_root_subdirs(&model)));
            assert!(ns.pg_index_is_consistent(), "seed {seed} step {step}: the PG index differs from the chunks");
            assert!(ns.file_parents_are_consistent(), "seed {seed} step {step}: the file-parents index differs");
        }
    }
    // Releasing every handle leaves no orphan behind.
    while let Some(ino) = ns_handles.pop() {
        ns.release(ino, 1).unwrap_or_else(|e| panic!("seed {seed}: release: {e:?}"));
    }
    assert_eq!(ns.inode_count(), 1 + model.paths.values().collect::<BTreeSet<_>>().len(), "seed {seed}");
    assert!(ns.pg_index_is_consistent(), "seed {seed}: the PG index differs from the chunks after releases");
    coverage
}

fn count_root_subdirs(model: &Model) -> u32 {
    model.children(&[]).iter().filter(|c| model.kind(model.paths[*c]) == MKind::Dir).count() as u32
}

#[test]
fn random_operations_match_the_model() {
    let mut total = Coverage::new();
    for seed in 0..300 {
        for (name, (ok, failed)) in run(seed, 400) {
            let t = total.entry(name).or_default();
            t.0 += ok;
            t.1 += failed;
        }
    }
    assert_eq!(total.len(), 14, "every operation is generated: {total:?}");
    for (name, (ok, failed)) in &total {
        // Release is only generated for open handles, so it cannot fail.
        let must_fail = name != "Release";
        assert!(*ok > 100 && (*failed > 100 || !must_fail), "{name} needs both outcomes: {total:?}");
    }
}

#[test]
fn long_random_run_matches_the_model() {
    run(0xDEC0DE, 5000);
    // Long runs grow deep trees: renames of populated directories happen.
    let mut seeds_with_deep_moves = 0;
    for seed in 1000..1010 {
        seeds_with_deep_moves += usize::from(run(seed, 2000).get("Rename").is_some_and(|c| c.0 > 0));
    }
    assert_eq!(seeds_with_deep_moves, 10);
}
