//! Capability tokens as they cross the wire (`ShardCap`): issuing one, and
//! the check a data server makes before any shard operation.

use shardline_proto::v1 as pb;

use crate::capability::{ops, CapKey, Capability, CAP_FORMAT_V1};

/// A token that expired less than this ago is still accepted: the metadata
/// and data servers' clocks may differ by this much.
pub const CLOCK_SKEW_MS: u64 = 5_000;

/// Why a data server refused a token. Every message says what was wrong and
/// never echoes the MAC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapRefusal {
    #[error("no capability token: shard requests need one issued by the metadata service")]
    Missing,
    #[error("capability token format {0} is not supported (this server knows format {CAP_FORMAT_V1})")]
    Format(u32),
    #[error("capability token was made with key {token:?}, this server has key {server:?}")]
    KeyId { token: String, server: String },
    #[error("capability token failed verification (forged or altered)")]
    BadMac,
    #[error("capability token is for {have}, not {want}")]
    WrongChunk { have: String, want: String },
    #[error("capability token does not allow {0}")]
    WrongOp(&'static str),
    #[error("capability token expired {ago_ms} ms ago")]
    Expired { ago_ms: u64 },
}

/// What a request touches: one chunk version, or the whole server (0, 0, 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapTarget {
    pub file_id: u64,
    pub chunk_index: u64,
    pub version: u64,
}

impl CapTarget {
    /// Scrub and GC: no chunk.
    pub const CLUSTER: CapTarget = CapTarget { file_id: 0, chunk_index: 0, version: 0 };

    fn describe(&self) -> String {
        if *self == CapTarget::CLUSTER {
            "the whole cluster".into()
        } else {
            format!("chunk {} of file {} version {:x}", self.chunk_index, self.file_id, self.version)
        }
    }
}

/// Issue a token for `cap` under `key`.
pub fn issue(key: &CapKey, cap: &Capability) -> pb::ShardCap {
    pb::ShardCap {
        format: CAP_FORMAT_V1,
        file_id: cap.file_id,
        chunk_index: cap.chunk_index,
        version: cap.version,
        ops: cap.ops,
        epoch: cap.epoch,
        expires_ms: cap.expires_ms,
        key_id: key.id().to_owned(),
        mac: key.mac(cap).to_vec(),
    }
}

/// The fields a token claims (not yet verified).
pub fn claims(token: &pb::ShardCap) -> Capability {
    Capability {
        file_id: token.file_id,
        chunk_index: token.chunk_index,
        version: token.version,
        ops: token.ops,
        epoch: token.epoch,
        expires_ms: token.expires_ms,
    }
}

/// Check that `token` allows `op` on `target` at `now_ms`: present, of a
/// known format, under this key, authentic, for this chunk version and this
/// operation, and not expired. Returns the verified capability (its epoch is
/// the caller's to check against the placement map).
pub fn check(
    key: &CapKey,
    token: Option<&pb::ShardCap>,
    target: CapTarget,
    op: u32,
    now_ms: u64,
) -> Result<Capability, CapRefusal> {
    let token = token.ok_or(CapRefusal::Missing)?;
    if token.format != CAP_FORMAT_V1 {
        return Err(CapRefusal::Format(token.format));
    }
    if token.key_id != key.id() {
        return Err(CapRefusal::KeyId { token: printable(&token.key_id), server: key.id().to_owned() });
    }
    let cap = claims(token);
    if !key.verify(&cap, &token.mac) {
        return Err(CapRefusal::BadMac);
    }
    let have = CapTarget { file_id: cap.file_id, chunk_index: cap.chunk_index, version: cap.version };
    if have != target {
        return Err(CapRefusal::WrongChunk { have: have.describe(), want: target.describe() });
    }
    if cap.ops & op != op || op & !ops::ALL != 0 {
        return Err(CapRefusal::WrongOp(ops::name(op)));
    }
    if now_ms > cap.expires_ms.saturating_add(CLOCK_SKEW_MS) {
        return Err(CapRefusal::Expired { ago_ms: now_ms - cap.expires_ms });
    }
    Ok(cap)
}

/// A key id from the network, cut and stripped of control characters
/// before it goes into an error message.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KEY_LEN;

    const NOW: u64 = 1_700_000_000_000;
    const T: CapTarget = CapTarget { file_id: 7, chunk_index: 3, version: 99 };

    fn key() -> CapKey {
        CapKey::from_bytes("cap-1", [7; KEY_LEN])
    }

    fn cap(ops: u32, expires_ms: u64) -> Capability {
        Capability { file_id: 7, chunk_index: 3, version: 99, ops, epoch: 5, expires_ms }
    }

    #[test]
    fn a_good_token_passes_and_returns_its_epoch() {
        let t = issue(&key(), &cap(ops::PUT | ops::DELETE, NOW + 60_000));
        assert_eq!(check(&key(), Some(&t), T, ops::PUT, NOW).map(|c| c.epoch), Ok(5));
        assert!(check(&key(), Some(&t), T, ops::DELETE, NOW).is_ok());
    }

    #[test]
    fn every_defect_is_refused_with_its_reason() {
        let good = issue(&key(), &cap(ops::GET, NOW + 60_000));
        let refused = |t: Option<&pb::ShardCap>, target: CapTarget, op: u32, now: u64| {
            check(&key(), t, target, op, now).expect_err("accepted")
        };
        assert_eq!(refused(None, T, ops::GET, NOW), CapRefusal::Missing);
        let mut forged = good.clone();
        forged.mac[5] ^= 0x40;
        assert_eq!(refused(Some(&forged), T, ops::GET, NOW), CapRefusal::BadMac);
        let mut widened = good.clone();
        widened.ops = ops::ALL;
        assert_eq!(refused(Some(&widened), T, ops::PUT, NOW), CapRefusal::BadMac);
        let mut extended = good.clone();
        extended.expires_ms += 3_600_000;
        assert_eq!(refused(Some(&extended), T, ops::GET, NOW), CapRefusal::BadMac);
        let other = CapTarget { chunk_index: 4, ..T };
        assert!(matches!(refused(Some(&good), other, ops::GET, NOW), CapRefusal::WrongChunk { .. }));
        let other_version = CapTarget { version: 98, ..T };
        assert!(matches!(refused(Some(&good), other_version, ops::GET, NOW), CapRefusal::WrongChunk { .. }));
        assert!(matches!(refused(Some(&good), CapTarget::CLUSTER, ops::GC, NOW), CapRefusal::WrongChunk { .. }));
        assert_eq!(refused(Some(&good), T, ops::PUT, NOW), CapRefusal::WrongOp("put"));
        assert_eq!(refused(Some(&good), T, ops::DELETE, NOW), CapRefusal::WrongOp("delete"));
        let mut v2 = good.clone();
        v2.format = 2;
        assert_eq!(refused(Some(&v2), T, ops::GET, NOW), CapRefusal::Format(2));
        let other_key = issue(&CapKey::from_bytes("cap-2", [7; KEY_LEN]), &cap(ops::GET, NOW + 60_000));
        assert!(matches!(refused(Some(&other_key), T, ops::GET, NOW), CapRefusal::KeyId { .. }));
        let unsigned = pb::ShardCap { mac: Vec::new(), ..good.clone() };
        assert_eq!(refused(Some(&unsigned), T, ops::GET, NOW), CapRefusal::BadMac);
    }

    #[test]
    fn expiry_allows_only_the_clock_skew() {
        let t = issue(&key(), &cap(ops::GET, NOW));
        assert!(check(&key(), Some(&t), T, ops::GET, NOW).is_ok());
        assert!(check(&key(), Some(&t), T, ops::GET, NOW + CLOCK_SKEW_MS).is_ok());
        assert_eq!(
            check(&key(), Some(&t), T, ops::GET, NOW + CLOCK_SKEW_MS + 1),
            Err(CapRefusal::Expired { ago_ms: CLOCK_SKEW_MS + 1 })
        );
        let old = issue(&key(), &cap(ops::GET, NOW - 3_600_000));
        assert_eq!(check(&key(), Some(&old), T, ops::GET, NOW), Err(CapRefusal::Expired { ago_ms: 3_600_000 }));
    }

    #[test]
    fn refusals_never_echo_the_mac_or_control_characters() {
        let mut t = issue(&key(), &cap(ops::GET, NOW + 60_000));
        t.key_id = "evil\n\u{1b}[31mid".into();
        let msg = check(&key(), Some(&t), T, ops::GET, NOW).expect_err("accepted").to_string();
        assert!(!msg.contains('\n') && !msg.contains('\u{1b}'), "{msg}");
    }
}
