"""asv tracking benchmarks for the group coordinator (issue 4), against a ``pybroker serve``
subprocess with the fast profile of bench/groups_bench.py (group.initial.rebalance.delay.ms=0,
group.consumer.heartbeat.interval.ms=500) and confluent-kafka clients in the asv process.

* seconds for a 10-member group on 20 partitions to settle after a cold start, after one member
  leaves and after one joins, per protocol (classic, consumer);
* synchronous offset commits per second from 1 member and from 10.

The plain-script twin, which also runs Apache Kafka for a ratio and the default profile, is
bench/groups_bench.py.
"""
import os
import sys
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # bench/

PROTOCOLS = ["classic", "consumer"]
ARGS = SimpleNamespace(members=10, partitions=20)


def _broker():
    import groups_bench
    return groups_bench.broker_for("pybroker", "fast").__enter__()


class GroupStabilisation:
    params = [PROTOCOLS, ["cold", "leave", "join"]]
    param_names = ["protocol", "phase"]
    unit = "seconds"
    timeout = 180
    number = 1
    repeat = 1

    def setup(self, protocol, phase):
        self.broker = _broker()

    def teardown(self, protocol, phase):
        self.broker.__exit__(None, None, None)

    def track_settle_seconds(self, protocol, phase):
        import groups_bench
        result = {"cold": [], "leave": [], "join": [], "errors": []}
        groups_bench.stabilisation_run(self.broker.bootstrap, protocol, f"asv-{protocol}-{phase}", ARGS, result)
        values = result[phase]
        if not values or values[0] is None:
            raise RuntimeError(f"group did not settle: {result['errors']}")
        return values[0]


class OffsetCommits:
    params = [PROTOCOLS, [1, 10]]
    param_names = ["protocol", "members"]
    unit = "commits/s"
    timeout = 180
    number = 1
    repeat = 1

    def setup(self, protocol, members):
        import groups_bench
        self.broker = _broker()
        self.run = groups_bench.GroupRun(self.broker.bootstrap, protocol, f"asv-commit-{members}",
                                         ARGS.partitions)
        if self.run.cold_start(members) is None:
            self.teardown(protocol, members)
            raise RuntimeError("group did not settle")

    def teardown(self, protocol, members):
        self.run.close()
        self.broker.__exit__(None, None, None)

    def track_sync_commits_per_second(self, protocol, members):
        import groups_bench
        result = groups_bench.commit_rate(self.run, "sync", 2.0, 0.5)
        if result["errors"]:
            raise RuntimeError(f"{result['errors']} commits failed")
        return result["rate"]
