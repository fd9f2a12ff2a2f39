"""A plugin called the way the host calls it: the contract's functions on bytes, every failure
turned into one message (``CallError``). The component's exports are thin wrappers over these;
tests call them natively to run a plugin exactly as weir would.
"""

import json
import traceback

from .aggregate import run_finish, run_merge, run_update, signature_schemas
from .registry import registered
from .schema import Schema, SchemaError
from .transform import PluginError, run_process
from .wire import WireError, split_columns

__all__ = ["CallError", "TransformCalls", "AggregateCalls"]


class CallError(Exception):
    """A call failed; the message is what the pipeline's status and log show."""


def _message(err):
    if isinstance(err, (PluginError, SchemaError, WireError)):
        return str(err)
    # Where in the plugin's own code it happened: the innermost frame outside this SDK.
    frames = [
        f
        for f in traceback.extract_tb(err.__traceback__)
        if "/weir_plugin/" not in f.filename.replace("\\", "/")
    ]
    where = f" (at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    return f"{type(err).__name__}: {err}{where}"


def _call(what, f, *args):
    try:
        return f(*args)
    except CallError:
        raise
    except Exception as err:
        raise CallError(f"{what}: {_message(err)}") from None


def _config(text):
    try:
        config = json.loads(text) if text else {}
    except ValueError as err:
        raise CallError(f"the config is not JSON: {err}") from None
    return config if config is not None else {}


class TransformCalls:
    """The ``transformer`` interface over the exported ``Transform``."""

    def __init__(self):
        self.registered = registered()
        self.plugin = None
        self.schemas = None

    def info(self):
        r = self.registered
        return r.name, r.version, r.description

    def init(self, config):
        self.plugin = _call("init", self.registered.cls, _config(config))
        self.schemas = None

    def output_schema(self, input):
        if self.plugin is None:
            raise CallError("the host called output-schema before init")

        def run():
            schema = Schema.from_bytes(input)
            output = self.plugin.output_schema(schema)
            if not isinstance(output, Schema):
                raise PluginError(f"output_schema returned {type(output).__name__}, not a Schema")
            encoded = output.to_bytes()
            self.schemas = (schema, output)
            return encoded

        return _call("output_schema", run)

    def process(self, rows, columns):
        if self.schemas is None:
            raise CallError("the host called process before output-schema")
        input_schema, output_schema = self.schemas

        def run():
            parts = split_columns(input_schema, columns)
            return run_process(self.plugin, input_schema, output_schema, rows, parts)

        return _call("process", run)


class AggregateCalls:
    """The ``aggregator`` interface over the exported ``Aggregate``."""

    def __init__(self):
        self.registered = registered()
        self.plugin = None

    def info(self):
        r = self.registered
        return r.name, r.version, r.description

    def init(self, config):
        def run():
            plugin = self.registered.cls(_config(config))
            inputs, output = signature_schemas(plugin)
            encoded = (inputs.to_bytes(), output.to_bytes())
            self.plugin = plugin
            return encoded

        return _call("init", run)

    def _plugin(self):
        if self.plugin is None:
            raise CallError("the host called the aggregate before init")
        return self.plugin

    def update(self, states, rows, columns, group_of_row):
        return _call("update", run_update, self._plugin(), states, rows, columns, group_of_row)

    def merge(self, left, right):
        return _call("merge", run_merge, self._plugin(), left, right)

    def finish(self, states):
        return _call("finish", run_finish, self._plugin(), states)

    def state_version(self):
        return int(self._plugin().state_version)
