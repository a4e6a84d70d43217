"""Load generator parsers, on output captured from real runs (fixtures/)."""
import unittest

from rstest_util import fixture
from ringshim_lib import loadgen
from ringshim_lib.loadgen import ParseError


class WrkTest(unittest.TestCase):
    def test_latency(self):
        r = loadgen.parse_wrk(fixture("wrk-latency.txt"))
        self.assertEqual(r["rps"], 36388.22)
        self.assertEqual(r["requests"], 109811)
        self.assertAlmostEqual(r["secs"], 3.02)
        self.assertAlmostEqual(r["p50_us"], 1360)
        self.assertAlmostEqual(r["p99_us"], 5670)
        self.assertEqual(r["errors"], 0)

    def test_without_latency_table(self):
        r = loadgen.parse_wrk(fixture("wrk-plain.txt"))
        self.assertEqual(r["rps"], 28959.49)
        self.assertNotIn("p99_us", r)
        self.assertAlmostEqual(r["avg_us"], 1720)

    def test_errors(self):
        self.assertEqual(loadgen.parse_wrk(fixture("wrk-404.txt"))["errors"], 59548)
        r = loadgen.parse_wrk(fixture("wrk-socket-errors.txt"))
        self.assertEqual(r["socket_errors"], {"connect": 0, "read": 100, "write": 52423,
                                              "timeout": 0})
        self.assertEqual(r["errors"], 52523)

    def test_refused(self):
        with self.assertRaises(ParseError):
            loadgen.parse_wrk(fixture("wrk-refused.txt"))

    def test_units(self):
        text = ("  Latency Distribution\n     50%  812.00us\n     99%    1.50s\n"
                "  10 requests in 1.00m, 1KB read\nRequests/sec:      0.17\n")
        r = loadgen.parse_wrk(text)
        self.assertEqual((r["p50_us"], r["p99_us"], r["secs"]), (812.0, 1.5e6, 60.0))


class RedisBenchmarkTest(unittest.TestCase):
    ARGV = ["redis-benchmark", "-p", "17379", "-c", "50", "-n", "100000", "-t", "get,set"]

    def test_csv(self):
        r = loadgen.parse_redis_benchmark(fixture("redis-benchmark-csv.txt"), self.ARGV)
        self.assertEqual([t["test"] for t in r["tests"]], ["SET", "GET"])
        self.assertEqual(r["requests"], 200000)
        # total requests / total time
        expected = 2 / (1 / 47869.79 + 1 / 51387.46)
        self.assertAlmostEqual(r["rps"], expected)
        self.assertAlmostEqual(r["p50_us"], (503 + 495) / 2)
        self.assertAlmostEqual(r["p99_us"], 927)  # worst test

    def test_q(self):
        r = loadgen.parse_redis_benchmark(fixture("redis-benchmark-q.txt"),
                                          self.ARGV[:-2] + ["-q"])
        self.assertEqual([t["rps"] for t in r["tests"]], [52056.22, 51679.59])
        self.assertAlmostEqual(r["p50_us"], 487)
        self.assertNotIn("p99_us", r)

    def test_default_n(self):
        r = loadgen.parse_redis_benchmark(fixture("redis-benchmark-csv.txt"), ["redis-benchmark"])
        self.assertEqual(r["requests"], 200000)
        r = loadgen.parse_redis_benchmark(fixture("redis-benchmark-csv.txt"),
                                          ["redis-benchmark", "-n", "5000"])
        self.assertEqual(r["requests"], 10000)

    def test_nothing(self):
        with self.assertRaises(ParseError):
            loadgen.parse_redis_benchmark("Could not connect to Redis at 127.0.0.1:1: "
                                          "Connection refused\n")


class MemcaslapTest(unittest.TestCase):
    def test_summary_only(self):
        r = loadgen.parse_memcaslap(fixture("memcaslap.txt"))
        self.assertEqual((r["rps"], r["requests"], r["secs"]), (73028.0, 219161, 3.0))
        self.assertNotIn("p50_us", r)

    def test_histogram(self):
        r = loadgen.parse_memcaslap(fixture("memcaslap-S.txt"))
        self.assertEqual((r["rps"], r["requests"]), (75419.0, 226289))
        self.assertEqual(r["avg_us"], 663)
        # Total histogram: p50 falls in bucket 9 = [256, 512) us, p99 in [2048, 4096)
        self.assertTrue(256 <= r["p50_us"] < 512, r["p50_us"])
        self.assertTrue(2048 <= r["p99_us"] < 4096, r["p99_us"])

    def test_log2_percentile(self):
        self.assertEqual(loadgen._log2_percentile({1: 0, 2: 10}, 50), 3.0)  # [2,4)
        self.assertIsNone(loadgen._log2_percentile({}, 50))


class RsLoadgenTest(unittest.TestCase):
    def test_text_with_progress(self):
        r = loadgen.parse_rs_loadgen(fixture("rs-loadgen.txt"))
        self.assertEqual(r["requests"], 136329)
        self.assertEqual(r["rps"], 68164.5)
        self.assertEqual((r["p50_us"], r["p99_us"], r["errors"]), (657, 2952, 0))
        self.assertEqual(r["conns"], 50)

    def test_json(self):
        r = loadgen.parse_rs_loadgen(fixture("rs-loadgen-json.txt"))
        self.assertEqual((r["requests"], r["rps"], r["p99_us"]), (84372, 84372.0, 3016))

    def test_quoted_format(self):
        line = ("rs-loadgen: conns=50 size=128 depth=1 threads=1 secs=5.00 requests=123456 "
                "rps=24691.2 mbps=25.28 p50_us=38 p90_us=55 p99_us=90 p999_us=150 max_us=2100 "
                "errors=0 verified_bytes=15802368\n")
        r = loadgen.parse_rs_loadgen(line)
        self.assertEqual((r["rps"], r["requests"], r["p50_us"], r["p99_us"]),
                         (24691.2, 123456, 38, 90))

    def test_pingpong(self):
        r = loadgen.parse_rs_loadgen(fixture("rs-pingpong.txt"))
        self.assertEqual(r["requests"], 20000)
        self.assertAlmostEqual(r["rps"], 20000 / 0.786)
        self.assertEqual((r["p50_us"], r["p99_us"]), (22, 188))
        r = loadgen.parse_rs_loadgen(fixture("rs-pingpong-json.txt"))
        self.assertEqual((r["requests"], r["p99_us"]), (20000, 184))

    def test_refused(self):
        with self.assertRaises(ParseError):
            loadgen.parse_rs_loadgen(fixture("rs-loadgen-refused.txt"))


class DispatchTest(unittest.TestCase):
    def test_detect(self):
        self.assertEqual(loadgen.detect(["/usr/bin/wrk", "-c", "1"]), "wrk")
        self.assertEqual(loadgen.detect(["build/demo/rs-pingpong"]), "rs-loadgen")
        self.assertEqual(loadgen.detect(["memcaslap"]), "memcaslap")
        self.assertEqual(loadgen.detect(["python3", "x.py"]), "auto")

    def test_auto_finds_every_format(self):
        for name, parser in (("wrk-latency.txt", "wrk"),
                             ("redis-benchmark-csv.txt", "redis-benchmark"),
                             ("redis-benchmark-q.txt", "redis-benchmark"),
                             ("memcaslap-S.txt", "memcaslap"),
                             ("rs-loadgen.txt", "rs-loadgen"),
                             ("rs-pingpong-json.txt", "rs-loadgen")):
            self.assertEqual(loadgen.parse(fixture(name))["parser"], parser, name)

    def test_unparseable(self):
        with self.assertRaises(ParseError):
            loadgen.parse("Segmentation fault\n")
        with self.assertRaises(ParseError):
            loadgen.parse("Requests/sec: 0.00\n", "wrk")  # zero throughput is no result


if __name__ == "__main__":
    unittest.main()
