//! A small map from caller to value for the metadata cache: nearly every
//! cached entry or attribute was told to one caller only, so the first is
//! kept inline and only further callers take an allocation (a listing of
//! 100,000 entries otherwise made 100,000 one-element hash maps).

/// Values by caller key, the first inline; the rest (rare) in a boxed
/// slice, a word smaller than a vector.
#[derive(Debug, Clone)]
pub(crate) struct PerCaller<T> {
    first: (u64, T),
    rest: Box<[(u64, T)]>,
}

impl<T> PerCaller<T> {
    pub(crate) fn new(caller: u64, value: T) -> Self {
        PerCaller { first: (caller, value), rest: Box::new([]) }
    }

    pub(crate) fn get(&self, caller: u64) -> Option<&T> {
        if self.first.0 == caller {
            return Some(&self.first.1);
        }
        self.rest.iter().find(|(c, _)| *c == caller).map(|(_, v)| v)
    }

    /// Set `caller`'s value, replacing any earlier one.
    pub(crate) fn set(&mut self, caller: u64, value: T) {
        if self.first.0 == caller {
            self.first.1 = value;
        } else if let Some(slot) = self.rest.iter_mut().find(|(c, _)| *c == caller) {
            slot.1 = value;
        } else {
            let mut rest = std::mem::take(&mut self.rest).into_vec();
            rest.push((caller, value));
            self.rest = rest.into_boxed_slice();
        }
    }
}

/// `map[key]` for `caller` becomes `value`.
pub(crate) fn set_in<K: std::hash::Hash + Eq, T, S: std::hash::BuildHasher>(
    map: &mut std::collections::HashMap<K, PerCaller<T>, S>,
    key: K,
    caller: u64,
    value: T,
) {
    match map.entry(key) {
        std::collections::hash_map::Entry::Occupied(mut o) => o.get_mut().set(caller, value),
        std::collections::hash_map::Entry::Vacant(v) => {
            v.insert(PerCaller::new(caller, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_caller_sees_its_own_value() {
        let mut m = std::collections::HashMap::new();
        set_in(&mut m, 1u64, 7, "a");
        set_in(&mut m, 1, 8, "b");
        set_in(&mut m, 1, 9, "c");
        set_in(&mut m, 1, 8, "B");
        set_in(&mut m, 1, 7, "A");
        let p = &m[&1];
        assert_eq!((p.get(7), p.get(8), p.get(9), p.get(10)), (Some(&"A"), Some(&"B"), Some(&"c"), None));
    }
}
