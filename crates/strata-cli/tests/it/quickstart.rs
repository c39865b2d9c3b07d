//! The README's quickstart runs, start to end, and shows what it promises.

#[test]
fn quickstart_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let root = crate::manifest_dir().join("../..");
    let o = std::process::Command::new("bash")
        .arg(root.join("quickstart.sh"))
        .arg(tmp.path().join("lh"))
        .env_remove("STRATA_LAKEHOUSE")
        .env("STRATA_BIN", crate::strata_bin())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for needle in [
        "Grace Hopper",
        "Barbara",
        "update_postimage",
        "MERGE",
        "customers_by_country",
        "ctas",
        "records: 20000 read, 20000 landed",
        "0 batch(es), no new version",
        "signup",
        "daily_totals",
        "known_event_type",
        "is not a valid TIMESTAMP",
        "skipped",
    ] {
        assert!(
            out.contains(needle),
            "quickstart output lacks {needle}: {out}"
        );
    }
}
