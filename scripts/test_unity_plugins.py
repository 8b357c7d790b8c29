#!/usr/bin/env python3
"""Tests of scripts/unity_plugins.py: the plugin importer model fails for the reasons a Unity
build would (the package's own .meta files before and after the fixes of the first-hour issue),
and reads define constraints and "Any Platform" as Unity does.

    python3 -m unittest scripts/test_unity_plugins.py
"""

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import unity_plugins as up  # noqa: E402

PLUGINS = Path(__file__).resolve().parent.parent / "unity-sample/Runtime/Plugins"


def committed():
    return up.load(PLUGINS, PLUGINS)


def without_constraints(plugins):
    for p in plugins:
        p.constraints = []
    return plugins


class CommittedMetas(unittest.TestCase):
    def test_every_editor_builds_every_target_with_one_plugin(self):
        self.assertEqual(up.check(committed(), require_all=True), [])

    def test_linux_arm64_only_where_the_editor_has_a_slot_for_it(self):
        for version in up.EDITORS:
            taken = up.plan(committed(), version)
            linux = [p.path for _, p in taken["Linux x64 player"]]
            self.assertEqual(linux, ["x86_64/libcubewalk.so"], version)
            if version >= up.PER_CPU_LINUX:
                self.assertEqual([p.path for _, p in taken["Linux arm64 player"]], ["arm64/libcubewalk.so"])

    def test_without_the_define_constraint_older_editors_stop_the_linux_build(self):
        # The .meta as it was: arm64 and x86_64 .so both enabled for Linux 64-bit.
        problems = up.check(without_constraints(committed()), require_all=True)
        for v in ("2021.3", "2022.3", "6000.0", "6000.2"):
            self.assertTrue(any(p.startswith(f"{v} Linux x64 player: plugin 'libcubewalk.so' is used from several locations")
                                for p in problems), (v, problems))
        self.assertFalse(any(p.startswith("6000.3") for p in problems), problems)

    def test_without_the_simulator_library_simulator_builds_have_no_plugin(self):
        # The package as it was: one iOS library, device CPU only.
        plugins = [p for p in committed() if not p.path.startswith("iOS/Simulator/")]
        problems = up.check(plugins, require_all=True)
        self.assertIn("2021.3 iOS simulator player: no cubewalk plugin (DllNotFoundException on the first call)", problems)

    def test_device_and_simulator_libraries_never_link_together(self):
        for version in up.EDITORS:
            taken = up.plan(committed(), version)
            self.assertEqual([p.path for _, p in taken["iOS device player"]], ["iOS/libcubewalk.a"])
            self.assertEqual([p.path for _, p in taken["iOS simulator player"]], ["iOS/Simulator/libcubewalk.a"])


META = """PluginImporter:
  defineConstraints: {constraints}
  platformData:
  - first:
      : Any
    second:
      enabled: {any}
      settings:
        Exclude Linux64: {exclude}
  - first:
      Any: 
    second:
      enabled: 0
      settings: {{}}
  - first:
      Standalone: Win64
    second:
      enabled: 0
      settings:
        CPU: x86_64
  userData: 
"""


class Rules(unittest.TestCase):
    def test_any_platform_on_the_arm64_library_collides_in_older_editors(self):
        # "Any Platform" ticked with nothing excluded is the same collision as Linux64 ticked.
        plugins = committed()
        arm = next(p for p in plugins if p.path == "arm64/libcubewalk.so")
        arm.constraints = []
        arm.platforms = {"Any": (True, {})}
        arm.excludes = {}
        problems = up.check(plugins, require_all=True)
        self.assertTrue(any(p.startswith("2021.3 Linux x64 player: plugin 'libcubewalk.so' is used from several locations")
                            for p in problems), problems)

    def test_an_arm64_library_is_no_library_for_an_x64_editor(self):
        plugins = committed()
        for p in plugins:
            if p.path == "x86_64/libcubewalk.so":
                p.platforms["Editor"] = (False, {})
            if p.path == "arm64/libcubewalk.so":
                p.platforms["Editor"] = (True, {"OS": "Linux", "CPU": "ARM64"})
        problems = up.check(plugins, require_all=True)
        self.assertIn("2021.3 Editor on Linux: no cubewalk plugin (DllNotFoundException on the first call)", problems)

    def test_define_constraints(self):
        self.assertTrue(up.holds("UNITY_2021_3_OR_NEWER", (2021, 3)))
        self.assertFalse(up.holds("UNITY_6000_3_OR_NEWER", (6000, 2)))
        self.assertTrue(up.holds("!UNITY_6000_3_OR_NEWER", (2022, 3)))
        self.assertTrue(up.holds("UNITY_6000_3_OR_NEWER || UNITY_2022_3_OR_NEWER", (2022, 3)))
        self.assertFalse(up.holds("SOME_PROJECT_DEFINE", (6000, 3)))
        listed = up.parse_meta("x/lib.so", "PluginImporter:\n  defineConstraints:\n  - A\n  - '!B'\n  platformData:\n")
        self.assertEqual(listed.constraints, ["A", "'!B'"])

    def test_any_platform_counts_unless_excluded(self):
        on = up.parse_meta("a/libcubewalk.so", META.format(constraints="[]", exclude=0, any=1))
        off = up.parse_meta("b/libcubewalk.so", META.format(constraints="[]", exclude=1, any=1))
        self.assertIsNotNone(up.enabled_for(on, "Linux64", (2022, 3)))
        self.assertIsNone(up.enabled_for(off, "Linux64", (2022, 3)))
        # Two "Any Platform" plugins of one name collide on Windows too.
        twice = [on, up.parse_meta("c/libcubewalk.so", META.format(constraints="[]", exclude=0, any=1))]
        self.assertTrue(any("Linux x64 player" in p for p in up.check(twice, require_all=False)))
        constrained = up.parse_meta("d/libcubewalk.so", META.format(constraints="[UNITY_6000_3_OR_NEWER]", exclude=0, any=1))
        self.assertIsNone(up.enabled_for(constrained, "Linux64", (2022, 3)))
        self.assertIsNotNone(up.enabled_for(constrained, "Linux64", (6000, 3)))


if __name__ == "__main__":
    unittest.main()
