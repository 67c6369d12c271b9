//! A client for the metadata service that finds the leader by itself.
//!
//! Requests go to the last known leader; a `NOT_LEADER` answer (with a hint)
//! or an unreachable server moves on to the hinted or next server, with a
//! short back-off, until the request's deadline. Every request carries a
//! client id and a request id so the state machine can deduplicate retries,
//! and the user it acts for (`acting.rs`).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use shardline_proto::v1::{meta_request, ErrorCode as WireCode, MetaRequest, MetaResponse};
use shardline_types::ErrorCode;

use crate::{Frame, Pool, Role, RpcError, Tls};

/// An error from the metadata service, or the failure to reach it.
#[derive(Debug, thiserror::Error)]
pub enum MetaCallError {
    #[error("metadata service: {message}")]
    Service { code: ErrorCode, message: String },
    #[error("metadata service unreachable: {0}")]
    Unreachable(String),
    #[error(transparent)]
    Rpc(#[from] RpcError),
}

impl MetaCallError {
    pub fn code(&self) -> ErrorCode {
        match self {
            MetaCallError::Service { code, .. } => *code,
            _ => ErrorCode::Unavailable,
        }
    }
}

/// Map a wire error code to the domain code.
pub fn code_from_wire(code: i32) -> ErrorCode {
    match WireCode::try_from(code).unwrap_or(WireCode::Internal) {
        WireCode::NotFound => ErrorCode::NotFound,
        WireCode::AlreadyExists => ErrorCode::AlreadyExists,
        WireCode::NotADirectory => ErrorCode::NotADirectory,
        WireCode::IsADirectory => ErrorCode::IsADirectory,
        WireCode::NotEmpty => ErrorCode::NotEmpty,
        WireCode::NotLeader => ErrorCode::NotLeader,
        WireCode::StaleEpoch => ErrorCode::StaleEpoch,
        WireCode::Unavailable => ErrorCode::Unavailable,
        WireCode::InvalidArgument => ErrorCode::InvalidArgument,
        WireCode::Corrupt => ErrorCode::Corrupt,
        WireCode::NoSpace => ErrorCode::NoSpace,
        WireCode::PermissionDenied => ErrorCode::PermissionDenied,
        WireCode::NameTooLong => ErrorCode::NameTooLong,
        WireCode::Internal | WireCode::Unspecified => ErrorCode::Internal,
    }
}

/// Map a domain error code to the wire code.
pub fn code_to_wire(code: ErrorCode) -> WireCode {
    match code {
        ErrorCode::NotFound => WireCode::NotFound,
        ErrorCode::AlreadyExists => WireCode::AlreadyExists,
        ErrorCode::NotADirectory => WireCode::NotADirectory,
        ErrorCode::IsADirectory => WireCode::IsADirectory,
        ErrorCode::NotEmpty => WireCode::NotEmpty,
        ErrorCode::NotLeader => WireCode::NotLeader,
        ErrorCode::StaleEpoch => WireCode::StaleEpoch,
        ErrorCode::Unavailable => WireCode::Unavailable,
        ErrorCode::InvalidArgument => WireCode::InvalidArgument,
        ErrorCode::Corrupt => WireCode::Corrupt,
        ErrorCode::NoSpace => WireCode::NoSpace,
        ErrorCode::Internal => WireCode::Internal,
        ErrorCode::PermissionDenied => WireCode::PermissionDenied,
        ErrorCode::NameTooLong => WireCode::NameTooLong,
        // Client side only; were it ever sent, the file is gone.
        ErrorCode::Stale => WireCode::NotFound,
    }
}

/// Leader-seeking metadata client. Cheap to share behind an `Arc`.
pub struct MetaClient {
    addrs: Vec<String>,
    leader: AtomicUsize,
    client_id: u64,
    next_request: AtomicU64,
    pool: Pool,
    deadline: Duration,
    /// Who requests act for outside [`crate::acting::acting_as`].
    acting: crate::acting::Caller,
}

/// How long one attempt waits for one server's answer before the request
/// moves on to the next server (the request as a whole keeps its deadline;
/// a retried mutation carries the same request id, so it applies once). A
/// paused or blackholed server accepts connections and never answers: a
/// long wait on it held every heartbeat past the failure timeout, and the
/// new leader declared live data servers dead. Well under the 3-5 s
/// failure timeouts, well over a loaded cluster's commit latency.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

impl MetaClient {
    /// `addrs`: every metadata server's address. `deadline`: how long one
    /// request may keep retrying (leader elections take a second or two).
    /// `tls`: this process's identity.
    pub fn new(addrs: Vec<String>, deadline: Duration, tls: Arc<Tls>) -> Self {
        MetaClient {
            addrs,
            leader: AtomicUsize::new(0),
            client_id: rand_u64(),
            next_request: AtomicU64::new(1),
            pool: Pool::new(tls, Role::Meta, Duration::from_secs(1), ATTEMPT_TIMEOUT),
            deadline,
            acting: crate::acting::process_caller(),
        }
    }

    /// Act for `caller` (instead of this process's ids) outside
    /// [`crate::acting::acting_as`].
    pub fn set_acting(&mut self, caller: crate::acting::Caller) {
        self.acting = caller;
    }

    /// The identity a request made now claims.
    fn caller(&self) -> crate::acting::Caller {
        crate::acting::current().unwrap_or_else(|| self.acting.clone())
    }

    pub fn addrs(&self) -> &[String] {
        &self.addrs
    }

    /// Send one request (retrying across servers) and return the response
    /// body, or the service's error.
    pub async fn call(&self, body: meta_request::Body) -> Result<MetaResponse, MetaCallError> {
        self.call_cached(body, false).await
    }

    /// This client's id (also its metadata cache session's).
    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    /// A fingerprint of the identity a request made now claims: what a
    /// metadata cache keys answers by, since answers depend on the caller.
    /// The identity requests made now act for.
    pub fn acting_caller(&self) -> crate::acting::Caller {
        self.caller()
    }

    pub fn caller_key(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let c = self.caller();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (c.uid, c.gid, &c.groups, &c.subtree).hash(&mut h);
        h.finish()
    }

    /// [`MetaClient::call`], saying whether this client holds a metadata
    /// cache session the answer may be granted under (`cache`). With
    /// `cache`, an answer that is the service's final error comes back as
    /// `Ok` with its `error` set: a granted "no such entry" is cached too.
    pub async fn call_cached(&self, body: meta_request::Body, cache: bool) -> Result<MetaResponse, MetaCallError> {
        let req = MetaRequest {
            client_id: self.client_id,
            request_id: self.next_request.fetch_add(1, Ordering::Relaxed),
            caller: Some(self.caller()),
            cache,
            body: Some(body),
        };
        let frame = Frame::from_message(&req, Bytes::new());
        let start = Instant::now();
        let mut backoff = Duration::from_millis(20);
        let mut last_err = String::from("no metadata servers configured");
        let mut idx = self.leader.load(Ordering::Relaxed) % self.addrs.len().max(1);
        // Servers that refused this client's certificate in a row: when all
        // have, retrying cannot help.
        let mut refused = 0;
        while !self.addrs.is_empty() {
            let addr = &self.addrs[idx];
            match self.pool.call(addr, &frame).await {
                Ok(resp) => {
                    refused = 0;
                    let resp: MetaResponse = resp.decode()?;
                    match &resp.error {
                        None => {
                            self.leader.store(idx, Ordering::Relaxed);
                            return Ok(resp);
                        }
                        Some(e) => {
                            let code = code_from_wire(e.code);
                            // A stale epoch is the caller's to handle (send
                            // again to the new placement): the same request
                            // would only be refused again.
                            if !code.retryable() || code == ErrorCode::StaleEpoch {
                                self.leader.store(idx, Ordering::Relaxed);
                                if cache {
                                    return Ok(resp);
                                }
                                return Err(MetaCallError::Service { code, message: e.message.clone() });
                            }
                            last_err = e.message.clone();
                            match self.addrs.iter().position(|a| !e.leader_hint.is_empty() && *a == e.leader_hint) {
                                Some(hinted) if hinted != idx => {
                                    idx = hinted;
                                    continue;
                                }
                                _ => idx = (idx + 1) % self.addrs.len(),
                            }
                        }
                    }
                }
                Err(e) => {
                    if matches!(e, RpcError::Refused { .. }) {
                        refused += 1;
                        if refused >= self.addrs.len() {
                            return Err(e.into());
                        }
                    } else {
                        refused = 0;
                    }
                    last_err = e.to_string();
                    self.pool.forget(addr);
                    idx = (idx + 1) % self.addrs.len();
                }
            }
            if start.elapsed() > self.deadline {
                return Err(MetaCallError::Unreachable(last_err));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(300));
        }
        Err(MetaCallError::Unreachable(last_err))
    }

    /// Send a request to one specific server, without redirects (for status
    /// queries and tests).
    pub async fn call_one(&self, addr: &str, body: meta_request::Body) -> Result<MetaResponse, MetaCallError> {
        let req = MetaRequest {
            client_id: self.client_id,
            request_id: self.next_request.fetch_add(1, Ordering::Relaxed),
            caller: Some(self.caller()),
            cache: false,
            body: Some(body),
        };
        let resp: MetaResponse = self.pool.call(addr, &Frame::from_message(&req, Bytes::new())).await?.decode()?;
        if let Some(e) = &resp.error {
            return Err(MetaCallError::Service { code: code_from_wire(e.code), message: e.message.clone() });
        }
        Ok(resp)
    }
}

fn rand_u64() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.write_u32(std::process::id());
    h.finish()
}
