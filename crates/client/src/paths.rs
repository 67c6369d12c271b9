//! Path parsing: absolute, '/'-separated, no empty, '.' or '..' components.
//!
//! Paths are bytes, as on Linux: a component may be any bytes but `/` and
//! NUL, UTF-8 or not (Latin-1 names, Python's surrogate-escaped names).

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::ClientError;

/// Split "/a/b/c" into ["a", "b", "c"]. "/" is the empty list.
pub fn components(path: &Path) -> Result<Vec<&[u8]>, ClientError> {
    let bytes = path.as_os_str().as_bytes();
    let rest = bytes.strip_prefix(b"/").ok_or(ClientError::InvalidPath("paths must start with '/'"))?;
    if rest.contains(&0) {
        return Err(ClientError::InvalidPath("paths cannot contain a NUL byte"));
    }
    let parts: Vec<&[u8]> = rest.split(|b| *b == b'/').filter(|p| !p.is_empty()).collect();
    if parts.iter().any(|p| *p == b"." || *p == b"..") {
        return Err(ClientError::InvalidPath("'.' and '..' are not allowed"));
    }
    Ok(parts)
}

/// Split into (parent components, final name).
pub fn split_parent(path: &Path) -> Result<(Vec<&[u8]>, &[u8]), ClientError> {
    let mut parts = components(path)?;
    let name = parts.pop().ok_or(ClientError::InvalidPath("the root has no parent"))?;
    Ok((parts, name))
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::*;

    fn p(s: &str) -> &Path {
        Path::new(s)
    }

    #[test]
    fn splits() {
        assert_eq!(components(p("/")).unwrap(), Vec::<&[u8]>::new());
        assert_eq!(components(p("/a//b/")).unwrap(), vec![b"a", b"b"]);
        assert!(components(p("a/b")).is_err());
        assert!(components(p("/a/../b")).is_err());
        assert_eq!(split_parent(p("/a/b")).unwrap(), (vec![&b"a"[..]], &b"b"[..]));
        assert!(split_parent(p("/")).is_err());
    }

    #[test]
    fn components_are_bytes_not_utf8() {
        let path = Path::new(OsStr::from_bytes(b"/caf\xe9/\xff"));
        assert_eq!(split_parent(path).unwrap(), (vec![&b"caf\xe9"[..]], &b"\xff"[..]));
        assert!(components(Path::new(OsStr::from_bytes(b"/a\0b"))).is_err(), "NUL is refused");
    }
}
