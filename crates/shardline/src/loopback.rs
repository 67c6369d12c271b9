//! Measure this machine's loopback TCP bandwidth, the baseline every
//! throughput number is reported beside.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use anyhow::{Context, Result};

/// Move `total` bytes over `streams` parallel loopback connections (1 MiB
/// writes, like shard traffic) and return bytes per second.
pub fn measure(total: u64, streams: usize) -> Result<f64> {
    let streams = streams.max(1);
    let per_stream = (total / streams as u64).max(1 << 20);
    let listener = TcpListener::bind("127.0.0.1:0").context("bind loopback listener")?;
    let addr = listener.local_addr()?;
    let receivers = std::thread::spawn(move || -> std::io::Result<()> {
        let mut handles = Vec::new();
        for _ in 0..streams {
            let (mut s, _) = listener.accept()?;
            handles.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 20];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                }
            }));
        }
        for h in handles {
            let _ = h.join();
        }
        Ok(())
    });
    let start = Instant::now();
    let senders: Vec<_> = (0..streams)
        .map(|_| {
            std::thread::spawn(move || -> std::io::Result<()> {
                let mut s = TcpStream::connect(addr)?;
                s.set_nodelay(true)?;
                let buf = vec![0x5au8; 1 << 20];
                let mut left = per_stream;
                while left > 0 {
                    let n = left.min(buf.len() as u64) as usize;
                    s.write_all(&buf[..n])?;
                    left -= n as u64;
                }
                Ok(())
            })
        })
        .collect();
    for s in senders {
        s.join().map_err(|_| anyhow::anyhow!("loopback sender panicked"))??;
    }
    receivers.join().map_err(|_| anyhow::anyhow!("loopback receiver panicked"))??;
    let secs = start.elapsed().as_secs_f64();
    Ok((per_stream * streams as u64) as f64 / secs)
}

/// As [`measure`], through mutual TLS (certificates like the cluster's:
/// `server` holds a data server's, `client` a client's): what TLS costs on
/// this machine before any of Shardline's work. With `integrity_only` the
/// client offers the integrity-only transport (used if `server` accepts it).
pub async fn measure_tls(
    total: u64,
    streams: usize,
    server: std::sync::Arc<shardline_rpc::Tls>,
    client: std::sync::Arc<shardline_rpc::Tls>,
    integrity_only: bool,
) -> Result<f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let streams = streams.max(1);
    let per_stream = (total / streams as u64).max(1 << 20);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("bind loopback listener")?;
    let addr = listener.local_addr()?;
    let receivers = tokio::spawn(async move {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..streams {
            let (tcp, _) = listener.accept().await?;
            let server = server.clone();
            tasks.spawn(async move {
                let (mut s, _) = server.accept(tcp).await?;
                let mut buf = vec![0u8; 1 << 20];
                while s.read(&mut buf).await? > 0 {}
                std::io::Result::Ok(())
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.map_err(std::io::Error::other)??;
        }
        std::io::Result::Ok(())
    });
    let start = Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..streams {
        let client = client.clone();
        senders.spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let mut s = client.connect_with(tcp, shardline_rpc::Role::Data, integrity_only).await?;
            let buf = vec![0x5au8; 1 << 20];
            let mut left = per_stream;
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                s.write_all(&buf[..n]).await?;
                left -= n as u64;
            }
            s.shutdown().await
        });
    }
    while let Some(r) = senders.join_next().await {
        r.context("TLS loopback sender")?.context("TLS loopback send")?;
    }
    receivers.await.context("TLS loopback receiver")?.context("TLS loopback receive")?;
    let secs = start.elapsed().as_secs_f64();
    Ok((per_stream * streams as u64) as f64 / secs)
}
