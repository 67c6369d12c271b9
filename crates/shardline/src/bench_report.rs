//! `shardline bench`'s human summary: every figure of the JSON report
//! beside the baseline measured in the same run. A row prints only when
//! its figures are in the report (the phase ran).

use serde_json::{Map, Value};

use crate::bench_latency;

/// Print `r` (the JSON report) as the summary; `storage` and `store` are
/// the storage and shard-store lines, `levels` the metadata concurrencies.
pub fn print(r: &Map<String, Value>, storage: &str, store: &str, levels: &[usize]) {
    let get = |k: &str| r.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let has = |k: &str| r.contains_key(k);
    let lat = |k: &str, f: &str| r.get(k).and_then(|v| v.get(f)).and_then(Value::as_f64).unwrap_or(0.0);
    let pct = |x: f64, of: f64| 100.0 * x / of.max(1e-9);
    let loopback = get("loopback_mbps");
    println!("shardline bench (MB/s = 10^6 bytes/s; every ratio is against a number measured in this run)");
    println!("  storage       {storage}");
    println!(
        "  baselines     loopback TCP {loopback:.0} MB/s, memcpy {:.0} MB/s, XChaCha20-Poly1305 seal {:.0} MB/s/core, RS 4+2 encode {:.0} MB/s/core",
        get("memcpy_mbps"),
        get("seal_mbps_1core"),
        get("rs_encode_mbps_1core")
    );
    let (tls, integrity) = (get("loopback_tls_mbps"), get("loopback_integrity_only_mbps"));
    println!(
        "  loopback TLS  {tls:.0} MB/s ({:.1}% of loopback TCP): TLS 1.3 AES-GCM, as every Shardline connection; \
         integrity-only {integrity:.0} MB/s ({:.1}%)",
        pct(tls, loopback),
        pct(integrity, loopback)
    );
    let direct = |k: &str| {
        if r.get(k).and_then(Value::as_bool).unwrap_or(false) {
            "O_DIRECT"
        } else {
            "buffered, O_DIRECT refused"
        }
    };
    println!(
        "  raw disk      sequential write {:.0} MB/s ({} streams of 1 MiB writes, then fdatasync), sequential read {:.0} MB/s (4 MiB reads, {}){}",
        get("disk_seq_write_mbps"),
        get("disk_write_streams"),
        get("disk_seq_read_mbps"),
        direct("disk_seq_direct_io"),
        if has("disk_random_128k_reads_per_s_8r") {
            format!("; random 128 KiB reads, 8 threads: {:.0}/s", get("disk_random_128k_reads_per_s_8r"))
        } else {
            String::new()
        }
    );
    println!("  shard store   {store}");
    let cap = get("cap_check_us");
    println!(
        "  latency       fsync (256 B write + fdatasync, cluster disk) {:.3} ms median / {:.3} ms mean into preallocated space, \
         {:.3} / {:.3} ms appending; loopback TCP round trip {:.3} ms median / {:.3} ms mean; \
         capability check {cap:.2} µs per shard request ({:.1}% of the round trip)",
        lat("fsync_latency", "median_ms"),
        lat("fsync_latency", "mean_ms"),
        lat("fsync_append_latency", "median_ms"),
        lat("fsync_append_latency", "mean_ms"),
        lat("loopback_rtt", "median_ms"),
        lat("loopback_rtt", "mean_ms"),
        pct(cap, lat("loopback_rtt", "median_ms") * 1000.0)
    );
    let (write, read) = (get("write_mbps"), get("read_mbps"));
    // RS 4+2: every byte written lands on the data servers' disks 1.5 times.
    let on_disk = write * 1.5;
    println!(
        "  native write  {write:>8.1} MB/s  {:>5.1}% of loopback; {on_disk:.0} MB/s of shards to disk = {:.1}% of the raw disk's write",
        pct(write, loopback),
        pct(on_disk, get("disk_seq_write_mbps"))
    );
    println!(
        "  native read   {read:>8.1} MB/s  {:>5.1}% of loopback, {:.1}% of loopback TLS",
        pct(read, loopback),
        pct(read, tls)
    );
    println!(
        "  chunk format v2, 1 core: AES-256-GCM seal {:.0} / open {:.0} MB/s, XChaCha20-Poly1305 seal {:.0} / open {:.0} MB/s (v1 whole-chunk open {:.0} MB/s)",
        get("seal_v2_aes_mbps_1core"),
        get("open_v2_aes_mbps_1core"),
        get("seal_v2_xchacha_mbps_1core"),
        get("open_v2_xchacha_mbps_1core"),
        get("open_v1_mbps_1core")
    );
    if has("random_128k_reads_per_s_8r") {
        let (n, d) = (get("random_128k_reads_per_s_8r"), get("disk_random_128k_reads_per_s_8r"));
        println!("  random 128 KiB reads, 8 readers: native {n:.0}/s  {:.1}% of the raw disk's {d:.0}/s", pct(n, d));
    }
    if has("fuse_write_mbps") {
        let (w, rd) = (get("fuse_write_mbps"), get("fuse_read_mbps"));
        println!("  FUSE write    {w:>8.1} MB/s  {:>5.1}% of native write", pct(w, write));
        let cold = match r.get("fuse_read_page_cache_bytes_before").and_then(Value::as_u64) {
            Some(b) => format!("cold: fresh mount, {b} bytes of the files in its page cache before the read"),
            None => "cold: fresh mount".into(),
        };
        println!(
            "  FUSE read     {rd:>8.1} MB/s  {:>5.1}% of native read, {:>5.1}% of the raw disk's sequential read ({cold})",
            pct(rd, read),
            pct(rd, get("disk_seq_read_mbps"))
        );
        for &c in levels {
            println!(
                "  FUSE metadata, {c:>2} thread(s): create {:.0}/s, stat {:.0}/s cached ({:.0}/s uncached, {:.0}/s listed then stat'ed), rename {:.0}/s, unlink {:.0}/s",
                get(&format!("fuse_create_per_s_{c}c")),
                get(&format!("fuse_stat_per_s_{c}c")),
                get(&format!("fuse_stat_uncached_per_s_{c}c")),
                get(&format!("fuse_list_stat_per_s_{c}c")),
                get(&format!("fuse_rename_per_s_{c}c")),
                get(&format!("fuse_unlink_per_s_{c}c"))
            );
        }
    }
    small_files(r);
    if has("fuse_ls_l_entries_per_s") {
        println!(
            "  listing       {:.0} entries, one thread through the mount, each on a fresh mount: readdir {:.0}/s, ls -l (readdir + lstat of each) {:.0}/s, as GNU ls -l (also two getxattr of each) {:.0}/s (made natively at {:.0} creates/s)",
            get("list_entries"),
            get("fuse_readdir_entries_per_s"),
            get("fuse_ls_l_entries_per_s"),
            get("fuse_gnu_ls_l_entries_per_s"),
            get("list_create_per_s")
        );
    }
    if has("list_lookup_per_s") {
        println!(
            "  large dir     natively: readdir {:.0}/s, with attributes {:.0}/s; lookup of random names {:.0}/s, create into it {:.0}/s (32 in flight)",
            get("list_native_readdir_entries_per_s"),
            get("list_native_readdirplus_entries_per_s"),
            get("list_lookup_per_s"),
            get("list_create_into_full_per_s")
        );
    }
    for &c in levels {
        println!(
            "  metadata, {c:>2} client(s): create {:.0}/s, stat {:.0}/s, rename {:.0}/s, unlink {:.0}/s",
            get(&format!("meta_create_per_s_{c}c")),
            get(&format!("meta_stat_per_s_{c}c")),
            get(&format!("meta_rename_per_s_{c}c")),
            get(&format!("meta_unlink_per_s_{c}c"))
        );
    }
    println!("  where a metadata write's time goes (means over the run):");
    for &c in levels {
        for (via, prefix) in [("FUSE", "fuse"), ("native", "meta")] {
            for op in ["create", "rename", "unlink"] {
                if let Some(b) = r.get(&format!("{prefix}_{op}_breakdown_{c}c")) {
                    println!("    {via} {op}, {c} thread(s): {}", bench_latency::describe(b));
                }
            }
        }
    }
    if has("degraded_read_mbps") {
        let d = get("degraded_read_mbps");
        println!(
            "  degraded read {d:>8.1} MB/s  {:>5.1}% of the healthy native read (1 of 8 data servers down, repair stopped)",
            pct(d, read)
        );
    }
    let cpu: Vec<String> = [
        ("native write", "cpu_s_per_gb_native_write"),
        ("native read", "cpu_s_per_gb_native_read"),
        ("FUSE write", "cpu_s_per_gb_fuse_write"),
        ("FUSE read", "cpu_s_per_gb_fuse_read"),
        ("degraded read", "cpu_s_per_gb_degraded_read"),
    ]
    .iter()
    .filter(|(_, k)| has(k))
    .map(|(name, k)| format!("{name} {:.2}", get(k)))
    .collect();
    println!(
        "  CPU           {} CPU-s per GB moved (user + system of all {} cluster processes and this client; the mount's too through FUSE)",
        cpu.join(", "),
        get("cpu_processes")
    );
    if has("rebuild_mbps") {
        println!(
            "  rebuild       {:>8.1} MB/s of shards rebuilt ({:.0}% of native write; throttle {} MB/s per data server, shared by its rebuild tasks)",
            get("rebuild_mbps"),
            pct(get("rebuild_mbps"), write),
            get("rebuild_throttle_mbps_per_data_server")
        );
    }
}

/// The small-file rows, each beside the local disk's figure.
fn small_files(r: &Map<String, Value>) {
    let get = |k: &str| r.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    if !r.contains_key("small_files") {
        return;
    }
    let (lw, lr) = (get("small_local_write_files_per_s"), get("small_local_read_files_per_s"));
    let local_read = if r.get("small_local_read_direct_io").and_then(Value::as_bool).unwrap_or(false) {
        "O_DIRECT after a syncfs: data from the device, directories and inodes from memory"
    } else {
        "buffered and warm: the file system refused O_DIRECT"
    };
    let stored = match get("small_file_max") as u64 {
        0 => "every file RS 4+2".to_string(),
        max => format!("files of at most {} KiB stored as 3 copies, the rest RS 4+2", max >> 10),
    };
    println!(
        "  small files   {:.0} files of 64-128 KiB ({:.1} MB) in {:.0} folders, 8 threads ({stored}); local disk (std::fs on the data folder's file system): \
         write {lw:.0} files/s (create, write, close; no fsync), shuffled read {lr:.0} files/s ({local_read})",
        get("small_files"),
        get("small_bytes") / 1e6,
        get("small_folders")
    );
    let pct = |x: f64, of: f64| 100.0 * x / of.max(1e-9);
    if r.contains_key("small_fuse_write_files_per_s") {
        let (w, rd) = (get("small_fuse_write_files_per_s"), get("small_fuse_read_files_per_s"));
        println!(
            "    through the mount: write {w:.0} files/s ({:.1} MB/s, {:.1}% of local), cold shuffled read on a fresh mount {rd:.0} files/s ({:.1} MB/s, {:.1}% of local)",
            get("small_fuse_write_mbps"),
            pct(w, lw),
            get("small_fuse_read_mbps"),
            pct(rd, lr)
        );
    } else {
        println!(
            "    native write {:.0} files/s ({:.1} MB/s; no mount)",
            get("small_native_write_files_per_s"),
            get("small_native_write_mbps")
        );
    }
    let (n, p) = (get("small_native_read_files_per_s"), get("small_native_prefetch_read_files_per_s"));
    println!(
        "    native client, fresh clients, shuffled: 8 read_file tasks {n:.0} files/s ({:.1} MB/s, {:.1}% of local), prefetch API (window 8) {p:.0} files/s",
        get("small_native_read_mbps"),
        pct(n, lr)
    );
}
