//! Who talks to whom in a nemesis cluster: the nodes and the directed links
//! between them. Every link is a userspace proxy the nemesis controls
//! (`tests/harness/proxy.rs`): metadata servers reach each other, data
//! servers, the nemesis' own clients and the mount reach each metadata
//! server, through a proxy of their own per pair; everyone reaches a data
//! server through its one advertised address, a proxy in front of it (the
//! data path cannot tell its callers apart, so a data server is cut off
//! from all of them at once).

use std::fmt;

/// A process the nemesis runs, or a caller that is not a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Node {
    Meta(u64),
    Data(u64),
    /// The nemesis' native clients.
    Client,
    /// The FUSE mount process.
    Mount,
    /// Whoever dials a data server (clients, the mount, other data servers).
    Anyone,
}

impl Node {
    /// Whether this is a server process the nemesis may kill or pause.
    pub fn is_server(self) -> bool {
        matches!(self, Node::Meta(_) | Node::Data(_))
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Meta(i) => write!(f, "meta-{i}"),
            Node::Data(i) => write!(f, "data-{i}"),
            Node::Client => f.write_str("client"),
            Node::Mount => f.write_str("mount"),
            Node::Anyone => f.write_str("anyone"),
        }
    }
}

/// A directed link: `from` dials `to` through a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub from: Node,
    pub to: Node,
}

/// The cluster's shape.
#[derive(Debug, Clone)]
pub struct Topology {
    pub metas: u64,
    pub datas: u64,
    pub links: Vec<Link>,
}

impl Topology {
    pub fn new(metas: u64, datas: u64) -> Topology {
        let mut links = Vec::new();
        for i in 1..=metas {
            for j in (1..=metas).filter(|j| *j != i) {
                links.push(Link { from: Node::Meta(i), to: Node::Meta(j) });
            }
        }
        for j in 1..=metas {
            for d in 1..=datas {
                links.push(Link { from: Node::Data(d), to: Node::Meta(j) });
            }
            links.push(Link { from: Node::Client, to: Node::Meta(j) });
            links.push(Link { from: Node::Mount, to: Node::Meta(j) });
        }
        for d in 1..=datas {
            links.push(Link { from: Node::Anyone, to: Node::Data(d) });
        }
        Topology { metas, datas, links }
    }

    pub fn servers(&self) -> Vec<Node> {
        (1..=self.metas).map(Node::Meta).chain((1..=self.datas).map(Node::Data)).collect()
    }

    /// Indexes of the links into or out of `node`.
    pub fn links_of(&self, node: Node) -> Vec<usize> {
        (0..self.links.len()).filter(|&i| self.links[i].from == node || self.links[i].to == node).collect()
    }

    /// Indexes of the links between `a` and `b`, either way.
    pub fn links_between(&self, a: Node, b: Node) -> Vec<usize> {
        (0..self.links.len())
            .filter(|&i| {
                let l = self.links[i];
                (l.from == a && l.to == b) || (l.from == b && l.to == a)
            })
            .collect()
    }

    /// The link `from` → `to`, if there is one.
    pub fn link(&self, from: Node, to: Node) -> Option<usize> {
        self.links.iter().position(|l| l.from == from && l.to == to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pair_that_talks_has_its_own_links() {
        let t = Topology::new(3, 6);
        assert_eq!(t.links.len(), 6 + 18 + 3 + 3 + 6);
        assert_eq!(t.links_between(Node::Meta(1), Node::Meta(2)).len(), 2);
        assert_eq!(t.links_between(Node::Data(4), Node::Meta(3)).len(), 1);
        // A metadata server: 4 peer links, 6 data servers, client, mount.
        assert_eq!(t.links_of(Node::Meta(2)).len(), 4 + 6 + 2);
        // A data server: 3 metadata links and its advertised address.
        assert_eq!(t.links_of(Node::Data(5)).len(), 4);
        assert!(t.link(Node::Meta(1), Node::Data(1)).is_none());
    }
}
