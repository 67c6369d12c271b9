//! File mode rules shared by the mount's and the metadata service's
//! permission checks.

/// Whether `new` is the mode `old` with some of its set-user-ID and
/// set-group-ID bits cleared and nothing else changed (file type bits
/// ignored): what the kernel asks, as the writer, when a write or truncate
/// by someone without CAP_FSETID drops them (`file_remove_privs`). Anyone
/// who may write the file may do that, owner or not.
pub fn clears_setid_only(old: u32, new: u32) -> bool {
    const SETID: u32 = 0o6000;
    let (old, new) = (old & 0o7777, new & 0o7777);
    new & !SETID == old & !SETID && new & !old == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_drop_of_set_id_bits_counts() {
        for new in [0o777, 0o2777, 0o4777, 0o6777, 0o100_777] {
            assert!(clears_setid_only(0o6777, new), "{new:o}");
        }
        assert!(!clears_setid_only(0o6777, 0o775), "other bits changed");
        assert!(!clears_setid_only(0o777, 0o4777), "a bit set, not cleared");
        assert!(!clears_setid_only(0o6755, 0o6777), "permission bits added");
    }
}
