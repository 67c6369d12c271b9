//! File commands: put, get, ls, stat, rm, mkdir.

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

pub async fn run(cmd: Cmd, cluster: &Option<PathBuf>) -> Result<()> {
    let client = connect(cluster).await?;
    match cmd {
        Cmd::Put { local, path } => {
            let mut f = std::fs::File::open(&local).with_context(|| format!("open {}", local.display()))?;
            let mut w = client.create(&path).await.with_context(|| format!("create {path}"))?;
            let mut buf = vec![0u8; 4 << 20];
            loop {
                let n = f.read(&mut buf).with_context(|| format!("read {}", local.display()))?;
                if n == 0 {
                    break;
                }
                w.write(&buf[..n]).await.with_context(|| format!("write {path}"))?;
            }
            let size = w.finish().await.with_context(|| format!("write {path}"))?;
            println!("{path}: {size} bytes");
        }
        Cmd::Get { path, local } => {
            let reader = client.open(&path).await.with_context(|| format!("open {path}"))?;
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
            let read = reader
                .for_each_chunk(6, |_, bytes| {
                    if write_err.is_none() {
                        write_err = out.write_all(&bytes).err();
                    }
                    Ok(())
                })
                .await;
            let flushed = out.flush();
            drop(out);
            let result = read.with_context(|| format!("read {path}")).and_then(|_| match write_err {
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
            let entries = client.list(&path).await.with_context(|| format!("list {path}"))?;
            if json {
                let v: Vec<_> = entries
                    .iter()
                    .map(|e| serde_json::json!({"name": e.name, "ino": e.ino, "kind": kind_name(e.kind)}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for e in entries {
                    let suffix = if e.kind == FileKind::Directory { "/" } else { "" };
                    println!("{}{suffix}", e.name);
                }
            }
        }
        Cmd::Stat { path, json } => {
            let s = client.stat(&path).await.with_context(|| format!("stat {path}"))?;
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
        Cmd::Rm { path } => client.remove(&path).await.with_context(|| format!("remove {path}"))?,
        Cmd::Mkdir { path } => {
            client.mkdir(&path).await.with_context(|| format!("mkdir {path}"))?;
        }
        Cmd::Layout { path, ec, chunk_size } => {
            let st = client.stat(&path).await.with_context(|| format!("stat {path}"))?;
            if ec.is_some() || chunk_size.is_some() {
                if st.kind != FileKind::Directory {
                    anyhow::bail!("{path}: a layout policy belongs to a directory");
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
                    .with_context(|| format!("set the layout of {path}"))?;
            }
            let st = client.stat(&path).await.with_context(|| format!("stat {path}"))?;
            println!("{path}: RS {}, {} KiB chunks", st.ec, st.chunk_size >> 10);
        }
        _ => unreachable!("dispatched elsewhere"),
    }
    Ok(())
}
