//! Attributes for the kernel and the permission rules the mount enforces
//! itself (chmod/chown/utimens ownership, access(2)). Pure functions.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType, INodeNo};
use shardline_client::inode_api::InodeAttr;
use shardline_client::FileKind;
use shardline_types::mode::clears_setid_only;

/// st_blksize: the preferred I/O size (also the mount's max_write).
pub const BLOCK_SIZE: u32 = 1 << 20;

pub fn file_type(kind: FileKind) -> FileType {
    match kind {
        FileKind::File => FileType::RegularFile,
        FileKind::Directory => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
        FileKind::Fifo => FileType::NamedPipe,
        FileKind::Socket => FileType::Socket,
        FileKind::CharDevice => FileType::CharDevice,
        FileKind::BlockDevice => FileType::BlockDevice,
    }
}

/// The special kind a mknod mode's file type asks for (None: a regular
/// file, or no type this file system knows).
pub fn special_kind(mode: u32) -> Option<FileKind> {
    match mode & libc::S_IFMT {
        libc::S_IFIFO => Some(FileKind::Fifo),
        libc::S_IFSOCK => Some(FileKind::Socket),
        libc::S_IFCHR => Some(FileKind::CharDevice),
        libc::S_IFBLK => Some(FileKind::BlockDevice),
        _ => None,
    }
}

/// A device number from the kernel (FUSE carries the 32-bit
/// `new_encode_dev` form: 12-bit major, 20-bit minor) as a Linux dev_t
/// (`gnu_dev_makedev`), which is what the metadata service stores.
pub fn dev_from_kernel(rdev: u32) -> u64 {
    let rdev = u64::from(rdev);
    let (major, minor) = ((rdev & 0xfff00) >> 8, (rdev & 0xff) | ((rdev >> 12) & 0xfff00));
    ((major & 0xffff_f000) << 32) | ((major & 0xfff) << 8) | ((minor & 0xffff_ff00) << 12) | (minor & 0xff)
}

/// A stored dev_t in the kernel's 32-bit form. Numbers that do not fit
/// (major ≥ 4096 or minor ≥ 2^20, only settable by other clients) keep
/// their low bits.
pub fn dev_to_kernel(dev: u64) -> u32 {
    let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff);
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0xff);
    ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & 0xfff00) << 12)) as u32
}

pub fn time_of(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

pub fn ns_of(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

/// The kernel's view of an inode; `size` overrides the committed size
/// while this mount has the file open with unflushed writes.
pub fn file_attr(a: &InodeAttr, size: Option<u64>) -> FileAttr {
    let size = size.unwrap_or(a.size);
    FileAttr {
        ino: INodeNo(a.ino),
        size,
        blocks: size.div_ceil(512),
        atime: time_of(a.atime_ns),
        mtime: time_of(a.mtime_ns),
        ctime: time_of(a.ctime_ns),
        crtime: time_of(a.ctime_ns),
        kind: file_type(a.kind),
        perm: (a.mode & 0o7777) as u16,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: dev_to_kernel(a.rdev),
        blksize: BLOCK_SIZE,
        flags: 0,
    }
}

/// Attributes for "." and ".." in a READDIRPLUS reply: the kernel skips
/// those names, so nothing here is ever shown.
pub fn dot_attr(ino: u64) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: 0,
        blocks: 0,
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind: FileType::Directory,
        perm: 0o755,
        nlink: 2,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: BLOCK_SIZE,
        flags: 0,
    }
}

/// Who is asking: uid, primary gid and supplementary groups.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Caller {
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }

    /// Supplementary groups of process `pid` acting as `uid`/`gid`, from
    /// /proc, at most a second old (`caller_groups.rs`).
    pub fn groups_of(pid: u32, uid: u32, gid: u32) -> Vec<u32> {
        crate::caller_groups::groups_of(pid, uid, gid)
    }
}

/// access(2): whether `caller` may read (4), write (2) and/or execute (1)
/// the inode. Root may do anything except execute a file with no x bit.
pub fn may_access(a: &InodeAttr, caller: &Caller, mask: u32) -> bool {
    let mask = mask & 7;
    if caller.uid == 0 {
        return mask & 1 == 0 || a.kind == FileKind::Directory || a.mode & 0o111 != 0;
    }
    let bits = if caller.uid == a.uid {
        (a.mode >> 6) & 7
    } else if caller.in_group(a.gid) {
        (a.mode >> 3) & 7
    } else {
        a.mode & 7
    };
    bits & mask == mask
}

/// A setattr's ownership rules, as errno on refusal: only the owner or root
/// may chmod (others who may write the file may only clear its set-id bits,
/// see `shardline_types::mode::clears_setid_only`) or set explicit times; only root may change
/// the owner; the owner may change the group to one of its own; "now" times
/// also need write access.
pub fn check_setattr(
    a: &InodeAttr,
    caller: &Caller,
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    explicit_time: bool,
    now_time: bool,
) -> Result<(), i32> {
    let root = caller.uid == 0;
    let owner = root || caller.uid == a.uid;
    if mode.is_some_and(|m| !(clears_setid_only(a.mode, m) && may_access(a, caller, 2))) && !owner {
        return Err(libc::EPERM);
    }
    if uid.is_some_and(|u| u != a.uid) && !root {
        return Err(libc::EPERM);
    }
    if uid.is_some() && !owner {
        return Err(libc::EPERM);
    }
    if gid.is_some_and(|g| g != a.gid) && !(root || (owner && caller.in_group(gid.unwrap_or(0)))) {
        return Err(libc::EPERM);
    }
    if explicit_time && !owner {
        return Err(libc::EPERM);
    }
    if now_time && !owner && !may_access(a, caller, 2) {
        return Err(libc::EACCES);
    }
    Ok(())
}

/// A chmod by someone outside the file's group drops the set-group-id bit
/// (not when it only clears set-id bits: the mode the kernel asks for then
/// is the one to keep).
pub fn chmod_mode(a: &InodeAttr, caller: &Caller, mode: u32) -> u32 {
    let mode = mode & 0o7777;
    if clears_setid_only(a.mode, mode) {
        mode
    } else if caller.uid != 0 && !caller.in_group(a.gid) {
        mode & !0o2000
    } else {
        mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardline_types::Layout;

    fn attr(mode: u32, uid: u32, gid: u32) -> InodeAttr {
        InodeAttr {
            ino: 5,
            kind: FileKind::File,
            mode,
            uid,
            gid,
            size: 0,
            nlink: 1,
            atime_ns: 0,
            mtime_ns: -1_500_000_000,
            ctime_ns: 0,
            layout: Layout::default(),
            encrypted: true,
            rdev: 0,
        }
    }

    fn caller(uid: u32, gid: u32) -> Caller {
        Caller { uid, gid, groups: vec![] }
    }

    #[test]
    fn times_round_trip_before_and_after_the_epoch() {
        for ns in [0, 1, -1, -1_500_000_000, 1_700_000_000_123_456_789] {
            assert_eq!(ns_of(time_of(ns)), ns);
        }
        assert_eq!(file_attr(&attr(0o644, 1, 1), Some(9)).size, 9);
        assert_eq!(file_attr(&attr(0o4755, 1, 1), None).perm, 0o4755);
    }

    #[test]
    fn special_files_report_their_type_and_device() {
        let kinds = [
            (libc::S_IFIFO, FileKind::Fifo, FileType::NamedPipe),
            (libc::S_IFSOCK, FileKind::Socket, FileType::Socket),
            (libc::S_IFCHR, FileKind::CharDevice, FileType::CharDevice),
            (libc::S_IFBLK, FileKind::BlockDevice, FileType::BlockDevice),
        ];
        for (ifmt, kind, ft) in kinds {
            assert_eq!(special_kind(ifmt | 0o644), Some(kind));
            let dev = InodeAttr { kind, rdev: libc::makedev(8, 1), ..attr(0o644, 1, 1) };
            let fa = file_attr(&dev, None);
            assert_eq!((fa.kind, fa.rdev, fa.size, fa.blocks), (ft, 0x0801, 0, 0));
        }
        assert_eq!(special_kind(libc::S_IFREG | 0o644), None);
        assert_eq!(special_kind(libc::S_IFDIR), None);
        assert_eq!(special_kind(0o644), None);
        // Kernel form ⇄ dev_t: identical below major 4096 / minor 2^20.
        for (major, minor) in [(0, 0), (1, 2), (8, 17), (4095, 4095), (4095, 0xfffff), (259, 65536)] {
            let dev = libc::makedev(major, minor);
            let kernel = (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12);
            assert_eq!(dev_from_kernel(kernel), dev, "{major}:{minor}");
            assert_eq!(dev_to_kernel(dev), kernel, "{major}:{minor}");
            assert_eq!((libc::major(dev), libc::minor(dev)), (major, minor));
        }
        // Too big for the kernel form: low bits, no panic.
        assert_eq!(dev_to_kernel(libc::makedev(4096 + 7, 3)), dev_to_kernel(libc::makedev(7, 3)));
    }

    #[test]
    fn access_follows_owner_group_other_bits() {
        let a = attr(0o640, 10, 20);
        assert!(may_access(&a, &caller(10, 99), 6));
        assert!(!may_access(&a, &caller(10, 99), 1));
        assert!(may_access(&a, &caller(11, 20), 4));
        assert!(!may_access(&a, &caller(11, 20), 2));
        assert!(may_access(&a, &Caller { uid: 11, gid: 1, groups: vec![20] }, 4));
        assert!(!may_access(&a, &caller(12, 21), 4));
        assert!(may_access(&a, &caller(0, 0), 6));
        assert!(!may_access(&a, &caller(0, 0), 1), "root cannot execute a file with no x bit");
    }

    #[test]
    fn only_owner_chmods_and_only_root_chowns() {
        let a = attr(0o644, 10, 20);
        assert_eq!(check_setattr(&a, &caller(10, 20), Some(0o600), None, None, false, false), Ok(()));
        assert_eq!(check_setattr(&a, &caller(11, 20), Some(0o600), None, None, false, false), Err(libc::EPERM));
        assert_eq!(check_setattr(&a, &caller(10, 20), None, Some(11), None, false, false), Err(libc::EPERM));
        assert_eq!(check_setattr(&a, &caller(0, 0), None, Some(11), Some(30), false, false), Ok(()));
        assert_eq!(check_setattr(&a, &caller(10, 20), None, Some(10), None, false, false), Ok(()), "no-op chown");
        let member = Caller { uid: 10, gid: 20, groups: vec![30] };
        assert_eq!(check_setattr(&a, &member, None, None, Some(30), false, false), Ok(()));
        assert_eq!(check_setattr(&a, &member, None, None, Some(31), false, false), Err(libc::EPERM));
        assert_eq!(check_setattr(&a, &caller(11, 20), None, None, None, true, false), Err(libc::EPERM));
        assert_eq!(check_setattr(&a, &caller(11, 20), None, None, None, false, true), Err(libc::EACCES));
        let writable = attr(0o666, 10, 20);
        assert_eq!(check_setattr(&writable, &caller(11, 21), None, None, None, false, true), Ok(()));
        assert_eq!(chmod_mode(&a, &caller(11, 21), 0o2755), 0o755);
        assert_eq!(chmod_mode(&a, &caller(11, 20), 0o2755), 0o2755);
    }

    /// pjdfstest chmod/12.t: a write by a non-owner failed with EPERM (the
    /// kernel's setattr dropping the set-id bits was refused as a chmod).
    #[test]
    fn a_writer_who_is_not_the_owner_may_only_clear_set_id_bits() {
        let a = attr(0o6777, 10, 20);
        let other = caller(11, 21);
        for kill in [0o777, 0o2777, 0o4777, 0o6777] {
            assert_eq!(check_setattr(&a, &other, Some(kill), None, None, false, false), Ok(()), "{kill:o}");
        }
        assert_eq!(check_setattr(&a, &other, Some(0o100_777), None, None, false, false), Ok(()), "with the file type");
        assert_eq!(check_setattr(&a, &other, Some(0o775), None, None, false, false), Err(libc::EPERM));
        assert_eq!(
            check_setattr(&attr(0o777, 10, 20), &other, Some(0o4777), None, None, false, false),
            Err(libc::EPERM)
        );
        assert_eq!(
            check_setattr(&attr(0o6755, 10, 20), &other, Some(0o755), None, None, false, false),
            Err(libc::EPERM)
        );
        // Set-group-id without group x is kept by the kernel: kept here too.
        let locking = attr(0o6767, 10, 20);
        assert_eq!(chmod_mode(&locking, &other, 0o2767), 0o2767);
    }
}
