//! File commands: put, get, ls, stat, rm, mkdir.
//!
//! Paths and names are bytes (not necessarily UTF-8); only what is printed
//! for people shows them lossily.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use shardline_client::FileKind;

use crate::{connect, Cmd};

fn kind_name(k: FileKind) -> &'static str {
    match k {
        FileKind::File => "file",
        FileKind::Directory => "dir",
        FileKind::Symlink => "symlink",
        FileKind::Fifo => "fifo",
        FileKind::Socket => "socket",
        FileKind::CharDevice => "chardev",
        FileKind::BlockDevice => "blockdev",
    }
}

/// A name for people: invalid UTF-8 shown as U+FFFD.
fn lossy(name: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(name)
}

/// An entry of `ls --json`: the name lossily, and its exact bytes as well
/// when they are not UTF-8.
fn entry_json(e: &shardline_client::DirEntry) -> serde_json::Value {
    let mut v = serde_json::json!({"name": lossy(&e.name), "ino": e.ino, "kind": kind_name(e.kind)});
    if std::str::from_utf8(&e.name).is_err() {
        v["name_bytes"] = serde_json::json!(e.name);
    }
    v
}

pub async fn run(cmd: Cmd, cluster: &Option<PathBuf>) -> Result<()> {
    let client = connect(cluster).await?;
    match cmd {
        Cmd::Put { local, path } => {
            let shown = path.display();
            let mut f = std::fs::File::open(&local).with_context(|| format!("open {}", local.display()))?;
            let mut w = client.create(&path).await.with_context(|| format!("create {shown}"))?;
            let bar = crate::progress::bytes(f.metadata().map(|m| m.len()).unwrap_or(0), "put");
            let mut buf = vec![0u8; 4 << 20];
            loop {
                let n = f.read(&mut buf).with_context(|| format!("read {}", local.display()))?;
                if n == 0 {
                    break;
                }
                w.write(&buf[..n]).await.with_context(|| format!("write {shown}"))?;
                bar.inc(n as u64);
            }
            let size = w.finish().await.with_context(|| format!("write {shown}"))?;
            bar.finish_and_clear();
            println!("{shown}: {size} bytes");
        }
        Cmd::Get { path, local } => {
            let shown = path.display();
            let reader = client.open(&path).await.with_context(|| format!("open {shown}"))?;
            let to_stdout = local.as_os_str() == "-";
            // Write beside the target and rename on success, so a failed read
            // never leaves a file with wrong or missing bytes under that name.
            let partial = local.with_file_name(format!(
                ".{}.partial",
                local.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
            ));
            let mut out: Box<dyn Write> = if to_stdout {
                Box::new(std::io::stdout().lock())
            } else {
                Box::new(std::fs::File::create(&partial).with_context(|| format!("create {}", partial.display()))?)
            };
            let mut write_err = None;
            let bar = crate::progress::bytes(reader.size(), "get");
            let read = reader
                .for_each_chunk(6, |_, bytes| {
                    if write_err.is_none() {
                        write_err = out.write_all(&bytes).err();
                    }
                    bar.inc(bytes.len() as u64);
                    Ok(())
                })
                .await;
            bar.finish_and_clear();
            let flushed = out.flush();
            drop(out);
            let result = read.with_context(|| format!("read {shown}")).and_then(|_| match write_err {
                Some(e) => Err(e).with_context(|| format!("write {}", local.display())),
                None => flushed.with_context(|| format!("write {}", local.display())),
            });
            if to_stdout {
                return result;
            }
            if let Err(e) = result {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
            std::fs::rename(&partial, &local).with_context(|| format!("move into {}", local.display()))?;
        }
        Cmd::Ls { path, json } => {
            let shown = path.display();
            let entries = client.list(&path).await.with_context(|| format!("list {shown}"))?;
            if json {
                let v: Vec<_> = entries.iter().map(entry_json).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for e in entries {
                    let suffix = if e.kind == FileKind::Directory { "/" } else { "" };
                    println!("{}{suffix}", lossy(&e.name));
                }
            }
        }
        Cmd::Stat { path, json } => {
            let shown = path.display();
            let s = client.stat(&path).await.with_context(|| format!("stat {shown}"))?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ino": s.ino, "kind": kind_name(s.kind), "size": s.size, "mode": format!("{:o}", s.mode),
                        "nlink": s.nlink, "mtime_ns": s.mtime_ns, "ec": s.ec, "chunk_size": s.chunk_size, "encrypted": s.encrypted})
                );
            } else {
                println!("  kind: {}\n  size: {}\n  inode: {}\n  mode: {:o}\n  links: {}\n  layout: RS {}, {} KiB chunks\n  encrypted: {}",
                    kind_name(s.kind), s.size, s.ino, s.mode, s.nlink, s.ec, s.chunk_size >> 10, s.encrypted);
            }
        }
        Cmd::Rm { path } => client.remove(&path).await.with_context(|| format!("remove {}", path.display()))?,
        Cmd::Mkdir { path } => {
            let shown = path.display();
            client.mkdir(&path).await.with_context(|| format!("mkdir {shown}"))?;
        }
        Cmd::Layout { path, ec, chunk_size } => {
            let shown = path.display();
            let st = client.stat(&path).await.with_context(|| format!("stat {shown}"))?;
            if ec.is_some() || chunk_size.is_some() {
                if st.kind != FileKind::Directory {
                    anyhow::bail!("{shown}: a layout policy belongs to a directory");
                }
                let current = shardline_types::Layout { chunk_size: st.chunk_size, ..Default::default() }
                    .with_ec(&st.ec)
                    .context("read the current layout")?;
                let layout =
                    shardline_types::Layout { chunk_size: chunk_size.unwrap_or(current.chunk_size), ..current }
                        .with_ec(ec.as_deref().unwrap_or(&current.ec()))
                        .context("new layout")?;
                client
                    .inodes()
                    .set_layout(st.ino, layout)
                    .await
                    .with_context(|| format!("set the layout of {shown}"))?;
            }
            let st = client.stat(&path).await.with_context(|| format!("stat {shown}"))?;
            println!("{shown}: RS {}, {} KiB chunks", st.ec, st.chunk_size >> 10);
        }
        _ => unreachable!("dispatched elsewhere"),
    }
    Ok(())
}
