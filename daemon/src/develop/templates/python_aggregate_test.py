import unittest

from plugin import {class_name}


class {class_name}Test(unittest.TestCase):
    def test_each_group_counts_its_rows(self):
        plugin = {class_name}({{}})
        states = [plugin.initial(), plugin.initial()]
        plugin.update(states, [[1.0, None, 3.0]], [0, 1, 0])
        self.assertEqual(plugin.finish(states), [2, 1])
        self.assertEqual(plugin.merge(2, 1), 3)


if __name__ == "__main__":
    unittest.main()
