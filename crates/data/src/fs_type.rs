//! The file system a folder lives on, by name ("ext4", "xfs", "tmpfs",
//! "overlay", "btrfs"…), for reports: a data server tells the metadata
//! service what actually stores its shards.
//!
//! The mount table (`/proc/self/mountinfo`) names the exact type of the
//! mount whose device is the folder's; where no mount matches (btrfs
//! subvolumes have devices of their own), `statfs`'s magic number is
//! mapped to a name instead.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The type of the file system holding `path`; "unknown" when it cannot
/// be told (never an error: this is only reported).
pub fn fs_type(path: &Path) -> String {
    let Ok(meta) = std::fs::metadata(path) else { return "unknown".into() };
    let dev = (libc::major(meta.dev()), libc::minor(meta.dev()));
    if let Some(name) =
        std::fs::read_to_string("/proc/self/mountinfo").ok().and_then(|table| from_mountinfo(&table, dev))
    {
        return name;
    }
    match statfs_magic(path) {
        Some(magic) => magic_name(magic).map(str::to_owned).unwrap_or_else(|| format!("unknown (0x{magic:x})")),
        None => "unknown".into(),
    }
}

/// The type of the mount on device `major:minor` in a mountinfo table.
fn from_mountinfo(table: &str, (major, minor): (u32, u32)) -> Option<String> {
    let want = format!("{major}:{minor}");
    table.lines().find_map(|line| {
        let mut fields = line.split(' ');
        if fields.nth(2)? != want {
            return None;
        }
        // After the optional fields, " - " then the type.
        let (_, after) = line.split_once(" - ")?;
        after.split(' ').next().filter(|t| !t.is_empty()).map(str::to_owned)
    })
}

fn statfs_magic(path: &Path) -> Option<u64> {
    let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the
    // call, and `st` points to writable memory sized for a `statfs`.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statfs returned 0, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    // The field's type differs between platforms.
    #[allow(clippy::unnecessary_cast)]
    Some(st.f_type as u64)
}

/// Names of the common `statfs` magic numbers (linux/magic.h).
fn magic_name(magic: u64) -> Option<&'static str> {
    Some(match magic {
        0xEF53 => "ext2/ext3/ext4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs",
        0x8584_58F6 => "ramfs",
        0x794C_7630 => "overlay",
        0xF2F5_2010 => "f2fs",
        0x2FC1_2FC1 => "zfs",
        0xCA45_1A4E => "bcachefs",
        0x6969 => "nfs",
        0x6573_5546 => "fuse",
        0x0102_1997 => "9p",
        0x5346_544E => "ntfs",
        0x4d44 => "vfat",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_is_proc_and_a_temporary_folder_has_a_known_type() {
        assert_eq!(fs_type(Path::new("/proc")), "proc");
        let dir = tempfile::tempdir().unwrap();
        let t = fs_type(dir.path());
        assert!(!t.is_empty() && !t.starts_with("unknown"), "{t}");
    }

    #[test]
    fn mountinfo_lines_with_and_without_optional_fields_parse() {
        let table = "22 27 0:21 / /proc rw,relatime - proc proc rw\n\
                     29 1 259:2 / / rw,relatime shared:1 master:2 - ext4 /dev/nvme0n1p2 rw\n\
                     40 29 0:45 / /var/lib/x rw - overlay overlay rw,lowerdir=/a\n";
        assert_eq!(from_mountinfo(table, (259, 2)).as_deref(), Some("ext4"));
        assert_eq!(from_mountinfo(table, (0, 45)).as_deref(), Some("overlay"));
        assert_eq!(from_mountinfo(table, (8, 1)), None);
        assert_eq!(magic_name(0x0102_1994), Some("tmpfs"));
        assert_eq!(magic_name(0x1234), None);
    }
}
