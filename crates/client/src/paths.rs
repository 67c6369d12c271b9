//! Path parsing: absolute, '/'-separated, no empty, '.' or '..' components.

use crate::ClientError;

/// Split "/a/b/c" into ["a", "b", "c"]. "/" is the empty list.
pub fn components(path: &str) -> Result<Vec<&str>, ClientError> {
    let rest = path.strip_prefix('/').ok_or(ClientError::InvalidPath("paths must start with '/'"))?;
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    if parts.iter().any(|p| *p == "." || *p == "..") {
        return Err(ClientError::InvalidPath("'.' and '..' are not allowed"));
    }
    Ok(parts)
}

/// Split into (parent components, final name).
pub fn split_parent(path: &str) -> Result<(Vec<&str>, &str), ClientError> {
    let mut parts = components(path)?;
    let name = parts.pop().ok_or(ClientError::InvalidPath("the root has no parent"))?;
    Ok((parts, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits() {
        assert_eq!(components("/").unwrap(), Vec::<&str>::new());
        assert_eq!(components("/a//b/").unwrap(), vec!["a", "b"]);
        assert!(components("a/b").is_err());
        assert!(components("/a/../b").is_err());
        assert_eq!(split_parent("/a/b").unwrap(), (vec!["a"], "b"));
        assert!(split_parent("/").is_err());
    }
}
