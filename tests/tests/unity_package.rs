//! The Unity package imports cleanly as far as can be checked without Unity: a valid
//! package.json and asmdef, a .meta (with a unique GUID) for every asset and folder Unity
//! imports, each native plugin pinned to its platform and CPU, and bindings fit for iOS.

use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn package() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../unity-sample")
}

/// Every path Unity imports: everything except folders ending in `~`, dot files, .meta files
/// and built binaries (never committed).
fn imported(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with('.') || name.ends_with('~') || name.ends_with(".meta") {
            continue;
        }
        if [".so", ".dll", ".dylib", ".a"]
            .iter()
            .any(|e| name.ends_with(e))
        {
            continue;
        }
        out.push(path.clone());
        if path.is_dir() {
            imported(&path, out);
        }
    }
}

#[test]
fn manifest_and_assembly_definition_are_valid() {
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(package().join("package.json")).unwrap())
            .unwrap();
    let name = manifest["name"].as_str().unwrap();
    assert!(
        name.starts_with("com.") && name == name.to_lowercase(),
        "UPM names are reverse-DNS lower case"
    );
    let version = manifest["version"].as_str().unwrap();
    assert_eq!(
        version
            .split('.')
            .filter(|p| p.parse::<u32>().is_ok())
            .count(),
        3,
        "semver"
    );
    assert!(manifest["unity"].as_str().unwrap().starts_with("20"));
    // One version: the native library's (the workspace's), which the tarball also carries.
    assert_eq!(version, env!("CARGO_PKG_VERSION"), "package.json version");
    for sample in manifest["samples"].as_array().unwrap() {
        assert!(package().join(sample["path"].as_str().unwrap()).is_dir());
    }
    let asmdef: Value = serde_json::from_str(
        &std::fs::read_to_string(package().join("Runtime/CubeWalk.Net.asmdef")).unwrap(),
    )
    .unwrap();
    assert_eq!(asmdef["name"], "CubeWalk.Net");
    assert_eq!(
        asmdef["allowUnsafeCode"], true,
        "pointers into pinned arrays need unsafe code"
    );
}

#[test]
fn every_imported_asset_has_a_meta_with_a_unique_guid() {
    let mut paths = Vec::new();
    imported(&package(), &mut paths);
    assert!(paths.len() > 10);
    let mut guids: HashMap<String, PathBuf> = HashMap::new();
    let mut metas = Vec::new();
    for p in &paths {
        let meta = PathBuf::from(format!("{}.meta", p.display()));
        assert!(
            meta.exists(),
            "{} has no .meta: Unity ignores it in an immutable package",
            p.display()
        );
        metas.push(meta);
    }
    // Plugin metas exist before their (built) binaries.
    for plugin in [
        "Runtime/Plugins/x86_64/cubewalk.dll",
        "Runtime/Plugins/x86_64/libcubewalk.so",
        "Runtime/Plugins/macOS/libcubewalk.dylib",
        "Runtime/Plugins/Android/arm64-v8a/libcubewalk.so",
        "Runtime/Plugins/iOS/libcubewalk.a",
    ] {
        metas.push(package().join(format!("{plugin}.meta")));
    }
    for meta in metas {
        let text = std::fs::read_to_string(&meta).unwrap();
        assert!(
            text.starts_with("fileFormatVersion: 2\n"),
            "{}",
            meta.display()
        );
        let guid = text
            .lines()
            .find_map(|l| l.strip_prefix("guid: "))
            .unwrap()
            .to_string();
        assert!(
            guid.len() == 32 && guid.chars().all(|c| c.is_ascii_hexdigit()),
            "{}",
            meta.display()
        );
        if let Some(other) = guids.insert(guid, meta.clone()) {
            panic!("{} and {} share a GUID", meta.display(), other.display());
        }
    }
}

#[test]
fn native_plugins_are_pinned_to_their_platform_and_cpu() {
    let expect = [
        (
            "x86_64/cubewalk.dll",
            "Standalone: Win64",
            "CPU: x86_64",
            "OS: Windows",
        ),
        (
            "x86_64/libcubewalk.so",
            "Standalone: Linux64",
            "CPU: x86_64",
            "OS: Linux",
        ),
        (
            "macOS/libcubewalk.dylib",
            "Standalone: OSXUniversal",
            "CPU: AnyCPU",
            "OS: OSX",
        ),
        (
            "Android/arm64-v8a/libcubewalk.so",
            "Android: Android",
            "CPU: ARM64",
            "",
        ),
        ("iOS/libcubewalk.a", "iPhone: iOS", "CPU: ARM64", ""),
    ];
    for (file, platform, cpu, editor) in expect {
        let meta = std::fs::read_to_string(package().join(format!("Runtime/Plugins/{file}.meta")))
            .unwrap();
        assert!(meta.contains("PluginImporter:"), "{file}");
        assert!(
            meta.contains(platform) && meta.contains(cpu),
            "{file} not pinned to {platform} {cpu}"
        );
        if editor.is_empty() {
            assert!(
                meta.contains("Exclude Editor: 1"),
                "{file} must not load in the Editor"
            );
        } else {
            assert!(
                meta.contains(editor) && meta.contains("Exclude Editor: 0"),
                "{file} Editor settings"
            );
        }
    }
    let bindings = std::fs::read_to_string(package().join("Runtime/NativeMethods.g.cs")).unwrap();
    assert!(
        bindings.contains("#if UNITY_IOS && !UNITY_EDITOR") && bindings.contains("\"__Internal\"")
    );
    assert!(bindings.contains("CallingConvention = CallingConvention.Cdecl"));
    assert!(!bindings.contains("nint"), "C# 7.2 (Mono mcs) has no nint");
}
