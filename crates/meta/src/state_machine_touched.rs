//! The inodes a namespace or attribute change touches, for the metadata
//! caches (`cache_leases.rs`, docs/metadata-cache.md): parents whose
//! entries change and the inodes whose attributes change. Resolved against
//! the state just before the change applies, so names map to the inodes the
//! change really removes or replaces; over-approximated where that is simpler.

use shardline_proto::v1::meta_request::Body;

use super::StateMachine;

impl StateMachine {
    /// The inodes `body` would touch if applied now.
    pub(crate) fn touched_by(&self, body: Option<&Body>) -> Vec<u64> {
        let child = |parent: u64, name: &[u8]| self.ns.lookup(parent, name).ok().map(|i| i.ino);
        let mut out = match body {
            Some(Body::Create(c)) => vec![c.parent],
            Some(Body::Mkdir(c)) => vec![c.parent],
            Some(Body::Mknod(c)) => vec![c.parent],
            Some(Body::Symlink(c)) => vec![c.parent],
            Some(Body::Link(c)) => vec![c.ino, c.new_parent],
            Some(Body::Unlink(c)) => [Some(c.parent), child(c.parent, &c.name)].into_iter().flatten().collect(),
            Some(Body::Rmdir(c)) => [Some(c.parent), child(c.parent, &c.name)].into_iter().flatten().collect(),
            Some(Body::Rename(c)) => {
                [Some(c.parent), Some(c.new_parent), child(c.parent, &c.name), child(c.new_parent, &c.new_name)]
                    .into_iter()
                    .flatten()
                    .collect()
            }
            Some(Body::SetAttr(c)) => vec![c.ino],
            Some(Body::SetXattr(c)) => vec![c.ino],
            Some(Body::RemoveXattr(c)) => vec![c.ino],
            Some(Body::SetLayout(c)) => vec![c.ino],
            Some(Body::CommitChunk(c)) => vec![c.ino],
            Some(Body::RewrapKey(c)) => vec![c.ino],
            _ => Vec::new(),
        };
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use shardline_proto::v1 as pb;
    use shardline_types::{Layout, ROOT_INO};

    use super::*;

    fn apply(sm: &mut StateMachine, id: u64, body: Body) -> pb::MetaResponse {
        let req = pb::MetaRequest { client_id: 1, request_id: id, caller: None, cache: false, body: Some(body) };
        sm.apply(&req, 1)
    }

    fn create(sm: &mut StateMachine, id: u64, name: &[u8]) -> u64 {
        let key = pb::WrappedKey { kek_id: "k".into(), kek_version: 1, suite: 1, wrapped: vec![1, 2], format: 0 };
        let c = pb::Create {
            parent: ROOT_INO,
            name: name.to_vec(),
            mode: 0o644,
            key: Some(key),
            exclusive: true,
            ..Default::default()
        };
        match apply(sm, id, Body::Create(c)).body {
            Some(pb::meta_response::Body::Attr(a)) => a.ino,
            _ => panic!("create failed"),
        }
    }

    #[test]
    fn changes_name_the_inodes_they_remove_or_replace() {
        let mut sm = StateMachine::new(Layout::default(), 8);
        let a = create(&mut sm, 1, b"a");
        let b = create(&mut sm, 2, b"b");
        let rename =
            pb::Rename { parent: ROOT_INO, name: b"a".to_vec(), new_parent: ROOT_INO, new_name: b"b".to_vec() };
        let resp = apply(&mut sm, 3, Body::Rename(rename));
        let mut want = vec![ROOT_INO, a, b];
        want.sort_unstable();
        assert_eq!(resp.touched, want, "the renamed file and the one it replaced");
        let resp = apply(&mut sm, 4, Body::Unlink(pb::Unlink { parent: ROOT_INO, name: b"b".to_vec() }));
        assert_eq!(resp.touched, {
            let mut w = vec![ROOT_INO, a];
            w.sort_unstable();
            w
        });
        let resp = apply(&mut sm, 5, Body::Unlink(pb::Unlink { parent: ROOT_INO, name: b"b".to_vec() }));
        assert!(resp.error.is_some() && resp.touched.is_empty(), "a failed change touches nothing");
        let resp =
            apply(&mut sm, 6, Body::SetAttr(pb::SetAttr { ino: ROOT_INO, mode: Some(0o700), ..Default::default() }));
        assert_eq!(resp.touched, vec![ROOT_INO]);
    }
}
