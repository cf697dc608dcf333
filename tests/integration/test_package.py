"""The Debian packages on this machine (CI is root on Debian 12): campus-agent (install, files,
owner and modes, the user, the unit verified, upgrade keeping config and data, remove, purge)
and campus-county beside it (the same for the collector). The machine is left as it was."""
import glob
import os
import pwd
import grp
import shutil
import stat
import subprocess
import tempfile
import unittest

from harness import BUILD

PKG = "campus-agent"
COUNTY_PKG = "campus-county"


def sh(*argv, check=True, env=None):
    full_env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    full_env.update(env or {})
    r = subprocess.run(argv, capture_output=True, text=True, env=full_env, timeout=300)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def installed_version(pkg=PKG):
    r = sh("dpkg-query", "-W", "-f=${Status} ${Version}", pkg, check=False)
    if r.returncode != 0 or "install ok installed" not in r.stdout:
        return None
    return r.stdout.split()[-1]


def build_deb(outdir, version, pkg=PKG):
    """Both packages of `version` (cpack makes them together); returns the one of `pkg`."""
    found = glob.glob(os.path.join(outdir, f"{pkg}_{version}_*.deb"))
    if not found:
        sh("cpack", "-G", "DEB", "-B", outdir, "--config", os.path.join(BUILD, "CPackConfig.cmake"),
           "-D", f"CPACK_PACKAGE_VERSION={version}")
        found = glob.glob(os.path.join(outdir, f"{pkg}_{version}_*.deb"))
    return found[0]


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


UNIT = "/lib/systemd/system/campus-agent.service"
CONFIG = "/etc/campus-agent/agent.toml"
WANTS = "/etc/systemd/system/*.wants/campus-agent.service"


def run_exec_condition(unit=UNIT, user="campus-agent"):
    """Runs the installed unit's ExecCondition= the way systemd would for the service: as its
    user and group, no new privileges (CI has no systemd as PID 1 to start it)."""
    with open(unit) as f:
        lines = [l for l in f.read().splitlines() if l.startswith("ExecCondition=")]
    assert len(lines) == 1, f"one ExecCondition= in {unit}: {lines}"
    argv = lines[0].split("=", 1)[1].split()
    return sh("setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", "--no-new-privs",
              *argv, check=False)


@unittest.skipUnless(os.geteuid() == 0, "installing a package needs root (CI runs as root)")
@unittest.skipUnless(shutil.which("dpkg") and shutil.which("cpack"), "needs dpkg and cpack")
class DebianPackage(unittest.TestCase):
    def setUp(self):
        for pkg in (PKG, COUNTY_PKG):
            if installed_version(pkg) is not None:
                self.skipTest(f"{pkg} is already installed on this machine; not touching it")
        self.out = tempfile.mkdtemp(prefix="campus-deb-")

    def tearDown(self):
        for pkg in (COUNTY_PKG, PKG):
            if installed_version(pkg) is not None or sh("dpkg", "-s", pkg, check=False).returncode == 0:
                sh("dpkg", "--purge", pkg, check=False)
        shutil.rmtree(self.out, ignore_errors=True)

    def test_install_upgrade_remove_purge(self):
        deb1 = build_deb(self.out, "0.1.0")
        deb2 = build_deb(self.out, "0.1.1")
        size = os.path.getsize(deb1)
        print(f"\npackage {os.path.basename(deb1)}: {size} bytes", flush=True)

        # Depends come from dpkg-shlibdeps, not by hand.
        depends = sh("dpkg-deb", "-f", deb1, "Depends").stdout
        for lib in ("libc6", "libsqlite3-0", "libcurl4", "libpaho-mqttpp3"):
            self.assertIn(lib, depends)

        r = sh("dpkg", "-i", deb1)
        self.assertIn("enabled, but not started", r.stdout + r.stderr)
        self.assertIn("not even at boot", r.stdout + r.stderr)
        self.assertEqual(installed_version(), "0.1.0")

        # Files, owners, modes, the user.
        for f in ("/usr/sbin/campus-agent", "/usr/lib/campus-agent/libcampus-core.so.0",
                  "/lib/systemd/system/campus-agent.service", "/usr/lib/sysusers.d/campus-agent.conf",
                  "/usr/lib/tmpfiles.d/campus-agent.conf", "/usr/share/doc/campus-agent/README.md",
                  "/usr/share/doc/campus-agent/install.md", "/usr/bin/campusctl"):
            self.assertTrue(os.path.exists(f), f)
        user = pwd.getpwnam("campus-agent")
        self.assertIn(user.pw_shell, ("/usr/sbin/nologin", "/sbin/nologin"))
        data = os.stat("/var/lib/campus-agent")
        self.assertEqual(mode("/var/lib/campus-agent"), 0o700)
        self.assertEqual(data.st_uid, user.pw_uid)
        self.assertEqual(mode("/etc/campus-agent/agent.toml"), 0o640)
        # The attendance audit's pseudonym key: made at install, the agent's alone, 32 random bytes.
        key = "/var/lib/campus-agent/student-pseudonym.key"
        self.assertEqual(mode(key), 0o600)
        self.assertEqual(os.stat(key).st_uid, user.pw_uid)
        with open(key) as f:
            key_text = f.read()
        self.assertRegex(key_text, r"^[0-9a-f]{64}\n$")
        self.assertEqual(grp.getgrgid(os.stat("/etc/campus-agent/agent.toml").st_gid).gr_name, "campus-agent")
        # The config may name secret files: root writes it, only the agent's group reads it.
        self.assertEqual(mode("/etc/campus-agent"), 0o750)
        self.assertEqual(os.stat("/etc/campus-agent").st_uid, 0)
        self.assertEqual(grp.getgrgid(os.stat("/etc/campus-agent").st_gid).gr_name, "campus-agent")
        self.assertTrue(os.path.islink("/etc/systemd/system/multi-user.target.wants/campus-agent.service"),
                        "the service is enabled")

        # The installed binaries work from their installed paths.
        self.assertIn("campus-agent 0.1.0", sh("/usr/sbin/campus-agent", "--version").stdout)
        self.assertIn("status", sh("/usr/bin/campusctl", "--help").stdout)
        r = sh("/usr/sbin/campus-agent", "--check-config", "--config", "/etc/campus-agent/agent.toml")
        self.assertIn("OK", r.stdout)
        for plugin in glob.glob(os.path.join(BUILD, "plugins", "campus-*.so")):
            name = os.path.basename(plugin)
            if name in ("campus-testaudit.so", "campus-badversion.so", "campus-nosymbol.so"):
                continue
            self.assertTrue(os.path.exists(f"/usr/lib/campus-agent/plugins/{name}"), name)
        r = sh("systemd-analyze", "verify", UNIT, check=False)
        self.assertEqual(r.returncode, 0, r.stderr)

        # Enabled, but the shipped default (valid as it is) must not start, not even at boot:
        # the ExecCondition skips the start (exit 1, not a failure) and says what to do.
        r = run_exec_condition()
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        said = r.stdout + r.stderr
        print(f"\nExecCondition with the shipped config: exit 1\n  {said.strip()}", flush=True)
        for text in (f"{CONFIG} is still the shipped default", "Edit it",
                     f"campus-agent --check-config --config {CONFIG}", "systemctl start campus-agent"):
            self.assertIn(text, said)

        # Upgrade: the school's edits and data survive.
        with open("/etc/campus-agent/agent.toml", "a") as f:
            f.write("\n# edited by the school\n")
        r = run_exec_condition()
        self.assertEqual(r.returncode, 0, "an edited config starts: " + r.stdout + r.stderr)
        with open("/var/lib/campus-agent/agent.db", "w") as f:
            f.write("school data")
        sh("dpkg", "--force-confdef", "--force-confold", "-i", deb2)
        self.assertEqual(installed_version(), "0.1.1")
        with open("/etc/campus-agent/agent.toml") as f:
            self.assertIn("# edited by the school", f.read())
        with open("/var/lib/campus-agent/agent.db") as f:
            self.assertEqual(f.read(), "school data")
        with open(key) as f:
            self.assertEqual(f.read(), key_text, "an upgrade must keep the pseudonym key")
        self.assertEqual(run_exec_condition().returncode, 0, "the kept edited config still starts")

        # Remove keeps config, data and the user; purge removes them.
        sh("dpkg", "-r", PKG)
        self.assertFalse(os.path.exists("/usr/sbin/campus-agent"))
        self.assertTrue(os.path.exists("/etc/campus-agent/agent.toml"))
        self.assertTrue(os.path.exists("/var/lib/campus-agent/agent.db"))
        pwd.getpwnam("campus-agent")
        sh("dpkg", "-P", PKG)
        self.assertFalse(os.path.exists("/etc/campus-agent"))
        self.assertFalse(os.path.exists("/var/lib/campus-agent"))
        with self.assertRaises(KeyError):
            pwd.getpwnam("campus-agent")
        # Nothing of the enabled service is left behind: no enable symlink, no helper state.
        self.assertEqual(glob.glob(WANTS), [])
        self.assertEqual(glob.glob("/var/lib/systemd/deb-systemd-*/**/campus-agent*", recursive=True), [])

    def test_the_county_package_beside_the_agent_install_remove_purge(self):
        agent, county = build_deb(self.out, "0.1.0"), build_deb(self.out, "0.1.0", COUNTY_PKG)
        self.assertIn("campus-agent (= 0.1.0)", sh("dpkg-deb", "-f", county, "Depends").stdout)
        r = sh("dpkg", "-i", county, check=False)
        self.assertNotEqual(r.returncode, 0, "installed without the agent it depends on")
        sh("dpkg", "--purge", COUNTY_PKG, check=False)
        sh("dpkg", "-i", agent)
        r = sh("dpkg", "-i", county)
        self.assertIn("enabled, but not started", r.stdout + r.stderr)
        self.assertEqual(installed_version(COUNTY_PKG), "0.1.0")
        unit = "/lib/systemd/system/campus-county.service"
        for f in ("/usr/sbin/campus-county", unit, "/usr/lib/sysusers.d/campus-county.conf",
                  "/usr/lib/tmpfiles.d/campus-county.conf", "/usr/share/doc/campus-county/county.md",
                  "/etc/campus-county/county.toml", "/usr/share/campus-county/county.toml.default"):
            self.assertTrue(os.path.exists(f), f)
        user = pwd.getpwnam("campus-county")
        self.assertEqual(mode("/var/lib/campus-county"), 0o750)
        self.assertEqual(os.stat("/var/lib/campus-county").st_uid, user.pw_uid)
        self.assertEqual(mode("/etc/campus-county"), 0o750)
        self.assertEqual(mode("/etc/campus-county/county.toml"), 0o640)
        self.assertTrue(os.path.islink("/etc/systemd/system/multi-user.target.wants/campus-county.service"))
        self.assertIn("campus-county 0.1.0", sh("/usr/sbin/campus-county", "--version").stdout)
        # The shipped default names the county account's files, which the county makes: the check says so.
        r = sh("/usr/sbin/campus-county", "--check-config", "--config", "/etc/campus-county/county.toml", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("key mqtt.ca_file", r.stderr)
        self.assertIn("/etc/campus-county/ca.crt", r.stderr)
        r = sh("systemd-analyze", "verify", unit, check=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run_exec_condition(unit, "campus-county")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        for text in ("/etc/campus-county/county.toml is still the shipped default", "systemctl start campus-county",
                     "campus-county --check-config"):
            self.assertIn(text, r.stdout + r.stderr)
        with open("/etc/campus-county/county.toml", "a") as f:
            f.write("\n# edited by the county\n")
        self.assertEqual(run_exec_condition(unit, "campus-county").returncode, 0)
        with open("/var/lib/campus-county/county.db", "w") as f:
            f.write("the county's record")
        sh("dpkg", "-r", COUNTY_PKG)
        self.assertFalse(os.path.exists("/usr/sbin/campus-county"))
        self.assertTrue(os.path.exists("/var/lib/campus-county/county.db"), "remove keeps the county's record")
        self.assertTrue(os.path.exists("/usr/sbin/campus-agent"), "the agent package stays")
        sh("dpkg", "-P", COUNTY_PKG)
        self.assertFalse(os.path.exists("/etc/campus-county"))
        self.assertFalse(os.path.exists("/var/lib/campus-county"))
        with self.assertRaises(KeyError):
            pwd.getpwnam("campus-county")
        self.assertEqual(glob.glob("/etc/systemd/system/*.wants/campus-county.service"), [])
        self.assertEqual(glob.glob("/var/lib/systemd/deb-systemd-*/**/campus-county*", recursive=True), [])


if __name__ == "__main__":
    unittest.main()
