"""{name}: a weir transform plugin, in Python."""

from weir_plugin import Batch, Transform, export


@export(name="{name}", version="0.1.0")
class {class_name}(Transform):
    """Passes every row through unchanged."""

    def process(self, batch: Batch) -> Batch:
        # batch["column"] is a column's values as a list (nulls as None);
        # batch.with_column("new", values) adds or replaces one; batch.filter(mask) keeps rows.
        return batch
