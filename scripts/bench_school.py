"""What scripts/bench-footprint, scripts/bench-startup and scripts/soak run the agent against, on 127.0.0.1:
the county broker (Mosquitto with the shipped TLS settings and ACL, tests/integration/harness.py)
and the demo school (tests/sim/school.py, exactly what scripts/demo audits), plus the agent's
config: the demo school's [audits.*] tables with the shipped [mqtt]/[buffer] defaults."""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SOURCE, "tests", "integration"))
import harness  # noqa: E402

COUNTY, SCHOOL = "zhenkang", "nansan-central-primary"
PY = "/usr/bin/python3"  # Debian's: it has the GStreamer bindings the cameras need
AUDITS = ("fiber", "recording", "attendance")
# The demo school's audit intervals (tests/sim/*/demo.py), stated in every result.
INTERVALS = "fiber 1 min; recording 1 min; attendance 5 min"


def start_broker(work):
    """(certs dir, broker Proc with .port)."""
    certs = harness.make_certs(os.path.join(work, "certs"), COUNTY, [SCHOOL])
    return certs, harness.start_tls_mosquitto(work, certs)


def start_school(work):
    """(school Proc, the [audits.*] TOML tables)."""
    ready = os.path.join(work, "school.ready")
    school = harness.Proc("school", [PY, os.path.join(SOURCE, "tests", "sim", "school.py"),
                                     "--workdir", os.path.join(work, "school"), "--ready", ready], work)
    harness.wait_until(lambda: os.path.exists(ready) or not school.alive(), 120, what="the demo school")
    if not school.alive():
        sys.exit("the demo school did not start:\n" + school.output())
    with open(os.path.join(work, "school", "audits.toml"), encoding="utf-8") as f:
        return school, f.read()


def first_delay_zero(audits):
    """The tables with every audit's first run at once (for start-up timing)."""
    return re.sub(r'^first_delay = "[^"]*"$', 'first_delay = "0s"', audits, flags=re.M)


def agent_config(path, build, certs, port, audits, data_dir):
    """The demo's agent.toml with the shipped [mqtt] defaults (keep-alive 30 s, health every 60 s)."""
    return harness.write_file(path, f"""[agent]
county = "{COUNTY}"
school = "{SCHOOL}"
timezone = "+08:00"
data_dir = "{data_dir}"
plugin_dir = "{build}/plugins"

[mqtt]
enabled = true
host = "localhost"
port = {port}
ca_file = "{certs}/ca.crt"
cert_file = "{certs}/{SCHOOL}.crt"
key_file = "{certs}/{SCHOOL}.key"

{audits}
""")


def stored(agent_log):
    """{audit: number of reports stored}, from the agent's log line written right after a commit."""
    counts = {}
    for m in re.finditer(r"audit (\w+): report seq \d+ stored", agent_log):
        counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts
