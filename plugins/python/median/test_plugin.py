import unittest

from plugin import Median, median


class MedianTest(unittest.TestCase):
    def test_odd_and_even_counts_and_an_empty_group(self):
        self.assertEqual(median([3.0, 1.0, 2.0]), 2.0)
        self.assertEqual(median([4.0, 1.0, 3.0, 2.0]), 2.5)
        self.assertIsNone(median([]))

    def test_updates_skip_nulls_and_merged_states_give_the_median_of_both(self):
        agg = Median({})
        states = [agg.initial(), agg.initial()]
        agg.update(states, [[5.0, None, 1.0, 7.0]], [0, 0, 1, 0])
        self.assertEqual(agg.finish(states), [6.0, 1.0])
        self.assertEqual(agg.finish([agg.merge(states[0], states[1])]), [5.0])


if __name__ == "__main__":
    unittest.main()
