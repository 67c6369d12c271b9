//! The sessions holding one inode (`cache_leases.rs`): nearly always one,
//! so the first is kept inline and only more take an allocation (granting
//! a listing page of 1,000 entries otherwise made 1,000 one-element sets).

/// A set of session ids; empty when `first` is None.
#[derive(Debug, Default)]
pub(crate) struct SessionSet {
    first: Option<u64>,
    rest: Vec<u64>,
}

impl SessionSet {
    pub(crate) fn insert(&mut self, id: u64) {
        if self.first == Some(id) || self.rest.contains(&id) {
            return;
        }
        match self.first {
            None => self.first = Some(id),
            Some(_) => self.rest.push(id),
        }
    }

    /// Keep the ids `keep` says to; the set stays compact.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(u64) -> bool) {
        let mut all: Vec<u64> =
            self.first.take().into_iter().chain(self.rest.drain(..)).filter(|&id| keep(id)).collect();
        if !all.is_empty() {
            self.first = Some(all.remove(0));
            self.rest = all;
        }
    }

    pub(crate) fn remove(&mut self, id: u64) {
        self.retain(|x| x != id);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_removes_and_retains_like_a_set() {
        let mut s = SessionSet::default();
        assert!(s.is_empty());
        for id in [3, 4, 3, 5] {
            s.insert(id);
        }
        let mut seen = Vec::new();
        s.retain(|id| {
            seen.push(id);
            id != 4
        });
        assert_eq!(seen, vec![3, 4, 5], "each id once");
        s.remove(3);
        assert!(!s.is_empty());
        s.remove(5);
        assert!(s.is_empty());
    }
}
