"""weir's plugin SDK for Python: transforms and aggregates as WebAssembly components.

```python
from weir_plugin import Transform, Batch, export

@export
class Celsius(Transform):
    def process(self, batch: Batch) -> Batch:
        return batch.with_column("celsius", [(f - 32) * 5 / 9 if f is not None else None
                                             for f in batch["fahrenheit"]])
```

`weir plugin build DIR` turns the folder into `NAME.wasm` with componentize-py. The same code
runs natively for tests: `weir_plugin.testing` calls a plugin the way the host does.
"""

from .aggregate import Aggregate
from .batch import Batch, BatchError
from .registry import export
from .schema import (
    DataType,
    Field,
    Schema,
    SchemaError,
    binary,
    bool_,
    date32,
    duration,
    float32,
    float64,
    int8,
    int16,
    int32,
    int64,
    large_binary,
    large_utf8,
    null,
    timestamp,
    uint8,
    uint16,
    uint32,
    uint64,
    utf8,
)
from .transform import PluginError, Transform

__all__ = [
    "Aggregate",
    "Batch",
    "BatchError",
    "DataType",
    "Field",
    "PluginError",
    "Schema",
    "SchemaError",
    "Transform",
    "export",
    "binary",
    "bool_",
    "date32",
    "duration",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "large_binary",
    "large_utf8",
    "null",
    "timestamp",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "utf8",
]
