#!/usr/bin/env python3
"""What each Unity editor version does with each native plugin, read from the plugins' .meta
files alone, as Unity's plugin importer decides it at build time:

- a plugin goes into a build when its platform is enabled for the build target (or "Any" is
  enabled and the target not excluded), its CPU is not None and fits the target, and every
  entry of its `defineConstraints` holds in that editor version (`UNITY_6000_3_OR_NEWER` is
  true from 6000.3 on; `!X` negates; `A || B` is either);
- it lands at a final path per target: Windows players under `Plugins/<cpu>/`; Linux players
  under `Plugins/` with ONE slot for every CPU before 6000.3 (the importer's
  `CalculateFinalPluginPath` ignores the CPU there) and under `Plugins/<cpu>/` from 6000.3; the
  macOS bundle's `PlugIns/`; Android's `libs/<abi>/`; iOS links every static library into one
  binary (device builds take CPU ARM64 or AnyCPU, simulator builds X64 or AnyCPU), so two of
  one name clash there;
- two plugins at one final path stop the build ("Plugin 'X' is used from several locations");
  none at all for a target the package supports is a DllNotFoundException on first call.

`check(plugins, require_all)` answers those problems, one line each; `scripts/check_unity_package.py`
runs it on the package tarball and on every committed .meta (the Android and iOS ones
included, whose binaries are built elsewhere). `python3 scripts/unity_plugins.py <Plugins dir>`
prints the table for each editor version.
"""

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

# Editor versions the package supports (package.json "unity": 2021.3), including the last one
# with a single Linux slot and the first with one per CPU.
EDITORS = [(2021, 3), (2022, 3), (6000, 0), (6000, 2), (6000, 3)]
PER_CPU_LINUX = (6000, 3)
LIBRARY = "cubewalk"


@dataclass
class Plugin:
    """One native plugin as its .meta configures it."""
    path: str
    platforms: dict = field(default_factory=dict)  # name -> (enabled, settings)
    excludes: dict = field(default_factory=dict)  # "Exclude X" -> bool
    constraints: list = field(default_factory=list)

    @property
    def name(self):
        return self.path.rsplit("/", 1)[-1]

    @property
    def library(self):
        """The name DllImport("cubewalk") resolves to: the file name without lib prefix and suffix."""
        stem = self.name.split(".")[0]
        return stem[3:] if stem.startswith("lib") else stem


def parse_meta(path: str, text: str) -> Plugin:
    """A PluginImporter .meta (Unity's YAML, serializedVersion 2) as a Plugin."""
    plugin = Plugin(path)
    constraints = re.search(r"^  defineConstraints:(.*)$((?:\n  - .*)*)", text, re.M)
    if constraints:
        inline = constraints.group(1).strip()
        if inline not in ("", "[]"):
            plugin.constraints = [c.strip() for c in inline.strip("[]").split(",") if c.strip()]
        plugin.constraints += [l.strip()[2:].strip() for l in constraints.group(2).splitlines() if l.strip()]
    for block in re.split(r"\n  - first:\n", text)[1:]:
        # `first` is a (platform group, platform name) pair: `Standalone: Win64`, `Editor: Editor`,
        # and `: Any` (no group), which is the "Any Platform" checkbox with its `Exclude X`
        # flags. `Any: ` (a group, no platform) holds no switch of its own and is skipped.
        head = re.match(r"\s+(\S*): ?(\S*)", block)
        if not head or not head.group(2):
            continue
        name = head.group(2)
        enabled = re.search(r"^      enabled: (\d)", block, re.M)
        settings = dict(re.findall(r"^        ([A-Za-z0-9 ]+): ?(.*)$", block, re.M))
        if name == "Any":
            plugin.excludes = {k[len("Exclude "):]: v.strip() == "1" for k, v in settings.items() if k.startswith("Exclude ")}
        plugin.platforms[name] = (bool(enabled and enabled.group(1) == "1"), {k: v.strip() for k, v in settings.items()})
    return plugin


def holds(constraint: str, version) -> bool:
    """One defineConstraints entry in editor `version` (only version defines are known here)."""
    def symbol(s):
        s = s.strip()
        if s.startswith("!"):
            return not symbol(s[1:])
        m = re.fullmatch(r"UNITY_(\d+)_(\d+)_OR_NEWER", s)
        return bool(m) and (int(m.group(1)), int(m.group(2))) <= version
    return any(symbol(alt) for alt in constraint.split("||"))


def enabled_for(plugin: Plugin, platform: str, version):
    """The settings of `platform` when the plugin goes into its builds in `version`, else None."""
    if not all(holds(c, version) for c in plugin.constraints):
        return None
    on, settings = plugin.platforms.get(platform, (False, {}))
    if not on:
        any_on = plugin.platforms.get("Any", (False, {}))[0]
        if not any_on or plugin.excludes.get(platform, False):
            return None
    if settings.get("CPU") == "None":
        return None
    return settings


def targets(version):
    """(target, platform, accepts(settings), final path(plugin, settings)) for one editor version."""
    cpu = lambda s: s.get("CPU", "AnyCPU")
    linux_single = version < PER_CPU_LINUX
    rows = [
        ("Windows x64 player", "Win64", lambda s: cpu(s) in ("x86_64", "AnyCPU"),
         lambda p, s: f"Plugins/x86_64/{p.name}"),
        ("macOS player", "OSXUniversal", lambda s: True, lambda p, s: f"Contents/PlugIns/{p.name}"),
        ("Android arm64 player", "Android", lambda s: cpu(s) == "ARM64", lambda p, s: f"libs/arm64-v8a/{p.name}"),
        ("iOS device player", "iOS", lambda s: cpu(s) in ("ARM64", "AnyCPU"), lambda p, s: f"link:{p.library}"),
        ("iOS simulator player", "iOS", lambda s: cpu(s) in ("X64", "AnyCPU"), lambda p, s: f"link:{p.library}"),
        # The Editors are x64 on Windows and Linux; on macOS Intel or Apple silicon.
        ("Editor on Windows", "Editor", lambda s: s.get("OS", "AnyOS") in ("Windows", "AnyOS")
         and cpu(s) in ("x86_64", "AnyCPU"), lambda p, s: f"editor:{p.library}"),
        ("Editor on macOS", "Editor", lambda s: s.get("OS", "AnyOS") in ("OSX", "AnyOS"),
         lambda p, s: f"editor:{p.library}"),
        ("Editor on Linux", "Editor", lambda s: s.get("OS", "AnyOS") in ("Linux", "AnyOS")
         and cpu(s) in ("x86_64", "AnyCPU"), lambda p, s: f"editor:{p.library}"),
    ]
    if linux_single:
        # One slot: every Linux plugin lands at Plugins/<name>, whatever its CPU.
        rows.append(("Linux x64 player", "Linux64", lambda s: True, lambda p, s: f"Plugins/{p.name}"))
    else:
        rows.append(("Linux x64 player", "Linux64", lambda s: cpu(s) in ("x86_64", "AnyCPU"),
                     lambda p, s: f"Plugins/x86_64/{p.name}"))
        rows.append(("Linux arm64 player", "Linux64", lambda s: cpu(s) in ("ARM64", "AnyCPU"),
                     lambda p, s: f"Plugins/arm64/{p.name}"))
    return rows


def plan(plugins, version):
    """{target: [(final path, plugin)]} of what a build in `version` takes."""
    out = {}
    for target, platform, accepts, final in targets(version):
        taken = []
        for p in plugins:
            settings = enabled_for(p, platform, version)
            if settings is not None and accepts(settings):
                taken.append((final(p, settings), p))
        out[target] = taken
    return out


def check(plugins, require_all: bool):
    """Problems a build in any supported editor would meet: collisions always; with
    `require_all`, also a target the package supports that gets no plugin of ours."""
    problems = []
    for version in EDITORS:
        v = f"{version[0]}.{version[1]}"
        for target, taken in plan(plugins, version).items():
            by_path = {}
            for final, p in taken:
                by_path.setdefault(final, []).append(p.path)
            for final, paths in by_path.items():
                if len(paths) > 1:
                    what = ("the Editor loads whichever it finds first" if target.startswith("Editor")
                            else "the build stops")
                    problems.append(f"{v} {target}: plugin '{final.split(':')[-1].split('/')[-1]}' is used from "
                                    f"several locations: {', '.join(sorted(paths))} ({what})")
            ours = [p for _, p in taken if p.library == LIBRARY]
            if require_all and not ours:
                problems.append(f"{v} {target}: no {LIBRARY} plugin (DllNotFoundException on the first call)")
    return problems


def load(folder: Path, root: Path):
    """Every PluginImporter .meta under `folder`, paths relative to `root`."""
    plugins = []
    for meta in sorted(folder.rglob("*.meta")):
        text = meta.read_text()
        if "PluginImporter:" in text:
            plugins.append(parse_meta(meta.relative_to(root).as_posix()[:-5], text))
    return plugins


def table(plugins):
    for version in EDITORS:
        print(f"Unity {version[0]}.{version[1]}:")
        for target, taken in plan(plugins, version).items():
            where = "; ".join(f"{p.path} -> {final}" for final, p in taken) or "(none)"
            print(f"  {target:22} {where}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    folder = Path(sys.argv[1])
    found = load(folder, folder)
    table(found)
    issues = check(found, require_all=True)
    for line in issues:
        print("FAIL:", line)
    sys.exit(1 if issues else 0)
