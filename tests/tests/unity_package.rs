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

/// The GUID a `.meta` file gives its asset.
fn meta_guid(meta: &Path) -> String {
    std::fs::read_to_string(meta)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("guid: "))
        .unwrap_or_else(|| panic!("no guid in {}", meta.display()))
        .trim()
        .to_string()
}

/// Every `{fileID: N}` and `{fileID: N, guid: G, type: T}` reference in a Unity YAML text.
fn references(text: &str) -> Vec<(i64, Option<String>)> {
    let mut out = Vec::new();
    for part in text.split("{fileID: ").skip(1) {
        let end = part.find('}').unwrap();
        let inner = &part[..end];
        let id: i64 = inner.split(',').next().unwrap().trim().parse().unwrap();
        let guid = inner
            .split(", ")
            .find_map(|f| f.strip_prefix("guid: "))
            .map(str::to_owned);
        out.push((id, guid));
    }
    out
}

/// Checks one Unity YAML file of the sample: every object it refers to is in the file, every
/// asset it refers to is in the sample with that GUID, components and their GameObjects point at
/// each other, and each script's serialized fields are public fields of that script. Returns
/// how many MonoBehaviours it holds.
fn check_unity_yaml(file: &Path, guids: &HashMap<String, PathBuf>) -> usize {
    let text = std::fs::read_to_string(file).unwrap();
    let name = file.display();
    assert!(
        text.starts_with("%YAML 1.1\n%TAG !u! tag:unity3d.com,2011:\n"),
        "{name}"
    );
    let mut objects: HashMap<i64, (u32, String)> = HashMap::new();
    for doc in text.split("--- !u!").skip(1) {
        let (head, body) = doc.split_once('\n').unwrap();
        let (class, id) = head.split_once(" &").unwrap();
        let previous = objects.insert(
            id.parse().unwrap(),
            (class.parse().unwrap(), body.to_owned()),
        );
        assert!(previous.is_none(), "{name}: object {id} twice");
    }
    const BUILTIN: &str = "0000000000000000f000000000000000";
    let mut behaviours = 0;
    for (id, (class, body)) in &objects {
        for (target, guid) in references(body) {
            match guid {
                None if target != 0 => assert!(
                    objects.contains_key(&target),
                    "{name}: object {id} refers to missing {target}"
                ),
                Some(g) if g != BUILTIN => assert!(
                    guids.contains_key(&g),
                    "{name}: object {id} refers to unknown asset {g}"
                ),
                _ => {}
            }
        }
        if *class == 1 {
            let listed = body.split("m_Component:").nth(1).unwrap();
            for (component, _) in references(listed.split("m_Layer").next().unwrap()) {
                assert!(
                    objects[&component]
                        .1
                        .contains(&format!("m_GameObject: {{fileID: {id}}}")),
                    "{name}: component {component} does not point back to GameObject {id}"
                );
            }
        }
        if *class == 114 {
            behaviours += 1;
            let script = body
                .lines()
                .find(|l| l.contains("m_Script:"))
                .and_then(|l| references(l).pop())
                .and_then(|(_, g)| g)
                .unwrap();
            let source = std::fs::read_to_string(&guids[&script]).unwrap();
            let fields = body
                .split("m_EditorClassIdentifier:")
                .nth(1)
                .unwrap()
                .lines()
                .skip(1)
                .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
                .map(|l| l.trim().split(':').next().unwrap().to_owned());
            for field in fields {
                assert!(
                    source.lines().any(|l| l.contains("public ")
                        && (l.contains(&format!(" {field} "))
                            || l.contains(&format!(" {field};")))),
                    "{name}: {field} is not a public field of {}",
                    guids[&script].display()
                );
            }
        }
    }
    behaviours
}

#[test]
fn the_sample_scene_and_prefabs_reference_only_what_exists() {
    // As far as Unity YAML can be checked without Unity.
    let sample = package().join("Samples~/ChunkStreaming");
    let guids: HashMap<String, PathBuf> = std::fs::read_dir(&sample)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "meta"))
        .map(|m| (meta_guid(&m), m.with_extension("")))
        .collect();
    assert_eq!(
        check_unity_yaml(&sample.join("ChunkStreaming.unity"), &guids),
        2,
        "the scene's two components"
    );
    assert_eq!(check_unity_yaml(&sample.join("CubeWalk.prefab"), &guids), 1);
    assert_eq!(check_unity_yaml(&sample.join("Player.prefab"), &guids), 1);
    let material = std::fs::read_to_string(sample.join("ChunkMaterial.mat")).unwrap();
    for (_, guid) in references(&material) {
        if let Some(g) = guid {
            assert!(
                guids.contains_key(&g),
                "the material's shader {g} is not in the sample"
            );
        }
    }
}
