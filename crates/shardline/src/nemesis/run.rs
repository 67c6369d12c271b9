//! One nemesis run, start to end: lay out and start the cluster, start the
//! workloads, carry out the schedule, undo every fault, time the heal,
//! stop the workloads, read everything back, check the namespace
//! histories, and print the summary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use shardline_client::{Client, ClientConfig};
use shardline_types::ROOT_INO;

use crate::cluster::Cluster;
use crate::content::FileModel;
use crate::data_load::{DataLoad, File, Stats};
use crate::fuse_load::FuseLoad;
use crate::mount::Mount;
use crate::nemesis::Nemesis;
use crate::ns_load::{self, Histories};
use crate::schedule::{digest, schedule, ScheduleSpec};
use crate::summary::Summary;
use crate::topology::{Node, Topology};
use crate::{parse_duration, parse_seed, Args};

/// Small chunks so that "several chunks" stays small.
const CHUNK: u32 = 64 << 10;

struct Profile {
    duration: Duration,
    spec: ScheduleSpec,
    writers: usize,
    files_per_writer: usize,
    readers: usize,
    ns_groups: usize,
    ns_clients: usize,
    fuse_writers: usize,
    fuse_readers: usize,
    heal_bound: Duration,
}

fn profile(args: &Args, mount: bool) -> Result<Profile> {
    let (default, gap, conc, writers, readers, fuse) = match args.profile.as_str() {
        "ci" => (Duration::from_secs(100), (3000, 7000), 2, 3, 2, (1, 1)),
        "long" => (Duration::from_secs(1800), (3000, 9000), 3, 4, 3, (2, 1)),
        other => bail!("unknown profile {other:?}: ci or long"),
    };
    let duration = match &args.duration {
        Some(d) => parse_duration(d).with_context(|| format!("--duration {d:?}"))?,
        None => default,
    };
    Ok(Profile {
        duration,
        spec: ScheduleSpec { duration, gap_ms: gap, max_concurrent: conc, mount },
        writers,
        files_per_writer: 3,
        readers,
        ns_groups: 2,
        ns_clients: 3,
        fuse_writers: fuse.0,
        fuse_readers: fuse.1,
        heal_bound: Duration::from_secs(180),
    })
}

fn files(prefix: &str, dirs: &[u64], per_dir: usize, seed: u64, salt: u64) -> Vec<File> {
    let mut out = Vec::new();
    for (w, &parent) in dirs.iter().enumerate() {
        for i in 0..per_dir {
            let n = out.len();
            let name = format!("f{i}");
            out.push(File {
                path: format!("{prefix}{w}/{name}"),
                parent,
                name,
                model: Mutex::new(FileModel::new(shardline_types::placement::mix64(seed ^ salt ^ n as u64))),
            });
        }
    }
    out
}

async fn connect(cluster_file: &Path) -> Result<Client> {
    let text = std::fs::read_to_string(cluster_file)?;
    let v: toml::Value = toml::from_str(&text)?;
    let metas: Vec<String> = v["meta"]
        .as_array()
        .context("meta servers")?
        .iter()
        .filter_map(|m| m["addr"].as_str().map(String::from))
        .collect();
    let key = PathBuf::from(v["key_file"].as_str().context("key_file")?);
    let tls = crate::cluster::identity(&v, "client")?;
    Ok(Client::connect(ClientConfig::new(metas, key, tls)).await?)
}

async fn mkdir(client: &Client, parent: u64, name: &str) -> Result<u64> {
    Ok(client.inodes().mkdir(parent, name, 0o755, 0, 0).await.with_context(|| format!("mkdir {name}"))?.ino)
}

pub fn run(args: Args) -> Result<bool> {
    let seed = match &args.seed {
        Some(s) => parse_seed(s).with_context(|| format!("--seed {s:?}"))?,
        None => rand::random::<u64>(),
    };
    let mount_ok = !args.no_mount && crate::mount::available().is_ok();
    let p = profile(&args, mount_ok)?;
    let topo = Topology::new(3, 6);
    let events = schedule(seed, &p.spec, &topo);
    let replay = format!(
        "tools/nemesis --seed {seed:#x} --profile {} --duration {}s{}",
        args.profile,
        p.duration.as_secs(),
        if mount_ok { "" } else { " --no-mount" }
    );
    println!(
        "nemesis: seed {seed:#x}, profile {}, {} s of faults, {} faults scheduled (digest {:08x}){}",
        args.profile,
        p.duration.as_secs(),
        events.len(),
        digest(&events),
        if mount_ok { "" } else { ", no FUSE mount (unavailable or --no-mount)" }
    );
    if args.print_schedule {
        for e in &events {
            println!("{:>8.1}s {:>6.1}s {:?}", e.at.as_secs_f64(), e.lasts.as_secs_f64(), e.fault);
        }
        return Ok(true);
    }
    let bin = match &args.bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?.with_file_name("shardline"),
    };
    let tmp = tempfile::Builder::new().prefix("shardline-nemesis-").tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    println!("nemesis: cluster folder {}", dir.display());
    let mut cluster = Cluster::prepare(&bin, &dir, topo.clone(), args.octet, &args.ec, CHUNK)?;
    for n in crate::schedule::clock_targets(&events) {
        if !cluster.enable_clock(n) {
            println!("nemesis: no libfaketime ({}): clock jumps on {n} are skipped", crate::cluster::LIBFAKETIME);
        }
    }
    for n in topo.servers() {
        cluster.start(n)?;
    }
    cluster.wait_healthy(Duration::from_secs(90)).context("start the cluster")?;

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let client_file = cluster.cluster_file("client.toml");
    let setup = rt.block_on(async {
        let c = connect(&client_file).await?;
        let root = mkdir(&c, ROOT_INO, "nemesis").await?;
        let mut wdirs = Vec::new();
        for w in 0..p.writers {
            wdirs.push(mkdir(&c, root, &format!("w{w}")).await?);
        }
        let fuse_root = mkdir(&c, root, "fuse").await?;
        let mut fdirs = Vec::new();
        for w in 0..p.fuse_writers {
            fdirs.push(mkdir(&c, fuse_root, &format!("u{w}")).await?);
        }
        let mut ns = BTreeMap::new();
        let epochs = p.duration.as_secs() / ns_load::EPOCH.as_secs() + 12;
        for g in 0..p.ns_groups {
            for e in 0..epochs {
                ns.insert((g, e), mkdir(&c, root, &ns_load::dir_name(g, e)).await?);
            }
        }
        Ok::<_, anyhow::Error>((wdirs, fdirs, ns))
    });
    let (wdirs, fdirs, ns_dirs) = setup.context("set up the workload's folders")?;

    let mut mount = if mount_ok {
        let mut m = Mount::new(&bin, &cluster.cluster_file("mount.toml"), &dir)?;
        m.start().context("mount")?;
        Some(m)
    } else {
        None
    };

    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Stats::default());
    let data = Arc::new(DataLoad {
        t0,
        files: files("/nemesis/w", &wdirs, p.files_per_writer, seed, 1 << 40),
        writers: p.writers,
        chunk: CHUNK as u64,
        stats: stats.clone(),
        stop: stop.clone(),
    });
    let fuse = Arc::new(FuseLoad {
        t0,
        mount: mount.as_ref().map(|m| m.path.clone()).unwrap_or_default(),
        files: files("/nemesis/fuse/u", &fdirs, p.files_per_writer, seed, 2 << 40),
        writers: p.fuse_writers,
        chunk: CHUNK as u64,
        stats: stats.clone(),
        stop: stop.clone(),
    });
    let hist = Arc::new(Histories::default());
    *hist.inos.lock().unwrap_or_else(|e| e.into_inner()) = ns_dirs;

    let mut tasks = Vec::new();
    for w in 0..p.writers {
        let client = rt.block_on(connect(&client_file))?;
        tasks.push(rt.spawn(data.clone().writer(client, w, seed)));
    }
    for r in 0..p.readers {
        let client = rt.block_on(connect(&client_file))?;
        tasks.push(rt.spawn(data.clone().reader(client, r, seed)));
    }
    for g in 0..p.ns_groups {
        for c in 0..p.ns_clients {
            let client = rt.block_on(connect(&client_file))?;
            tasks.push(rt.spawn(ns_load::worker(client, g, c, seed, t0, hist.clone(), stop.clone())));
        }
    }
    let mut threads = Vec::new();
    if mount.is_some() {
        for w in 0..p.fuse_writers {
            let f = fuse.clone();
            threads.push(std::thread::spawn(move || f.writer(w, seed)));
        }
        for r in 0..p.fuse_readers {
            let f = fuse.clone();
            threads.push(std::thread::spawn(move || f.reader(r, seed)));
        }
    }

    // The fault phase.
    let mut nem = Nemesis::new(&mut cluster, mount.as_mut(), args.verbose);
    let mut last_note = Instant::now();
    nem.run(&events, t0, p.duration, || {
        if last_note.elapsed() > Duration::from_secs(30) {
            last_note = Instant::now();
            println!(
                "nemesis: {:.0} s: {} writes acked, {} reads checked, {} bad",
                t0.elapsed().as_secs_f64(),
                stats.writes_ok.load(Ordering::Relaxed),
                stats.reads_ok.load(Ordering::Relaxed),
                stats.bad_reads.load(Ordering::Relaxed)
            );
        }
    });
    nem.heal_all();
    let healing = Instant::now();
    println!("nemesis: faults over; every fault undone, waiting for health");
    stop.store(true, Ordering::Relaxed);
    let heal = nem.cluster.wait_healthy(p.heal_bound).and_then(|_| {
        // Every metadata server a member again, leader or follower.
        while !nem.cluster.metas_ok() {
            if healing.elapsed() > p.heal_bound {
                anyhow::bail!("metadata servers not all members after {:?}", p.heal_bound);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    });
    let heal_seconds = heal.as_ref().ok().map(|_| healing.elapsed().as_secs_f64());
    if let Err(e) = &heal {
        eprintln!("nemesis: {e:#}");
    }
    // Let the workloads finish their last operations.
    let deadline = Instant::now() + Duration::from_secs(120);
    rt.block_on(async {
        for t in tasks {
            let left = deadline.saturating_duration_since(Instant::now());
            let abort = t.abort_handle();
            if tokio::time::timeout(left, t).await.is_err() {
                abort.abort();
            }
        }
    });
    for t in threads {
        while !t.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    nem.check_exits();
    let report = std::mem::take(&mut nem.report);
    drop(nem);

    // Read everything back, close and check the namespace histories.
    let metas: Vec<String> = (1..=topo.metas).map(|i| cluster.listen[&Node::Meta(i)].clone()).collect();
    let data_dirs: BTreeMap<u64, PathBuf> = (1..=topo.datas).map(|d| (d, cluster.node_dir(Node::Data(d)))).collect();
    let verify = rt.block_on(async {
        let c = connect(&client_file).await?;
        let all: Vec<&File> = data.files.iter().chain(fuse.files.iter()).collect();
        let fin = crate::verify::final_reads(&c, t0, &all).await;
        let closed = ns_load::final_lookups(&c, t0, &hist).await;
        let mut inos = Vec::new();
        for f in &all {
            if let Ok(st) = c.stat(&f.path).await {
                inos.push(st.ino);
            }
        }
        let tls = crate::cluster::identity_of(&client_file, "admin")?;
        let red = crate::redundancy::check(metas.clone(), tls, &inos, &data_dirs).await;
        Ok::<_, anyhow::Error>((fin, closed, red))
    });
    let (fin, closed, red) = verify?;
    let lin = ns_load::check_all(&hist, 20_000_000);
    for &(g, e) in &lin.failed_dirs {
        let path = dir.join(format!("history-{}.txt", ns_load::dir_name(g, e)));
        ns_load::dump(&hist, g, e, &path);
        println!("nemesis: the history of {} is in {}", ns_load::dir_name(g, e), path.display());
    }

    let mut s = Summary {
        seed: format!("{seed:#x}"),
        profile: args.profile.clone(),
        fault_seconds: p.duration.as_secs_f64(),
        schedule_digest: format!("{:08x}", digest(&events)),
        faults: report.faults.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        faults_skipped: report.skipped,
        writes_acked: stats.writes_ok.load(Ordering::Relaxed),
        writes_failed: stats.writes_failed.load(Ordering::Relaxed),
        reads_checked: stats.reads_ok.load(Ordering::Relaxed) + fin.files,
        reads_failed: stats.reads_failed.load(Ordering::Relaxed),
        bytes_checked: stats.bytes_checked.load(Ordering::Relaxed) + fin.bytes_checked,
        namespace_ops: lin.operations as u64,
        namespace_unknown: lin.unknown as u64,
        mount: mount.is_some(),
        acked_writes_lost: fin.lost_writes,
        files_unreadable: fin.unreadable,
        wrong_reads: stats.wrong_reads.load(Ordering::Relaxed) + fin.wrong_reads,
        stale_reads: stats.stale_reads.load(Ordering::Relaxed) + fin.stale_reads,
        heal_seconds,
        heal_bound_seconds: p.heal_bound.as_secs_f64(),
        unexpected_exits: report.unexpected_exits.iter().map(|(n, how, _)| format!("{n} ({how})")).collect(),
        problems: report.errors.clone(),
        replay,
        ..Default::default()
    };
    s.linearizable = lin.failed.is_empty() && lin.gave_up == 0 && closed.is_ok();
    s.linearizability = if let Err(e) = &closed {
        e.clone()
    } else if !lin.failed.is_empty() {
        lin.failed.join(" | ")
    } else if lin.gave_up > 0 {
        format!("checker gave up on {} of {} histories", lin.gave_up, lin.histories)
    } else {
        format!("linearizable ({} histories, {} operations)", lin.histories, lin.operations)
    };
    match red {
        Ok(r) => {
            s.chunks_checked = r.chunks;
            s.shards_missing = r.shards_missing;
            for e in r.examples {
                println!("nemesis: detail: missing shard: {e}");
            }
        }
        Err(e) => s.problems.push(format!("redundancy check failed: {e:#}")),
    }
    s.judge();
    for d in fin.details.iter().chain(stats.first_bad.lock().unwrap_or_else(|e| e.into_inner()).iter()) {
        println!("nemesis: detail: {d}");
    }
    s.print();
    if args.json {
        println!("{}", serde_json::to_string(&s)?);
    }
    if let Some(m) = mount.as_mut() {
        m.stop();
    }
    cluster.stop_all();
    if !s.pass || args.keep || args.dir.is_some() {
        let kept = tmp.keep();
        println!("nemesis: cluster folder kept: {}", if args.dir.is_some() { &dir } else { &kept }.display());
    }
    Ok(s.pass)
}
