"""scripts/demo, the README's first command, end to end on the build under test: the county
broker, the simulated school, the agent, and what the county sees. Asserts what each issue
says the demo must show, so the demo cannot rot unnoticed."""
import os
import re
import subprocess
import unittest

from harness import BUILD, SOURCE


class Demo(unittest.TestCase):
    def test_the_demo_shows_what_the_county_receives(self):
        env = dict(os.environ, BUILD_DIR=os.path.abspath(BUILD), DEMO_SKIP_BUILD="1")
        r = subprocess.run([os.path.join(SOURCE, "scripts", "demo")], cwd=SOURCE, env=env, capture_output=True,
                           text=True, timeout=300)
        out = r.stdout
        self.assertEqual(r.returncode, 0, out[-3000:] + r.stderr[-3000:])
        self.assertRegex(out, r"agent\.toml: OK \(3 audit\(s\) enabled: attendance fiber recording\)")
        # Fiber: coverage per room type, rooms of all three types in a realistic mix of states.
        for kind in ("classroom", "function_room", "office"):
            self.assertRegex(out, rf"{kind}\.coverage=0\.\d+")
        for state in ("covered", "degraded", "down", "not_planned", "unknown"):
            self.assertRegex(out, rf"\n\s+[CFOA]\d+\s+{state}\b")
        rooms = int(re.search(r"overall\.rooms=(\d+)", out).group(1))
        self.assertGreaterEqual(rooms, 55)
        # Recording: six classrooms, one failing for a visible reason.
        self.assertIn("classrooms=6 compliant=5", out)
        self.assertRegex(out, r"R106\s+noncompliant\s+\S+")
        # Attendance: about 600 students with open cases, one overdue, one closed by return.
        self.assertIn("students=600", out)
        self.assertRegex(out, r"overdue=1\b")
        self.assertIn("open -> closed present again", out)
        # The county side: birth, every report, the case events, the clean stop.
        received = out[out.index("What the county received"):]
        for topic in ("report/fiber", "report/recording", "report/attendance", "event/attendance"):
            self.assertIn(topic, received)
        self.assertIn("online=True", received)
        self.assertIn("online=False", received)
        # campusctl: the status table and the HTML report.
        self.assertRegex(out, r"nansan-central-primary\s+yes\s+\S+\s+yes\s+\d+%\s+\d+%\s+\d+%\s+5/6\s+\d+/1")
        # The county collector: a hole the broker lost (restart without persistence) is repaired
        # by resend, and the county database holds every seq of the school's store once.
        self.assertRegex(out, r"collector: .*repair: asking nansan-central-primary to resend seq \d+\.\.\d+")
        self.assertRegex(out, r"0 open, [1-9]\d* filled, 0 lost")
        self.assertRegex(out, r"holds seq 1\.\.(\d+); the county database holds \1 of them, each once; missing: none")
        self.assertIn("figures from the county database", out)
        html = re.search(r"HTML report: (\S+)", out).group(1)
        self.assertTrue(os.path.getsize(html) > 1000, html)
        # The dashboard shows the same school from the county database, and its metrics count.
        self.assertRegex(out, r"/api/schools: nansan-central-primary: online True, fiber in classrooms 0\.\d+, "
                              r"recording 5/6, open gaps 0")
        self.assertRegex(out, r"/metrics: campus_county_messages_committed_total [1-9]\d*")
        self.assertRegex(out, r"Dashboard: http://127\.0\.0\.1:\d+/ \(user bureau, password demo-[0-9a-f]+\)")
        shot = re.search(r"Dashboard screenshot: (\S+)", out)
        self.assertIsNotNone(shot, out[-2000:])
        self.assertGreater(os.path.getsize(shot.group(1)), 10000)
        self.assertIn("Done; stopping everything the demo started", out)


if __name__ == "__main__":
    unittest.main()
