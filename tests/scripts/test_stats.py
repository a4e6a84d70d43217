"""Report maths: median, spread, noisy flag, bootstrap CI of ratios."""
import unittest

import rstest_util
from ringshim_lib import report, stats

assert rstest_util.SCRIPTS  # importing rstest_util put scripts/ on sys.path


class MedianTest(unittest.TestCase):
    def test_odd_even_empty(self):
        self.assertEqual(stats.median([3, 1, 2]), 2)
        self.assertEqual(stats.median([4, 1, 3, 2]), 2.5)
        self.assertIsNone(stats.median([]))
        self.assertEqual(stats.median([7]), 7)

    def test_summary(self):
        s = stats.summary([10, 12, 11, None])
        self.assertEqual((s["n"], s["median"], s["min"], s["max"]), (3, 11, 10, 12))
        self.assertAlmostEqual(s["spread"], 2 / 11)
        self.assertEqual(stats.summary([])["median"], None)

    def test_percentile_interpolates(self):
        self.assertEqual(stats.percentile([1, 2, 3, 4, 5], 50), 3)
        self.assertAlmostEqual(stats.percentile([0, 10], 25), 2.5)
        self.assertEqual(stats.percentile([5], 99), 5)


class NoisyTest(unittest.TestCase):
    def test_threshold(self):
        self.assertFalse(stats.is_noisy([100, 100, 110]))   # spread exactly 10 %: not above
        self.assertTrue(stats.is_noisy([100, 105, 111]))    # 11 / 105 = 10.5 %
        self.assertFalse(stats.is_noisy([]))
        self.assertFalse(stats.is_noisy([5, 5, 5]))


class BootstrapTest(unittest.TestCase):
    def test_identical_samples_zero_width(self):
        r, lo, hi = stats.ratio_ci([5, 5, 5, 5], [10, 10, 10])
        self.assertEqual((r, lo, hi), (0.5, 0.5, 0.5))

    def test_ratio_of_medians(self):
        r, lo, hi = stats.ratio_ci([90, 100, 200], [40, 50, 1000])
        self.assertEqual(r, 2.0)  # medians 100 / 50, not means
        self.assertLessEqual(lo, r)
        self.assertGreaterEqual(hi, r)

    def test_deterministic(self):
        a = [101, 97, 105, 99, 103, 98]
        b = [90, 95, 92, 91, 97, 93]
        self.assertEqual(stats.ratio_ci(a, b), stats.ratio_ci(a, b))
        r, lo, hi = stats.ratio_ci(a, b)
        self.assertTrue(lo < r < hi)
        self.assertGreater(lo, 1.0)   # clearly separated samples: CI excludes 1

    def test_overlapping_samples_include_one(self):
        r, lo, hi = stats.ratio_ci([100, 90, 110, 95, 105], [98, 102, 92, 108, 100])
        self.assertTrue(lo < 1.0 < hi)

    def test_known_values_with_fixed_seed(self):
        # Pinned so a change of the resampling scheme is noticed.
        r, lo, hi = stats.ratio_ci([100, 110, 105, 98, 102], [90, 95, 92, 91, 97])
        self.assertAlmostEqual(r, 102 / 92)
        self.assertAlmostEqual(lo, 1.0315789473684212)
        self.assertAlmostEqual(hi, 1.1956521739130435)

    def test_empty_or_zero(self):
        self.assertEqual(stats.ratio_ci([], [1, 2]), (None, None, None))
        self.assertEqual(stats.ratio_ci([1], [0, 0]), (None, None, None))


class SummarizeTest(unittest.TestCase):
    def test_failed_runs_excluded_and_noisy_flagged(self):
        variants = [{"name": "off", "kind": "off"}, {"name": "batch", "kind": "profile"}]
        recs = []
        for i, (off, batch) in enumerate([(100, 120), (102, 150), (98, 121)], 1):
            recs.append({"run": i, "variant": "off", "ok": True, "rps": off,
                         "cpu_us_per_req": 10.0})
            recs.append({"run": i, "variant": "batch", "ok": True, "rps": batch,
                         "cpu_us_per_req": 8.0})
        recs.append({"run": 4, "variant": "batch", "ok": False, "rps": 1, "reason": "x"})
        s = {x["variant"]: x for x in report.summarize(recs, variants, "off")}
        self.assertEqual(s["batch"]["runs_ok"], 3)
        self.assertEqual(s["batch"]["runs_failed"], 1)
        self.assertEqual(s["batch"]["rps"]["median"], 121)
        self.assertTrue(s["batch"]["noisy"])          # (150-120)/121 > 10 %
        self.assertFalse(s["off"]["noisy"])
        self.assertAlmostEqual(s["batch"]["rps_ratio"]["ratio"], 121 / 100)
        self.assertEqual(s["batch"]["cpu_ratio"]["ratio"], 0.8)
        self.assertEqual(s["batch"]["cpu_ratio"]["low"], 0.8)  # identical samples
        table = report.table_markdown(list(s.values()), "off")
        self.assertIn("noisy", table)
        self.assertIn("1 failed", table)
        self.assertIn("1.210×", table)


if __name__ == "__main__":
    unittest.main()
