//! Black-box: `shardline bench --json` at tiny sizes on 127.0.0.136 runs
//! every phase end to end and reports the rows issues 10 and 11 ask for —
//! the raw disk's sequential O_DIRECT read, small files (mount, native
//! client, local disk), listing, the degraded read (then the rebuild of the
//! same killed server) and whole-cluster CPU per GB — with the existing
//! keys kept. Figures are checked for presence and sign, never speed.

mod harness;
#[path = "harness/mount.rs"]
mod mount;

use mount::require_fuse;

#[test]
fn bench_reports_every_row_at_tiny_sizes() {
    require_fuse();
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = std::process::Command::new(harness::BIN)
        .args(["bench", "--json", "--size", &(16u64 << 20).to_string(), "--files", "2"])
        .args(["--meta-ops", "20", "--meta-clients", "1", "--random-samples", "16"])
        .args(["--small-files", "50", "--list-entries", "200", "--host", "127.0.0.136", "--data-dir"])
        .arg(tmp.path().join("bench"))
        .output()
        .expect("run bench");
    assert!(out.status.success(), "bench failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let positive = [
        // Rows that were there before.
        "loopback_mbps",
        "write_mbps",
        "read_mbps",
        "fuse_write_mbps",
        "fuse_read_mbps",
        "random_128k_reads_per_s_8r",
        "disk_random_128k_reads_per_s_8r",
        "rebuild_mbps",
        // The raw disk's sequential read, the cold FUSE read's baseline.
        "disk_seq_read_mbps",
        // Small files.
        "small_fuse_write_files_per_s",
        "small_fuse_write_mbps",
        "small_fuse_read_files_per_s",
        "small_fuse_read_mbps",
        "small_native_read_files_per_s",
        "small_native_read_mbps",
        "small_native_prefetch_read_files_per_s",
        "small_local_write_files_per_s",
        "small_local_read_files_per_s",
        // Listing.
        "list_create_per_s",
        "fuse_readdir_entries_per_s",
        "fuse_ls_l_entries_per_s",
        // Degraded read.
        "degraded_read_mbps",
        "degraded_read_pct_of_healthy",
        "fuse_read_pct_of_disk_seq",
        // CPU per GB.
        "cpu_s_per_gb_native_write",
        "cpu_s_per_gb_native_read",
        "cpu_s_per_gb_fuse_write",
        "cpu_s_per_gb_fuse_read",
        "cpu_s_per_gb_degraded_read",
    ];
    for k in positive {
        assert!(v[k].as_f64().is_some_and(|x| x > 0.0), "{k} missing or not positive: {v}");
    }
    assert_eq!(v["small_files"], 50, "{v}");
    assert_eq!(v["small_folders"], 50, "one folder per file below 100 files: {v}");
    let small_bytes = v["small_bytes"].as_u64().expect("small_bytes");
    assert!((50 * (64 << 10)..=50 * (128 << 10)).contains(&small_bytes), "{v}");
    assert_eq!(v["list_entries"], 200, "{v}");
    assert_eq!(v["degraded_data_servers_down"], 1, "{v}");
    // The server the degraded read killed is the one rebuilt afterwards.
    assert!(v["rebuild_bytes"].as_u64().is_some_and(|b| b > 0), "{v}");
    // 11 server processes and the bench itself.
    assert_eq!(v["cpu_processes"], 12, "{v}");
    assert!(v["disk_seq_direct_io"].is_boolean() && v["small_local_read_direct_io"].is_boolean(), "{v}");
    // The FUSE read is cold: a fresh mount, nothing of the files cached.
    assert_eq!(v["fuse_read_fresh_mount"], true, "{v}");
    if let Some(cached) = v.get("fuse_read_page_cache_bytes_before") {
        assert_eq!(cached, 0, "{v}");
    }
}
