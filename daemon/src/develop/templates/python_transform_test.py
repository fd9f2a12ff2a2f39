import unittest

from weir_plugin import Batch

from plugin import {class_name}


class {class_name}Test(unittest.TestCase):
    def test_every_row_passes_through_unchanged(self):
        batch = Batch.from_pydict({{"sensor": ["a", None], "value": [1.5, 2.0]}})
        out = {class_name}({{}}).process(batch)
        self.assertEqual(out.to_pydict(), batch.to_pydict())


if __name__ == "__main__":
    unittest.main()
