//! The frame format (version 1).
//!
//! ```text
//! magic "SHL" | version u8 (=1) | header_len u32 LE | payload_len u32 LE | header | payload
//! ```
//! Lengths are bounded so that a hostile or corrupt peer cannot make us
//! allocate without limit.

use bytes::{BufMut, Bytes, BytesMut};
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::RpcError;

const MAGIC: [u8; 3] = *b"SHL";
const VERSION: u8 = 1;
const PREAMBLE_LEN: usize = 12;
/// Largest header accepted (directory listings are paged well below this).
pub const MAX_HEADER_LEN: usize = 16 << 20;
/// Largest payload accepted (a shard of a 64 MiB chunk with k = 1).
pub const MAX_PAYLOAD_LEN: usize = 80 << 20;

/// One message: a protobuf header and raw payload bytes.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    pub header: Bytes,
    pub payload: Bytes,
}

impl Frame {
    pub fn new(header: impl Into<Bytes>, payload: impl Into<Bytes>) -> Self {
        Frame { header: header.into(), payload: payload.into() }
    }

    /// Encode `msg` as the header.
    pub fn from_message<M: prost::Message>(msg: &M, payload: Bytes) -> Self {
        Frame { header: msg.encode_to_vec().into(), payload }
    }

    /// Decode the header as `M`.
    pub fn decode<M: prost::Message + Default>(&self) -> Result<M, RpcError> {
        Ok(M::decode(self.header.clone())?)
    }
}

/// A frame's fixed preamble, read and checked: how long the rest is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preamble {
    pub header_len: usize,
    pub payload_len: usize,
}

impl Preamble {
    /// Bytes that follow the preamble.
    pub fn body_len(&self) -> usize {
        self.header_len + self.payload_len
    }
}

/// Read one frame. `Ok(None)` means the peer closed the stream cleanly
/// between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Option<Frame>> {
    match read_preamble(r).await? {
        None => Ok(None),
        Some(pre) => read_body(r, pre).await.map(Some),
    }
}

/// Read and check a preamble. `Ok(None)`: clean end of stream before it.
/// The lengths are bounded by [`MAX_HEADER_LEN`] and [`MAX_PAYLOAD_LEN`], so
/// nothing larger is ever allocated.
pub async fn read_preamble<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Option<Preamble>> {
    let mut pre = [0u8; PREAMBLE_LEN];
    match r.read_exact(&mut pre[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    r.read_exact(&mut pre[1..]).await?;
    if pre[..3] != MAGIC {
        return Err(invalid("bad frame magic"));
    }
    if pre[3] != VERSION {
        return Err(invalid(&format!("unsupported frame version {}", pre[3])));
    }
    let header_len = u32::from_le_bytes([pre[4], pre[5], pre[6], pre[7]]) as usize;
    let payload_len = u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]]) as usize;
    if header_len > MAX_HEADER_LEN || payload_len > MAX_PAYLOAD_LEN {
        return Err(invalid("frame too large"));
    }
    Ok(Some(Preamble { header_len, payload_len }))
}

/// Read the header and payload a preamble announced.
pub async fn read_body<R: AsyncRead + Unpin>(r: &mut R, pre: Preamble) -> io::Result<Frame> {
    let header = read_exact_bytes(r, pre.header_len).await?;
    let payload = read_exact_bytes(r, pre.payload_len).await?;
    Ok(Frame { header, payload })
}

/// Read exactly `len` bytes into a fresh buffer, straight into its spare
/// capacity: no zero-fill pass over bytes about to be overwritten.
async fn read_exact_bytes<R: AsyncRead + Unpin>(r: &mut R, len: usize) -> io::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(len);
    while buf.len() < len {
        let want = len - buf.len();
        if r.read_buf(&mut (&mut buf).limit(want)).await? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "stream ended inside a frame"));
        }
    }
    Ok(buf.freeze())
}

/// Write one frame and flush it.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &Frame) -> io::Result<()> {
    if frame.header.len() > MAX_HEADER_LEN || frame.payload.len() > MAX_PAYLOAD_LEN {
        return Err(invalid("frame too large to send"));
    }
    let mut pre = [0u8; PREAMBLE_LEN];
    pre[..3].copy_from_slice(&MAGIC);
    pre[3] = VERSION;
    pre[4..8].copy_from_slice(&(frame.header.len() as u32).to_le_bytes());
    pre[8..12].copy_from_slice(&(frame.payload.len() as u32).to_le_bytes());
    // Small frames go out in one write; large payloads are written directly
    // from their buffer without a copy.
    let mut head = Vec::with_capacity(PREAMBLE_LEN + frame.header.len());
    head.extend_from_slice(&pre);
    head.extend_from_slice(&frame.header);
    if frame.payload.len() <= 64 << 10 {
        head.extend_from_slice(&frame.payload);
        w.write_all(&head).await?;
    } else {
        w.write_all(&head).await?;
        w.write_all(&frame.payload).await?;
    }
    w.flush().await
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trips_header_and_payload() {
        let (mut a, mut b) = tokio::io::duplex(1 << 20);
        let f = Frame::new(vec![1u8, 2, 3], vec![9u8; 100_000]);
        write_frame(&mut a, &f).await.unwrap();
        let got = read_frame(&mut b).await.unwrap().unwrap();
        assert_eq!(&got.header[..], &[1, 2, 3]);
        assert_eq!(got.payload.len(), 100_000);
        assert!(got.payload.iter().all(|&x| x == 9));
    }

    #[tokio::test]
    async fn a_payload_arriving_in_small_pieces_is_read_whole_and_a_cut_one_is_an_error() {
        // A 64-byte pipe hands the reader the payload a few bytes at a time.
        let (mut a, mut b) = tokio::io::duplex(64);
        let payload: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let f = Frame::new(vec![5u8; 40], payload.clone());
        let writer = tokio::spawn(async move { write_frame(&mut a, &f).await });
        let got = read_frame(&mut b).await.unwrap().unwrap();
        writer.await.unwrap().unwrap();
        assert_eq!(&got.header[..], &[5u8; 40]);
        assert_eq!(&got.payload[..], &payload[..]);

        let (mut a, mut b) = tokio::io::duplex(1 << 20);
        let mut bytes = b"SHL\x01".to_vec();
        bytes.extend_from_slice(&2u32.to_le_bytes());
        bytes.extend_from_slice(&1000u32.to_le_bytes());
        bytes.extend_from_slice(&[1, 2]);
        bytes.extend_from_slice(&[7u8; 999]);
        a.write_all(&bytes).await.unwrap();
        drop(a);
        assert_eq!(read_frame(&mut b).await.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn clean_eof_is_none() {
        let (a, mut b) = tokio::io::duplex(64);
        drop(a);
        assert!(read_frame(&mut b).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn rejects_bad_magic_and_oversized_lengths() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(b"XXX\x01\0\0\0\0\0\0\0\0").await.unwrap();
        assert_eq!(read_frame(&mut b).await.unwrap_err().kind(), io::ErrorKind::InvalidData);

        let (mut a, mut b) = tokio::io::duplex(64);
        let mut pre = b"SHL\x01".to_vec();
        pre.extend_from_slice(&0u32.to_le_bytes());
        pre.extend_from_slice(&u32::MAX.to_le_bytes());
        a.write_all(&pre).await.unwrap();
        assert_eq!(read_frame(&mut b).await.unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
