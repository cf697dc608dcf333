"""What libcampus-core.so exports: the plugin API (the declarations agent/include/campus/ marks
CAMPUS_API) and nothing of the daemon (store, publisher, commands, ...), which is a static
library in the programs that run it. A plugin built against the headers finds every symbol it
needs; a daemon internal that leaks into the library's interface fails here."""
import os
import re
import subprocess
import unittest

from harness import BUILD

SOURCE = os.environ.get("CAMPUS_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../.."))
HEADERS = os.path.join(SOURCE, "agent", "include", "campus")
LIBRARY = os.path.join(BUILD, "lib", "libcampus-core.so")
PLUGINS = os.path.join(BUILD, "plugins")


def exported_names():
    """Demangled names of the functions and objects the library defines in its dynamic table."""
    out = subprocess.run(["nm", "-D", "--defined-only", "-C", LIBRARY], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return [line.split(" ", 2)[2] for line in out.splitlines() if line.count(" ") >= 2]


def declared_api():
    """The names marked CAMPUS_API in the public headers: classes, structs and free functions."""
    classes, functions = set(), set()
    for name in sorted(os.listdir(HEADERS)):
        with open(os.path.join(HEADERS, name), encoding="utf-8") as f:
            text = "\n".join(line for line in f if not line.startswith("#"))
        classes.update(re.findall(r"\b(?:class|struct) CAMPUS_API (\w+)", text))
        functions.update(re.findall(r"\bCAMPUS_API [^;{(]*?\b(\w+)\(", text))
    return classes, functions


class Exports(unittest.TestCase):
    def test_only_the_plugin_api_is_exported(self):
        classes, functions = declared_api()
        self.assertIn("TableReader", classes)
        self.assertIn("make_http_client", functions)
        own = [n for n in exported_names() if n.startswith("campus::")]
        self.assertTrue(own, f"{LIBRARY} exports nothing of campus::")
        leaked = []
        for n in own:
            m = re.match(r"campus::(\w+)", n)
            if m.group(1) not in classes | functions:
                leaked.append(n)
        self.assertEqual(leaked, [], "exported by libcampus-core.so but not marked CAMPUS_API in "
                         "agent/include/campus/ (mark it there, or keep it in the daemon's static library)")
        for name in sorted(classes | functions):
            self.assertTrue(any(re.match(rf"campus::{name}\b", n) for n in own),
                            f"{name} is marked CAMPUS_API but libcampus-core.so does not define it")
        for daemon_part in ("Store", "Publisher", "Scheduler", "PluginHost", "Outbox", "StoreExecutor"):
            self.assertFalse(any(re.match(rf"campus::{daemon_part}\b", n) for n in own), daemon_part)

    def test_every_plugin_finds_its_symbols_in_the_api(self):
        # Each shipped plugin's undefined campus:: symbols are all exported by the library, and
        # the module exports its descriptor.
        own = set(n for n in exported_names() if n.startswith("campus::"))
        for module in ("campus-fiber.so", "campus-recording.so", "campus-attendance.so"):
            path = os.path.join(PLUGINS, module)
            out = subprocess.run(["nm", "-D", "--undefined-only", "-C", path], capture_output=True, text=True,
                                 check=True, timeout=60).stdout
            needed = [line.split(None, 1)[1] for line in out.splitlines() if "campus::" in line]
            missing = [n for n in needed if n.split("@")[0] not in own]
            self.assertEqual(missing, [], module)
            defined = subprocess.run(["nm", "-D", "--defined-only", path], capture_output=True, text=True,
                                     check=True, timeout=60).stdout
            self.assertIn("campus_plugin_descriptor", defined, module)


if __name__ == "__main__":
    unittest.main()
