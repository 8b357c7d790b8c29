//! Generated files stay current: the C header (cbindgen) is regenerated from the source and
//! compared with the committed `include/cubewalk.h`. With `CUBEWALK_UPDATE_GENERATED=1` the
//! file is rewritten instead.

use std::path::Path;

fn check_or_update(path: &Path, fresh: &str) {
    let update = std::env::var("CUBEWALK_UPDATE_GENERATED").is_ok_and(|v| v == "1");
    let current = std::fs::read_to_string(path).unwrap_or_default();
    if update {
        if current != fresh {
            std::fs::write(path, fresh).unwrap();
        }
        return;
    }
    assert!(
        current == fresh,
        "{} is stale: run `CUBEWALK_UPDATE_GENERATED=1 cargo test -p cubewalk --test generated` and commit it",
        path.display()
    );
}

#[test]
fn c_header_is_current() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).unwrap();
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen")
        .write(&mut out);
    let fresh = String::from_utf8(out).unwrap();
    check_or_update(&crate_dir.join("../include/cubewalk.h"), &fresh);
}
