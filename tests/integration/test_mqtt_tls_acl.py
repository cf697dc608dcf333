"""TLS refusals (wrong CA, wrong host, expired broker certificate, no client certificate) with
the real agent, and the shipped county broker config installed as docs/county.md says (a drop-in
beside Debian's stock mosquitto.conf) with its ACL: a school can publish into its own subtree
but neither publish into another school's subtree nor read it; the county reads everything and
sends commands."""
import os
import subprocess
import time

from harness import LOOPBACK, IntegrationTest, Proc, agent_bin, wait_until, write_file
from county import COUNTY, agent_config, county_subscriber, make_certs, start_county_broker, tls_args


class MqttTls(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.certs = make_certs(self.dir, ["nansan"], "--expired-broker", "--other-ca", "--wrong-host")

    def refused(self, broker_cert, expect, mqtt_extra="", edit=None):
        broker = self.track(start_county_broker(self.dir, self.certs, broker_cert=broker_cert))
        conf = agent_config(self.dir, "nansan", broker.port, self.certs, mqtt_extra=mqtt_extra)
        if edit:
            with open(conf) as f:
                text = edit(f.read())
            write_file(conf, text)
        agent = self.track(Proc("agent", [agent_bin(), "--config", conf], self.dir))
        wait_until(lambda: expect in agent.output(), 15, what=f"log line {expect!r}")
        time.sleep(1)
        out = agent.output()
        self.assertNotIn("mqtt: connected", out)
        self.assertTrue(agent.alive(), "the agent keeps running and retrying")
        line = next(l for l in out.splitlines() if expect in l)
        print(f"\n  {line.strip()}")
        return out

    def test_wrong_ca(self):
        self.refused("broker", "server certificate rejected",
                     edit=lambda t: t.replace(f"{self.certs}/ca.crt", f"{self.certs}/other-ca.crt"))

    def test_wrong_host(self):
        self.refused("broker-wronghost", "is not issued for '127.0.0.1'")

    def test_expired_broker_certificate(self):
        self.refused("broker-expired", "certificate has expired")

    def test_no_client_certificate(self):
        self.refused("broker", "requires a client certificate",
                     edit=lambda t: "\n".join(l for l in t.splitlines()
                                              if not l.startswith(("cert_file", "key_file"))))


class MqttAcl(IntegrationTest):
    """The shipped config/county-broker/acl with real Mosquitto and school certificates."""

    def setUp(self):
        super().setUp()
        self.certs = make_certs(self.dir, ["school-a", "school-b"])
        self.broker = self.track(start_county_broker(self.dir, self.certs))

    def pub(self, user, topic, message="{}", qos=1):
        return subprocess.run(["mosquitto_pub", "-h", LOOPBACK, "-p", str(self.broker.port), *tls_args(self.certs, user),
                               "-V", "mqttv5", "-q", str(qos), "-t", topic, "-m", message],
                              capture_output=True, text=True, timeout=10)

    def sub(self, user, topic, name):
        p = Proc(name, ["mosquitto_sub", "-h", LOOPBACK, "-p", str(self.broker.port), *tls_args(self.certs, user),
                        "-V", "mqttv5", "-q", "1", "-t", topic, "-v"], self.dir)
        self.track(p)
        time.sleep(0.5)
        return p

    def test_the_broker_installed_as_documented_accepts_a_school(self):
        # docs/county.md: the shipped file is a drop-in beside Debian's stock mosquitto.conf,
        # which sets persistence_location and log_dest itself; a drop-in setting them again
        # stops Mosquitto from starting at all ("Duplicate persistence_location value").
        with open(os.path.join(self.dir, "broker.conf")) as f:
            main = f.read()
        for directive in ("persistence true", "persistence_location ", "log_dest ", "include_dir "):
            self.assertIn(directive, main, "the main file is like Debian's stock one")
        county = county_subscriber(self.dir, self.broker.port, self.certs, persistent=False)
        self.procs.append(county.proc)
        own = f"campus/v1/{COUNTY}/school-a/report/fiber"
        r = self.pub("school-a", own, '{"school": "a"}')
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        wait_until(lambda: any(m["topic"] == own for m in county.messages()), 5, what="school-a's message")

    def test_a_school_cannot_write_into_or_read_another_schools_subtree(self):
        county = county_subscriber(self.dir, self.broker.port, self.certs, persistent=False)
        self.procs.append(county.proc)
        a_spy = self.sub("school-a", f"campus/v1/{COUNTY}/school-b/#", "a-spy")
        b_own = f"campus/v1/{COUNTY}/school-b/report/fiber"
        # A publishing as B: refused (PUBACK 0x87), nobody receives it
        r = self.pub("school-a", b_own, '{"forged": true}')
        self.assertIn("not authorized", (r.stdout + r.stderr).lower())
        # B's real message: the county gets it, A's subscription to B's subtree gets nothing
        self.assertEqual(self.pub("school-b", b_own, '{"real": true}').returncode, 0)
        wait_until(lambda: any(m["payload"] == {"real": True} for m in county.messages()), 5, what="B's message")
        time.sleep(0.5)
        self.assertFalse(any(m["payload"] == {"forged": True} for m in county.messages()), "A wrote into B's subtree")
        self.assertNotIn("real", a_spy.output(), "A read B's data")
        self.assertNotIn("forged", a_spy.output())

    def test_a_school_reads_its_own_and_the_county_wide_commands_only(self):
        a_cmd = self.sub("school-a", f"campus/v1/{COUNTY}/+/cmd", "a-cmd")
        self.assertEqual(self.pub("county", f"campus/v1/{COUNTY}/school-a/cmd", '{"cmd":"for-a"}').returncode, 0)
        self.assertEqual(self.pub("county", f"campus/v1/{COUNTY}/all/cmd", '{"cmd":"for-all"}').returncode, 0)
        self.assertEqual(self.pub("county", f"campus/v1/{COUNTY}/school-b/cmd", '{"cmd":"for-b"}').returncode, 0)
        wait_until(lambda: "for-a" in a_cmd.output() and "for-all" in a_cmd.output(), 5, what="A's commands")
        time.sleep(0.5)
        self.assertNotIn("for-b", a_cmd.output())

    def test_only_the_county_sends_commands(self):
        b_cmd = self.sub("school-b", f"campus/v1/{COUNTY}/all/cmd", "b-cmd")
        self.pub("school-a", f"campus/v1/{COUNTY}/all/cmd", '{"cmd":"from-a"}')
        self.pub("county", f"campus/v1/{COUNTY}/all/cmd", '{"cmd":"from-county"}')
        wait_until(lambda: "from-county" in b_cmd.output(), 5, what="county command")
        self.assertNotIn("from-a", b_cmd.output())

    def test_an_agent_with_the_wrong_certificate_is_refused_loudly_once_per_topic(self):
        # school-b's agent configured with school-a's certificate: every publish gets 0x87
        conf = agent_config(self.dir, "school-b", self.broker.port, self.certs, audits=("fiber",),
                            interval="1s")
        with open(conf) as f:
            text = f.read().replace("school-b.crt", "school-a.crt").replace("school-b.key", "school-a.key")
        write_file(conf, text)
        agent = self.track(Proc("agent", [agent_bin(), "--config", conf], self.dir))
        wait_until(lambda: "not authorized (0x87)" in agent.output(), 15, what="refusal log")
        time.sleep(3)  # three more audits, each refused
        out = agent.output()
        refusals = [l for l in out.splitlines() if "not authorized (0x87)" in l]
        topics = {l.split(" on ")[1].split(":")[0] for l in refusals}
        self.assertEqual(len(refusals), len(topics), "logged more than once per topic")
        self.assertIn("needs the block scripts/make-certs writes for school 'school-b'", refusals[0])
        self.assertIn("knows this agent as 'school-a' but agent.school is 'school-b'", refusals[0])
        print(f"\n  {refusals[0].strip()}")
        self.assertTrue(agent.alive())
