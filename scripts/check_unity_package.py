#!/usr/bin/env python3
"""Checks a Unity package tarball as Unity would import it, without Unity.

- every imported file and folder has a .meta, and every .meta its file or folder;
- GUIDs are unique;
- each native plugin's .meta enables exactly the platform and CPU its bytes are built for
  (ELF x86_64 / aarch64, PE x86-64, Mach-O universal or thin), and excludes the others;
- the C# bindings inside declare exactly the functions each plugin inside exports;
- package.json's version is the native library's version (sdk/Cargo.toml), and its
  dependencies name the built-in modules the package uses;
- what every supported editor version's plugin importer does with the plugins
  (scripts/unity_plugins.py): no two at one final path in any build target, for the plugins in
  the tarball and for every committed .meta (Android and iOS included, built elsewhere), and
  every supported target gets one.

Usage: check_unity_package.py <package.tgz>
"""

import json
import re
import struct
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import unity_plugins  # noqa: E402

# Built-in modules the package's code uses: UnityWebRequest (the managed transport), physics
# (the sample's raycasts and mesh colliders), IMGUI (the sample's on-screen messages).
MODULES = ("com.unity.modules.unitywebrequest", "com.unity.modules.physics", "com.unity.modules.imgui")
failures = []


def fail(message):
    failures.append(message)
    print("FAIL:", message)


def imported(path: Path, package: Path):
    """Whether Unity imports this path (hidden and `~` folders are skipped)."""
    for part in path.relative_to(package).parts:
        if part.startswith(".") or part.endswith("~"):
            return False
    return True


def binary_kind(data: bytes):
    """(format, cpus) from a plugin's first bytes."""
    if data[:4] == b"\x7fELF":
        machine = struct.unpack_from("<H", data, 18)[0]
        return "elf", {62: {"x86_64"}, 183: {"ARM64"}}.get(machine, {f"elf-{machine}"})
    if data[:2] == b"MZ":
        pe = struct.unpack_from("<I", data, 0x3C)[0]
        machine = struct.unpack_from("<H", data, pe + 4)[0]
        return "pe", {0x8664: {"x86_64"}, 0xAA64: {"ARM64"}}.get(machine, {f"pe-{machine:x}"})
    macho_cpus = {0x01000007: "x86_64", 0x0100000C: "ARM64"}
    if data[:4] == b"\xca\xfe\xba\xbe":
        count = struct.unpack_from(">I", data, 4)[0]
        cpus = {macho_cpus.get(struct.unpack_from(">I", data, 8 + 20 * i)[0], "?") for i in range(count)}
        return "macho", cpus
    if data[:4] == b"\xcf\xfa\xed\xfe":
        return "macho", {macho_cpus.get(struct.unpack_from("<I", data, 4)[0], "?")}
    if data[:8] == b"!<arch>\n":
        return "archive", {"?"}
    return "unknown", set()


def meta_platforms(text: str):
    """{platform name: (enabled, CPU)} and the `Exclude X` flags ("0"/"1") of a PluginImporter
    .meta, as the importer model (unity_plugins.parse_meta) reads them."""
    plugin = unity_plugins.parse_meta("", text)
    platforms = {name: (on, settings.get("CPU")) for name, (on, settings) in plugin.platforms.items()}
    excludes = {name: "1" if excluded else "0" for name, excluded in plugin.excludes.items()}
    return platforms, excludes


def expected_platform(rel: str, fmt: str, cpus: set):
    """(Unity platform, CPU, editor OS or None) a plugin file must be set to."""
    if fmt == "elf" and rel.startswith("Runtime/Plugins/Android/"):
        return "Android", "ARM64" if cpus == {"ARM64"} else "x86_64", None
    if fmt == "elf":
        cpu = next(iter(cpus))
        return "Linux64", cpu, "Linux" if cpu == "x86_64" else None
    if fmt == "pe":
        return "Win64", next(iter(cpus)), "Windows"
    if fmt == "macho":
        cpu = "AnyCPU" if cpus == {"x86_64", "ARM64"} else next(iter(cpus))
        return "OSXUniversal", cpu, "OSX"
    if fmt == "archive":
        return "iOS", None, None
    return None, None, None


def exports(path: Path, fmt: str):
    if fmt == "elf":
        out = subprocess.run(["llvm-nm", "-D", "--defined-only", str(path)], capture_output=True, text=True, check=True).stdout
        return {l.split()[-1] for l in out.splitlines() if len(l.split()) >= 3 and l.split()[1].isupper()}
    if fmt == "pe":
        out = subprocess.run(["llvm-objdump", "-p", str(path)], capture_output=True, text=True, check=True).stdout
        table = out.split("Export Table:")[1].split("\n\n")[0] if "Export Table:" in out else ""
        return {l.split()[-1] for l in table.splitlines() if l.split() and l.split()[0].isdigit()}
    if fmt == "macho":
        names = set()
        for arch in ("x86_64", "arm64"):
            out = subprocess.run(["llvm-nm", "-g", "--defined-only", f"--arch={arch}", str(path)],
                                 capture_output=True, text=True).stdout
            names |= {l.split()[-1].lstrip("_") for l in out.splitlines() if len(l.split()) >= 3}
        return names
    return None


def main(tarball: str):
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(tarball) as tar:
            tar.extractall(tmp, filter="data")
        package = Path(tmp) / "package"
        if not (package / "package.json").is_file():
            fail("no package/package.json: not the layout 'Add package from tarball' expects")
            return

        manifest = json.loads((package / "package.json").read_text())
        cargo = subprocess.run(["cargo", "metadata", "--no-deps", "--format-version", "1", "--locked"],
                               capture_output=True, text=True, check=True, cwd=ROOT).stdout
        crate = next(p["version"] for p in json.loads(cargo)["packages"] if p["name"] == "cubewalk")
        if manifest["version"] != crate:
            fail(f"package.json version {manifest['version']} != native library {crate}")
        if not Path(tarball).name == f"{manifest['name']}-{crate}.tgz":
            fail(f"tarball named {Path(tarball).name}, expected {manifest['name']}-{crate}.tgz")

        deps = manifest.get("dependencies", {})
        for module in MODULES:
            if module not in deps:
                fail(f"package.json does not depend on {module}")

        for where, folder, root, complete in (
                ("tarball", package / "Runtime/Plugins", package / "Runtime/Plugins", False),
                ("committed .meta files", ROOT / "unity-sample/Runtime/Plugins", ROOT / "unity-sample/Runtime/Plugins", True)):
            plugins = unity_plugins.load(folder, root)
            problems = unity_plugins.check(plugins, require_all=complete)
            for problem in problems:
                fail(f"{where}: {problem}")
            if not problems:
                print(f"ok: {where}: {len(plugins)} plugins, one per build target in Unity "
                      + ", ".join(f"{a}.{b}" for a, b in unity_plugins.EDITORS))

        guids = {}
        for path in sorted(package.rglob("*")):
            if not imported(path, package):
                continue
            rel = path.relative_to(package).as_posix()
            if path.name.endswith(".meta"):
                if not Path(str(path)[:-5]).exists():
                    fail(f"{rel} has no file or folder")
                    continue
                guid = re.search(r"^guid: ([0-9a-f]{32})$", path.read_text(), re.M)
                if not guid:
                    fail(f"{rel} has no GUID")
                elif guid.group(1) in guids:
                    fail(f"{rel} repeats the GUID of {guids[guid.group(1)]}")
                else:
                    guids[guid.group(1)] = rel
            elif rel != "package.json.meta" and not Path(str(path) + ".meta").exists() and rel != "":
                fail(f"{rel} has no .meta")

        binding = (package / "Runtime/NativeMethods.g.cs").read_text()
        declared = set(re.findall(r"\b(cw_[a-z_]+)\s*\(", binding))
        plugins = [p for p in (package / "Runtime/Plugins").rglob("*")
                   if p.suffix in (".so", ".dll", ".dylib", ".a")]
        if not plugins:
            fail("no native plugin in the package")
        for path in plugins:
            before = len(failures)
            rel = path.relative_to(package).as_posix()
            fmt, cpus = binary_kind(path.read_bytes()[:4096])
            platform, cpu, editor_os = expected_platform(rel, fmt, cpus)
            meta = Path(str(path) + ".meta").read_text()
            if "PluginImporter:" not in meta:
                fail(f"{rel}.meta is not a PluginImporter")
                continue
            platforms, excludes = meta_platforms(meta)
            enabled = {name for name, (on, _) in platforms.items() if on and name != "Editor"}
            if enabled != {platform}:
                fail(f"{rel} is {fmt} {sorted(cpus)}: .meta enables {sorted(enabled)}, expected {platform}")
            elif cpu and platforms[platform][1] != cpu:
                fail(f"{rel} is {fmt} {sorted(cpus)}: .meta says CPU {platforms[platform][1]}, expected {cpu}")
            wanted_excludes = {k: "0" if k == platform else "1" for k in excludes if k != "Editor"}
            for key, value in wanted_excludes.items():
                if excludes.get(key) != value:
                    fail(f"{rel}: Exclude {key} is {excludes.get(key)}, expected {value}")
            editor = platforms.get("Editor", (False, None))
            if editor_os and not editor[0]:
                fail(f"{rel}: the Editor on {editor_os} cannot load it (Editor not enabled)")
            if editor[0]:
                os_setting = re.search(r"^\s+OS: (\w+)$", meta, re.M)
                if not editor_os or not os_setting or os_setting.group(1) != editor_os or editor[1] != (cpu or "AnyCPU"):
                    fail(f"{rel}: Editor settings {os_setting and os_setting.group(1)}/{editor[1]} do not match {editor_os}/{cpu}")
            got = exports(path, fmt)
            if got is not None and got != declared:
                fail(f"{rel} exports {sorted(got ^ declared)} differently from NativeMethods.g.cs")
            if len(failures) == before:
                print(f"ok: {rel}: {fmt} {'+'.join(sorted(cpus))} -> {platform} {cpu or ''}")
        print(f"checked {len(guids)} .meta files, {len(plugins)} plugins, {len(declared)} bound functions")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
    if failures:
        sys.exit(f"{len(failures)} problem(s) in {sys.argv[1]}")
    print("unity package: ok")
