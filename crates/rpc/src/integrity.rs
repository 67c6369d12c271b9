//! The authenticated, integrity-only transport: an opt-in for connections
//! to data servers, whose payloads (shards) are already sealed end to end.
//!
//! The connection starts as mutual TLS like any other (same certificates,
//! same checks); both sides offer it by ALPN ([`ALPN_INTEGRITY`]). When it
//! was negotiated, the server sends one TLS-protected byte ([`GO`]) and both
//! sides leave TLS: every byte after it travels in the clear, in records
//! `len u32 LE | bytes | tag(32)`, each tag a keyed BLAKE3 hash of the
//! record counter, length and bytes (nothing encrypted) under a key per
//! direction exported from the TLS session (RFC 8446 §7.5). (BLAKE3 rather
//! than GMAC or HMAC-SHA256: ring hashes AEAD associated data one 16-byte
//! block per call, and SHA-256 runs slower than AES-GCM itself; BLAKE3's
//! SIMD code is several times faster than either.) A record changed, dropped, replayed or reordered fails
//! its tag, which ends the connection. What is given up is confidentiality
//! of the bytes on the wire: request headers (shard ids, sizes) and the
//! ciphertext of shards — see docs/security.md, "Transport".
//!
//! Like Ceph msgr2's crc mode next to its secure mode, but authenticated.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// ALPN of the integrity-only transport, offered before the default.
pub const ALPN_INTEGRITY: &[u8] = b"shardline-integrity/1";
/// ALPN of the default, fully encrypted transport.
pub const ALPN_TLS: &[u8] = b"shardline/1";
/// The byte the server sends through TLS before both sides leave it.
pub const GO: u8 = b'I';
/// The label keys are exported under.
const EXPORT_LABEL: &[u8] = b"EXPORTER-shardline-integrity-v1";
/// Plaintext bytes per record at most.
const RECORD: usize = 256 << 10;
const TAG: usize = 32;

/// The two directions' keys, from the TLS session.
pub struct Keys {
    pub client_to_server: [u8; 32],
    pub server_to_client: [u8; 32],
}

impl Keys {
    /// Export both keys from a finished TLS session (either side's).
    pub fn export(export: impl FnOnce(&mut [u8; 64], &[u8]) -> Result<(), rustls::Error>) -> io::Result<Keys> {
        let mut out = [0u8; 64];
        export(&mut out, EXPORT_LABEL).map_err(io::Error::other)?;
        let (mut c2s, mut s2c) = ([0u8; 32], [0u8; 32]);
        c2s.copy_from_slice(&out[..32]);
        s2c.copy_from_slice(&out[32..]);
        Ok(Keys { client_to_server: c2s, server_to_client: s2c })
    }
}

/// One direction's key and record counter.
struct Direction {
    key: [u8; 32],
    seq: u64,
}

impl Direction {
    fn new(key: &[u8; 32]) -> io::Result<Direction> {
        Ok(Direction { key: *key, seq: 0 })
    }

    /// The tag of the next record: counter, length, bytes.
    fn tag(&mut self, data: &[u8]) -> io::Result<blake3::Hash> {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(&self.seq.to_be_bytes());
        h.update(&(data.len() as u64).to_be_bytes());
        h.update(data);
        self.seq = self.seq.checked_add(1).ok_or_else(|| io::Error::other("record counter exhausted"))?;
        Ok(h.finalize())
    }

    fn verify(&mut self, data: &[u8], tag: &[u8]) -> io::Result<()> {
        let want = self.tag(data)?;
        let got: [u8; TAG] = tag.try_into().map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "short tag"))?;
        // blake3::Hash compares in constant time.
        if want != blake3::Hash::from(got) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "integrity check failed: the record was altered"));
        }
        Ok(())
    }
}

/// A stream of authenticated records over `S` (see the module doc).
pub struct MacStream<S> {
    inner: S,
    send: Direction,
    recv: Direction,
    /// Plaintext waiting to be sealed into a record.
    out_plain: Vec<u8>,
    /// A sealed record being written, and how much of it is out.
    out_wire: Vec<u8>,
    out_pos: usize,
    /// The record being read: header + bytes + tag, and how much arrived.
    in_wire: Vec<u8>,
    in_have: usize,
    /// Verified bytes not yet handed to the reader.
    in_plain: Vec<u8>,
    in_pos: usize,
}

impl<S> MacStream<S> {
    /// `client`: whether this side dialed (it sends with the client's key).
    pub fn new(inner: S, keys: &Keys, client: bool) -> io::Result<MacStream<S>> {
        let (send, recv) = if client {
            (&keys.client_to_server, &keys.server_to_client)
        } else {
            (&keys.server_to_client, &keys.client_to_server)
        };
        Ok(MacStream {
            inner,
            send: Direction::new(send)?,
            recv: Direction::new(recv)?,
            out_plain: Vec::new(),
            out_wire: Vec::new(),
            out_pos: 0,
            in_wire: vec![0; 4],
            in_have: 0,
            in_plain: Vec::new(),
            in_pos: 0,
        })
    }

    /// Seal the pending plaintext into the outgoing record.
    fn seal(&mut self) -> io::Result<()> {
        let tag = self.send.tag(&self.out_plain)?;
        self.out_wire.clear();
        self.out_wire.extend_from_slice(&(self.out_plain.len() as u32).to_le_bytes());
        self.out_wire.extend_from_slice(&self.out_plain);
        self.out_wire.extend_from_slice(tag.as_bytes());
        self.out_pos = 0;
        self.out_plain.clear();
        Ok(())
    }
}

impl<S: AsyncWrite + Unpin> MacStream<S> {
    /// Write out the sealed record, if any.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_pos < self.out_wire.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out_wire[self.out_pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_pos += n;
        }
        self.out_wire.clear();
        self.out_pos = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for MacStream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        let n = buf.len().min(RECORD - this.out_plain.len());
        this.out_plain.extend_from_slice(&buf[..n]);
        if this.out_plain.len() == RECORD {
            this.seal()?;
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        if !this.out_plain.is_empty() {
            this.seal()?;
            ready!(this.poll_drain(cx))?;
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for MacStream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.in_pos == this.in_plain.len() {
            // Fill the record being read: its 4-byte length first, then the rest.
            while this.in_have < this.in_wire.len() {
                let mut rb = ReadBuf::new(&mut this.in_wire[this.in_have..]);
                ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
                let n = rb.filled().len();
                if n == 0 {
                    if this.in_have == 0 && this.in_wire.len() == 4 {
                        return Poll::Ready(Ok(())); // clean end between records
                    }
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::UnexpectedEof, "truncated record")));
                }
                this.in_have += n;
            }
            if this.in_wire.len() == 4 {
                let len =
                    u32::from_le_bytes([this.in_wire[0], this.in_wire[1], this.in_wire[2], this.in_wire[3]]) as usize;
                if len > RECORD {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, "record too large")));
                }
                this.in_wire.resize(4 + len + TAG, 0);
                continue;
            }
            let body_end = this.in_wire.len() - TAG;
            this.recv.verify(&this.in_wire[4..body_end], &this.in_wire[body_end..])?;
            this.in_plain.clear();
            this.in_plain.extend_from_slice(&this.in_wire[4..body_end]);
            this.in_pos = 0;
            this.in_wire.truncate(4);
            this.in_have = 0;
        }
        let n = buf.remaining().min(this.in_plain.len() - this.in_pos);
        buf.put_slice(&this.in_plain[this.in_pos..this.in_pos + n]);
        this.in_pos += n;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn pair() -> (MacStream<tokio::io::DuplexStream>, MacStream<tokio::io::DuplexStream>) {
        let keys = Keys { client_to_server: [1; 32], server_to_client: [2; 32] };
        let (a, b) = tokio::io::duplex(1 << 20);
        (MacStream::new(a, &keys, true).unwrap(), MacStream::new(b, &keys, false).unwrap())
    }

    #[tokio::test]
    async fn bytes_cross_in_both_directions_across_record_boundaries() {
        let (mut c, mut s) = pair();
        let big: Vec<u8> = (0..RECORD * 2 + 123).map(|i| i as u8).collect();
        let sent = big.clone();
        let writer = tokio::spawn(async move {
            c.write_all(&sent).await.unwrap();
            c.flush().await.unwrap();
            let mut back = [0u8; 5];
            c.read_exact(&mut back).await.unwrap();
            back
        });
        let mut got = vec![0u8; big.len()];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(got, big);
        s.write_all(b"hello").await.unwrap();
        s.flush().await.unwrap();
        assert_eq!(&writer.await.unwrap(), b"hello");
    }

    #[tokio::test]
    async fn an_altered_or_replayed_record_is_refused() {
        let keys = Keys { client_to_server: [1; 32], server_to_client: [2; 32] };
        // Capture one sealed record from a sender, then tamper with it.
        let (a, mut raw) = tokio::io::duplex(1 << 16);
        let mut c = MacStream::new(a, &keys, true).unwrap();
        c.write_all(b"a request").await.unwrap();
        c.flush().await.unwrap();
        let mut wire = vec![0u8; 4 + 9 + TAG];
        raw.read_exact(&mut wire).await.unwrap();
        for (case, bytes) in [
            ("a flipped byte", {
                let mut w = wire.clone();
                w[6] ^= 1;
                w
            }),
            ("a replay after the original", [wire.clone(), wire.clone()].concat()),
        ] {
            let (mut tx, rx) = tokio::io::duplex(1 << 16);
            let mut s = MacStream::new(rx, &keys, false).unwrap();
            tx.write_all(&bytes).await.unwrap();
            drop(tx);
            let mut out = Vec::new();
            let err = s.read_to_end(&mut out).await.expect_err(case);
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{case}: {err}");
        }
    }
}
