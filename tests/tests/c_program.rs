//! A C program compiled with the system C compiler against `include/cubewalk.h` and linked to
//! the built `libcubewalk`, run against the local gateway.

use cubewalk_e2e::{Stack, TOKEN};
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn c_program_round_trips_through_the_shared_library() {
    let lib_dir = cubewalk_e2e::built_artifacts();
    assert!(
        lib_dir.join("libcubewalk.so").exists(),
        "no libcubewalk.so in {}",
        lib_dir.display()
    );

    let out = std::env::temp_dir().join(format!("cubewalk-roundtrip-{}", std::process::id()));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let compiled = Command::new(cc)
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"])
        .arg("-I")
        .arg(workspace().join("include"))
        .arg(workspace().join("tests/c/roundtrip.c"))
        .arg("-L")
        .arg(&lib_dir)
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .arg("-lcubewalk")
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        compiled.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&compiled.stderr)
    );

    for stack in [Stack::memory(), Stack::redis()] {
        let run = Command::new(&out)
            .arg(stack.endpoint())
            .arg(TOKEN)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success() && stdout.starts_with("ok"),
            "C program failed: {stdout}{}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    let _ = std::fs::remove_file(out);
}
