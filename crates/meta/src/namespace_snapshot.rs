//! Namespace ⇄ snapshot v1 conversion (a child of `namespace` so it sees the
//! private tables). Decoding checks what later code relies on: every
//! directory has an entry table and every entry names an existing inode.

use std::collections::BTreeMap;

use imbl::OrdMap;
use shardline_types::Layout;

use super::{ChunkRef, FileKey, Inode, Kind, Namespace, StoredManifest};
use crate::snapshot::{corrupt, v1};
use crate::MetaError;

fn kind_to(k: Kind) -> u32 {
    match k {
        Kind::Regular => 0,
        Kind::Directory => 1,
        Kind::Symlink => 2,
        Kind::Fifo => 3,
        Kind::Socket => 4,
        Kind::CharDevice => 5,
        Kind::BlockDevice => 6,
    }
}

fn kind_from(k: u32) -> Result<Kind, MetaError> {
    match k {
        0 => Ok(Kind::Regular),
        1 => Ok(Kind::Directory),
        2 => Ok(Kind::Symlink),
        3 => Ok(Kind::Fifo),
        4 => Ok(Kind::Socket),
        5 => Ok(Kind::CharDevice),
        6 => Ok(Kind::BlockDevice),
        _ => Err(corrupt("unknown inode kind")),
    }
}

fn inode_to(i: &Inode) -> v1::Inode {
    v1::Inode {
        ino: i.ino,
        kind: kind_to(i.kind),
        mode: i.mode,
        uid: i.uid,
        gid: i.gid,
        size: i.size,
        nlink: i.nlink,
        atime_ns: i.atime_ns,
        mtime_ns: i.mtime_ns,
        ctime_ns: i.ctime_ns,
        layout: Some(v1::Layout {
            chunk_size: i.layout.chunk_size,
            data_shards: i.layout.data_shards,
            parity_shards: i.layout.parity_shards,
        }),
        key: i.key.as_ref().map(|k| v1::FileKey {
            kek_id: k.kek_id.clone(),
            kek_version: k.kek_version,
            suite: k.suite,
            wrapped: k.wrapped.clone(),
            format: k.format,
        }),
        chunks: i
            .chunks
            .values()
            .map(|c| v1::Chunk {
                index: c.index,
                version: c.version,
                sealed_len: c.sealed_len,
                pg: c.pg,
                format: c.format,
                data_shards: c.data_shards,
            })
            .collect(),
        target: i.target.clone(),
        xattrs: i.xattrs.iter().map(|(n, v)| v1::Xattr { name: n.clone(), value: v.clone() }).collect(),
        rdev: i.rdev,
        manifest: i.manifest.as_ref().map(|m| v1::Manifest { format: m.format, seq: m.seq, mac: m.mac.clone() }),
    }
}

fn inode_from(i: v1::Inode) -> Result<Inode, MetaError> {
    let l = i.layout.ok_or_else(|| corrupt("inode without layout"))?;
    Ok(Inode {
        ino: i.ino,
        kind: kind_from(i.kind)?,
        mode: i.mode,
        uid: i.uid,
        gid: i.gid,
        size: i.size,
        nlink: i.nlink,
        atime_ns: i.atime_ns,
        mtime_ns: i.mtime_ns,
        ctime_ns: i.ctime_ns,
        layout: Layout { chunk_size: l.chunk_size, data_shards: l.data_shards, parity_shards: l.parity_shards },
        key: i.key.map(|k| FileKey {
            kek_id: k.kek_id,
            kek_version: k.kek_version,
            suite: k.suite,
            wrapped: k.wrapped,
            format: k.format,
        }),
        chunks: i
            .chunks
            .into_iter()
            .map(|c| {
                let chunk = ChunkRef {
                    index: c.index,
                    version: c.version,
                    sealed_len: c.sealed_len,
                    pg: c.pg,
                    format: c.format,
                    data_shards: c.data_shards,
                };
                (c.index, chunk)
            })
            .collect(),
        target: i.target,
        xattrs: i.xattrs.into_iter().map(|x| (x.name, x.value)).collect(),
        rdev: i.rdev,
        manifest: i.manifest.map(|m| StoredManifest { format: m.format, seq: m.seq, mac: m.mac }),
    })
}

impl Namespace {
    pub(crate) fn to_snapshot(&self) -> v1::Namespace {
        v1::Namespace {
            inodes: self.inodes.values().map(inode_to).collect(),
            dirs: self
                .dirs
                .iter()
                .map(|(&ino, entries)| v1::Dir {
                    ino,
                    names: entries.keys().cloned().collect(),
                    inos: entries.values().copied().collect(),
                })
                .collect(),
            dir_parents: self.dir_parent.iter().map(|(&a, &b)| v1::Pair { a, b }).collect(),
            open: Vec::new(),
            open_by: self
                .open
                .iter()
                .flat_map(|(&ino, holders)| {
                    holders.iter().map(move |(&client, &count)| v1::OpenBy { ino, client, count })
                })
                .collect(),
            next_ino: self.next_ino,
        }
    }

    pub(crate) fn from_snapshot(s: v1::Namespace) -> Result<Namespace, MetaError> {
        let mut inodes = OrdMap::new();
        for i in s.inodes {
            let inode = inode_from(i)?;
            inodes.insert(inode.ino, inode);
        }
        let mut dirs = OrdMap::new();
        for d in s.dirs {
            if d.names.len() != d.inos.len() {
                return Err(corrupt("directory names and inodes differ in length"));
            }
            if inodes.get(&d.ino).map(|i: &Inode| i.kind) != Some(Kind::Directory) {
                return Err(corrupt("entry table for a non-directory"));
            }
            if d.inos.iter().any(|i| !inodes.contains_key(i)) {
                return Err(corrupt("directory entry names a missing inode"));
            }
            dirs.insert(d.ino, d.names.into_iter().zip(d.inos).collect::<OrdMap<_, _>>());
        }
        if inodes.values().any(|i| i.kind == Kind::Directory && !dirs.contains_key(&i.ino)) {
            return Err(corrupt("directory without an entry table"));
        }
        let mut open: OrdMap<u64, BTreeMap<u64, u32>> = OrdMap::new();
        for p in s.open {
            let count = u32::try_from(p.b).map_err(|_| corrupt("open count out of range"))?;
            open.entry(p.a).or_default().insert(0, count);
        }
        for o in s.open_by {
            if o.count == 0 {
                return Err(corrupt("open count of zero"));
            }
            open.entry(o.ino).or_default().insert(o.client, o.count);
        }
        let pg_index = super::pg_index::PgIndex::build(inodes.values());
        let file_parents =
            super::parents::FileParents::build(dirs.iter().map(|(&d, entries)| (d, entries.values().copied())), |i| {
                inodes.get(&i).is_some_and(|n| n.kind == Kind::Directory)
            });
        Ok(Namespace {
            file_parents,
            pg_index,
            inodes,
            dirs,
            dir_parent: s.dir_parents.into_iter().map(|p| (p.a, p.b)).collect(),
            open,
            next_ino: s.next_ino,
        })
    }
}
