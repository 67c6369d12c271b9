//! Black-box: metadata at rest is encrypted with the metadata servers' key:
//! no file or directory name appears in plaintext anywhere under the
//! meta-N folders, in the Raft log or in snapshots, before or after a restart.

mod harness;

use harness::{content, TestCluster};

const NAMES: [&str; 3] = ["zanzibar-quokka-ledger", "xylophone-marmot-budget", "platypus-secret-plan"];

fn plaintext_hits(c: &TestCluster) -> Vec<String> {
    let mut hits = Vec::new();
    for f in c.all_files() {
        let rel = f.strip_prefix(c.data_dir()).unwrap_or(&f).to_string_lossy().into_owned();
        if !rel.starts_with("meta-") {
            continue;
        }
        let bytes = std::fs::read(&f).unwrap_or_default();
        for name in NAMES {
            if bytes.windows(name.len()).any(|w| w == name.as_bytes()) {
                hits.push(format!("{name} in {rel}"));
            }
        }
    }
    hits
}

#[test]
fn no_file_name_in_plaintext_under_the_meta_folders() {
    // Small snapshot interval: names land in snapshots as well as the log.
    std::env::set_var("SHARDLINE_META_SNAPSHOT_EVERY", "15");
    let mut c = TestCluster::start(51);
    c.ok(&["mkdir", &format!("/{}", NAMES[0])]);
    for (i, name) in NAMES.iter().enumerate() {
        c.put_bytes(&format!("/{}/{name}-{i}.bin", NAMES[0]), &content(1000 + i, i as u64));
        c.put_bytes(&format!("/{name}.top"), &content(500, 10 + i as u64));
    }
    let meta_files = c.all_files().iter().filter(|f| f.to_string_lossy().contains("/meta-")).count();
    assert!(meta_files >= 3, "meta folders hold files");
    assert_eq!(plaintext_hits(&c), Vec::<String>::new());

    // After a restart (snapshot + sealed log loaded back) the names are readable again.
    c.restart();
    let listing = c.ok(&["ls", &format!("/{}", NAMES[0])]);
    for (i, name) in NAMES.iter().enumerate() {
        assert!(listing.contains(&format!("{name}-{i}.bin")), "{listing}");
        assert_eq!(c.get_bytes(&format!("/{name}.top")).unwrap(), content(500, 10 + i as u64));
    }
    assert_eq!(plaintext_hits(&c), Vec::<String>::new());
    // Sanity check of the check itself: the key file is next to cluster.toml, not in a meta folder.
    assert!(c.data_dir().join("meta.key").exists());
}
