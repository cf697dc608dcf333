"""The harness's own contract with the simulators it starts (no product code here)."""
import sys
import unittest

from harness import IntegrationTest, Proc, _ready_line, complete_lines


class ReadyLine(IntegrationTest):
    def test_a_ready_line_counts_only_once_it_is_whole(self):
        # What print("READY", port, flush=True) does under PYTHONUNBUFFERED=1: one write per
        # piece. The read between "READY" and the port must wait, not return no port (ci14).
        child = ("import sys, time; w = sys.stdout.write; w('READY'); sys.stdout.flush(); time.sleep(1); "
                 "w(' 4321'); sys.stdout.flush(); time.sleep(0.5); w('\\n'); sys.stdout.flush(); time.sleep(30)")
        proc = self.track(Proc("sim", [sys.executable, "-c", child], self.dir))
        self.assertEqual(_ready_line(proc, timeout=10), ["4321"])

    def test_a_simulator_that_dies_without_ready_is_named(self):
        proc = self.track(Proc("sim", [sys.executable, "-c", "print('port busy')"], self.dir))
        with self.assertRaisesRegex(AssertionError, "sim printed no READY line:\nport busy"):
            _ready_line(proc, timeout=10)

    def test_complete_lines_leaves_out_a_line_being_written(self):
        self.assertEqual(complete_lines("a\nb\nREA"), ["a", "b"])
        self.assertEqual(complete_lines("a\n"), ["a"])
        self.assertEqual(complete_lines(""), [])


if __name__ == "__main__":
    unittest.main()
